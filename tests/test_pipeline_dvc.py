"""The real `dvc repro` on a tiny synthetic config in a temporary copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from csad.data.loco import LocoCategory
from tests.helpers import FULL_CATEGORY as CATEGORY
from tests.helpers import BuiltProject, dvc, make_project, ran_stages, tiny_params

pytestmark = pytest.mark.integration


def test_repro_renders_dataset_and_is_then_up_to_date(built_project: BuiltProject, tmp_path: Path) -> None:
    # the session's built project (tests/conftest.py) is a whole `dvc repro` from scratch of a tiny project
    assert f"Running stage 'synth@{CATEGORY}'" in built_project.repro_stdout
    project = built_project.copy(tmp_path / "proj")
    cat = LocoCategory.open(project / "data/datasets/synthloco", CATEGORY, check_images=True)
    assert len(cat.split("train")) == 10 and len(cat.split("test")) == 9
    assert (project / f"metrics/{CATEGORY}/synth_contact_sheet.png").stat().st_size > 1000
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


def test_pseudo_labels_and_cluster_param_reruns_only_cluster_and_filter(tmp_path: Path) -> None:
    params = tiny_params(["pushpins"], image_size=128)
    params["synth"]["counts"]["train"] = 10
    project = make_project(tmp_path / "proj", params)
    first = dvc("repro", "filter@pushpins", cwd=project).stdout
    ran = ran_stages(first)
    assert [s for s in ran if s != "settings@pushpins"] == [
        "synth@pushpins",
        "tag@pushpins",
        "ground@pushpins",
        "propose@pushpins",
        "refine@pushpins",
        "features@pushpins",
        "cluster@pushpins",
        "filter@pushpins",
    ]
    assert ran.index("settings@pushpins") < ran.index("tag@pushpins")
    metrics = json.loads((project / "metrics/pushpins/pseudo_labels.json").read_text())
    assert metrics["num_classes"] >= 1 and 0.0 <= metrics["miou"] <= 1.0
    params["cluster"]["bandwidth_quantile"] = float(params["cluster"]["bandwidth_quantile"]) * 1.01  # auto bandwidth
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = ran_stages(dvc("repro", "filter@pushpins", cwd=project).stdout)
    # the settings stage rewrites the resolved values (only cluster's file changes); cluster reruns; filter reruns
    # only if the clusters changed (DVC skips a stage whose deps are unchanged)
    assert second[:2] == ["settings@pushpins", "cluster@pushpins"], second
    assert set(second) <= {"settings@pushpins", "cluster@pushpins", "filter@pushpins"}, second
