"""Surviving faults: a stage killed with SIGKILL leaves nothing a later stage could read and the next `dvc repro`
recovers the same outputs; two runs with the same seeds give the same artifacts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.helpers import FULL_CATEGORY as CATEGORY
from tests.helpers import BuiltProject, dvc, make_project, tiny_full_params, tiny_params

pytestmark = pytest.mark.integration


def _lock_outs(project: Path) -> dict[str, str]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def test_sigkill_mid_stage_leaves_no_partial_output_and_repro_recovers(tmp_path: Path) -> None:
    params = tiny_params(["pushpins"], image_size=128)
    params["synth"]["counts"] = {
        "train": 40,
        "validation": 10,
        "test_good": 10,
        "test_logical": 10,
        "test_structural": 10,
    }
    project = make_project(tmp_path / "proj", params)
    dvc("repro", "synth@pushpins", cwd=project)
    expected = _lock_outs(project)
    out = project / "data/datasets/synthloco/pushpins"
    env = dict(
        os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(project)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "-f", "synth@pushpins"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.parent.glob(".pushpins.*.tmp")):  # the stage is writing into its temporary folder
            assert time.monotonic() < deadline and proc.poll() is None, "the stage never started writing"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists(), "a killed run left a (partial) output folder behind"
    dvc("repro", "synth@pushpins", cwd=project)  # recovers (from DVC's run cache or by rerunning the stage)
    assert _lock_outs(project) == expected
    assert "up to date" in dvc("status", "synth@pushpins", cwd=project).stdout
    # The killed run's hidden temporary folder is no output and nothing reads it; the stage's next run removes it.
    dvc("repro", "-f", "synth@pushpins", cwd=project)
    assert _lock_outs(project) == expected
    assert not list(out.parent.glob(".pushpins.*")), "temporary folders left behind"


def _tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        out: dict[str, torch.Tensor] = {}
        for key, value in obj.items():
            out.update(_tensors(value, f"{prefix}/{key}"))
        return out
    return {}


def test_same_seeds_give_identical_artifacts(built_project: BuiltProject, tmp_path: Path) -> None:
    # one run is the session's built project (tests/conftest.py, tiny_full_params: one torch thread), the other a
    # fresh project in another folder
    fresh = make_project(tmp_path / "fresh", tiny_full_params())
    assert (fresh / "params.yaml").read_text() == (built_project.path / "params.yaml").read_text()
    dvc("repro", cwd=fresh)
    projects = [built_project.path, fresh]
    outs = [_lock_outs(p) for p in projects]
    # The synthetic data and every pseudo-label artifact are bit-exact (numpy/OpenCV/scikit-learn only).
    exact = [p for p in outs[0] if p.startswith("data/") and not p.startswith("data/scores/")]
    assert {p: outs[0][p] for p in exact} == {p: outs[1][p] for p in exact}
    # Models and scores come from torch; they agree to float tolerance (bit-exact on one machine in practice, but
    # thread scheduling of CPU kernels is not guaranteed to be).
    for model in ("segmenter.pt", "lgst.pt"):
        a, b = (_tensors(torch.load(p / "models" / CATEGORY / model, weights_only=True)) for p in projects)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key].double(), b[key].double(), rtol=1e-4, atol=1e-5), key
    a, b = (pd.read_parquet(p / f"data/scores/{CATEGORY}/scores.parquet") for p in projects)
    pd.testing.assert_frame_equal(a, b, rtol=1e-4, atol=1e-4)
