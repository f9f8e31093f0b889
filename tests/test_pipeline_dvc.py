"""The real `dvc repro` on a tiny synthetic config in a temporary copy of the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from csad.data.loco import LocoCategory
from tests.helpers import dvc, make_project, tiny_params

pytestmark = pytest.mark.integration


def test_repro_renders_dataset_and_is_then_up_to_date(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", tiny_params(["breakfast_box"]))
    dvc("repro", cwd=project)
    cat = LocoCategory.open(project / "data/datasets/synthloco", "breakfast_box", check_images=True)
    assert len(cat.split("train")) == 4 and len(cat.split("test")) == 6
    assert (project / "metrics/breakfast_box/synth_contact_sheet.png").stat().st_size > 1000
    assert (project / "dvc.lock").is_file()
    status = dvc("status", cwd=project).stdout
    assert "up to date" in status, status
    again = dvc("repro", cwd=project).stdout
    assert "didn't change, skipping" in again and "Running stage" not in again


def test_params_typo_fails_with_one_line(tmp_path: Path) -> None:
    params = tiny_params(["breakfast_box"])
    params["synth"]["image_sise"] = params["synth"].pop("image_size")
    project = make_project(tmp_path / "proj", params)
    proc = dvc("repro", cwd=project, check=False)
    assert proc.returncode != 0
    assert "error: params.yaml: unknown key synth.image_sise (did you mean synth.image_size?)" in proc.stderr
    assert "Traceback" not in proc.stderr
