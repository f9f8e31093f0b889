"""Bad input at the stage level: one clear line on stderr, exit status 1, no traceback."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from csad.params import load_params
from csad.pipeline import settings
from tests.helpers import REPO_ROOT, tiny_params

pytestmark = pytest.mark.integration


def _settings_accept(cwd: Path, category: str) -> bool:
    """Return whether the settings stage accepts ``cwd``'s params.yaml for ``category``; then it has written its
    files. Its code runs in this process, which saves starting one more (about half a second)."""
    try:
        with contextlib.chdir(cwd):
            settings.run(load_params("params.yaml"), category, "params.yaml")
    except Exception:
        return False
    return True


def _stage(stage: str, cwd: Path, params: dict[str, Any], category: str = "breakfast_box") -> str:
    """Return the one error line of ``stage`` as ``dvc repro`` shows it: the settings stage runs first and, when it
    refuses the params (a typed-config section is wrong), its error is the one the user sees (from its own process,
    as the stage's is)."""
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in (stage,) if _settings_accept(cwd, category) else ("settings", stage):
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "stages" / f"{name}.py"), "--category", category],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            break
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture
def workdir(tiny_dataset: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    shutil.copytree(tiny_dataset / "breakfast_box", tmp_path / "ds" / "breakfast_box")
    params = tiny_params(["breakfast_box"])
    params["dataset"]["root"] = str(tmp_path / "ds")
    return tmp_path, params


def test_missing_dataset(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    params["dataset"]["root"] = str(cwd / "nowhere")
    assert "does not exist: set dataset.root in params.yaml" in _stage("tag", cwd, params)


def test_wrong_category_name(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    params["categories"].append("breakfastbox")
    line = _stage("tag", cwd, params, category="breakfastbox")
    assert "unknown category 'breakfastbox'" in line and "available: breakfast_box" in line
    assert "is not in categories" in _stage("tag", cwd, tiny_params(["pushpins"]), category="breakfast_box")


def test_corrupt_image(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    (cwd / "ds/breakfast_box/train/good/001.png").write_bytes(b"garbage")
    (cwd / "data/tags").mkdir(parents=True)
    (cwd / "data/tags/breakfast_box.json").write_text('{"prompt": "x ."}')
    line = _stage("ground", cwd, params)
    assert "unreadable image" in line and "train/good/001.png" in line


def test_missing_checkpoint(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    params["propose"]["backend"] = "sam"
    line = _stage("propose", cwd, params)
    assert "propose.sam.checkpoint" in line and "not found" in line


def test_empty_validation_folder(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    for p in (cwd / "ds/breakfast_box/validation/good").iterdir():
        p.unlink()
    assert "validation/good is empty" in _stage("tag", cwd, params)


def test_unknown_backend_option(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    params["ground"]["pretrained"]["border_bnd"] = 4  # the backend that runs
    (cwd / "data/tags").mkdir(parents=True)
    (cwd / "data/tags/breakfast_box.json").write_text('{"prompt": "x ."}')
    assert "unknown key ground.pretrained.border_bnd (did you mean ground.pretrained.border_band?)" in _stage(
        "ground", cwd, params
    )
    params["ground"]["backend"] = "classical"
    params["ground"]["classical"]["hole_fil_ratio"] = 2.0
    assert "unknown key ground.classical.hole_fil_ratio (did you mean ground.classical.hole_fill_ratio?)" in _stage(
        "ground", cwd, params
    )


def test_part_segmentation_setting_in_a_backend_section_points_to_parts(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    params["ground"]["backend"] = "classical"
    params["ground"]["classical"]["merge_threshold"] = 12.0  # where it lived before the parts section
    (cwd / "data/tags").mkdir(parents=True)
    (cwd / "data/tags/breakfast_box.json").write_text('{"prompt": "x ."}')
    assert "ground.classical.merge_threshold belongs in the parts section now" in _stage("ground", cwd, params)
    del params["ground"]["classical"]["merge_threshold"]
    params["parts"]["work_sise"] = 128
    assert "unknown key parts.work_sise (did you mean parts.work_size?)" in _stage("ground", cwd, params)


def test_params_typo(workdir: tuple[Path, dict[str, Any]]) -> None:
    cwd, params = workdir
    params["cluster"]["bandwith"] = params["cluster"].pop("bandwidth")
    assert "unknown key cluster.bandwith (did you mean cluster.bandwidth?)" in _stage("tag", cwd, params)
