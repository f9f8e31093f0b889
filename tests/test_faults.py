"""Surviving faults: a stage killed with SIGKILL leaves nothing a later stage could read and the next `dvc repro`
recovers the same outputs; two runs with the same seeds give the same artifacts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import dvc, make_project, tiny_params
from tests.test_pipeline_full import _tiny_full_params

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
    dvc("repro", cwd=project)
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
    dvc("repro", cwd=project)
    assert _lock_outs(project) == expected
    assert not list(out.parent.glob(".pushpins.*")), "temporary folders left behind"
    assert "up to date" in dvc("status", cwd=project).stdout


def test_same_seeds_give_identical_artifacts(tmp_path: Path) -> None:
    params = _tiny_full_params()
    params["segment"]["train"]["num_threads"] = 1
    params["lgst"]["num_threads"] = 1
    runs = []
    for name in ("one", "two"):
        project = make_project(tmp_path / name, params)
        dvc("repro", cwd=project)
        runs.append(_lock_outs(project))
    # Every output, models included, is bit-exact on one machine with one torch thread per training.
    assert runs[0] == runs[1]
