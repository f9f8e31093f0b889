"""Helpers for the integration tests: a throw-away copy of the project with a tiny params.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("dvc.yaml", ".dvcignore", "stages", "csad")


def run(
    cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Return the finished process ``cmd`` run in ``cwd`` (the venv's bin first on PATH)."""
    full_env = dict(os.environ)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env["PYTHONPATH"] = str(cwd)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Return the finished ``dvc <args>`` run in ``cwd``."""
    return run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=check)


def make_project(dest: Path, params: dict[str, Any]) -> Path:
    """Return ``dest`` holding a git + dvc project: this repo's pipeline code and ``params`` as params.yaml."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".gitignore").write_text("/data/\n/models/\n__pycache__/\n")
    run(["git", "init", "-q"], cwd=dest)
    run(["git", "config", "user.email", "test@example.com"], cwd=dest)
    run(["git", "config", "user.name", "test"], cwd=dest)
    dvc("init", "-q", cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(["git", "commit", "-qm", "tiny project"], cwd=dest)
    return dest


@dataclass(frozen=True)
class BuiltProject:
    """A tiny project (:func:`tests.helpers.tiny_full_params`) after one whole ``dvc repro`` from scratch.

    Attributes:
        path: the project; never changed by a test (a test that runs anything in it works on a :meth:`copy`).
        repro_stdout: what that ``dvc repro`` printed.
    """

    path: Path
    repro_stdout: str

    def copy(self, dest: Path) -> Path:
        """Return ``dest``, a copy of the built project with its git repo, DVC cache, dvc.lock and outputs.

        DVC's own temporary folder (``.dvc/tmp``: locks, the hash cache keyed by inode) is left out; DVC rebuilds it,
        so the copy is exactly as up to date as the built project.
        """
        dvc_dir = self.path / ".dvc"

        def dvc_tmp(folder: str, names: list[str]) -> list[str]:
            return ["tmp"] if Path(folder) == dvc_dir else []

        shutil.copytree(self.path, dest, symlinks=True, ignore=dvc_tmp)
        return dest


def tiny_params(categories: list[str] | None = None, image_size: int = 48) -> dict[str, Any]:
    """Return the repo's params.yaml shrunk to a tiny synthetic run."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["categories"] = categories or ["breakfast_box"]
    params["synth"]["categories"] = list(params["categories"])
    params["synth"]["image_size"] = image_size
    params["synth"]["counts"] = {"train": 4, "validation": 2, "test_good": 2, "test_logical": 2, "test_structural": 2}
    # the trained networks at toy sizes too, so that a test reaching train_seg / train_lgst takes seconds
    params["segment"]["train"].update(
        {"image_size": 64, "epochs": 2, "sup_only_epochs": 1, "batch_size_labeled": 2, "batch_size_unlabeled": 2}
    )
    params["lgst"].update(
        {
            "image_size": 64,
            "feat_size": 16,
            "iterations": 4,
            "channels": 16,
            "student_widths": [8, 16, 16],
            "ae_base_dim": 8,
        }
    )
    return params


FULL_CATEGORY = "splicing_connectors"


def tiny_full_params() -> dict[str, Any]:
    """Return the tiny params of a whole-pipeline run (synth to evaluate) on ``FULL_CATEGORY`` at 128 px.

    One torch thread: the CPU kernels are then deterministic, so two runs give the same models to float tolerance.
    """
    params = tiny_params([FULL_CATEGORY], image_size=128)
    params["synth"]["counts"] = {"train": 10, "validation": 4, "test_good": 3, "test_logical": 3, "test_structural": 3}
    params["cluster"]["overrides"] = {FULL_CATEGORY: {"alpha": 0.2}}
    params["runtime"]["num_threads"] = 1
    return params


def ran_stages(stdout: str) -> list[str]:
    """Return the names of the stages a ``dvc repro``/``dvc exp run`` output says it ran, in order."""
    return [line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")]
