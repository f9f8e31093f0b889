"""Shared fixtures, built once per test session: a tiny synthetic dataset, and a tiny project after a whole
`dvc repro` that the integration tests copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csad.data.synth.writer import generate_category
from tests.helpers import BuiltProject, dvc, make_project, tiny_full_params

# Foundation-model code must never reach a hub from the tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_COUNTS = {"train": 3, "validation": 2, "test_good": 2, "test_logical": 3, "test_structural": 3}
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a dataset root with a tiny ``breakfast_box`` (64 px)."""
    root = tmp_path_factory.mktemp("synthloco")
    for category in ("breakfast_box",):
        generate_category(category, root / category, image_size=64, seed=0, counts=TINY_COUNTS, progress=False)
    return root


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> BuiltProject:
    """Return the tiny project after a whole ``dvc repro`` from scratch (about two minutes, once per session)."""
    path = make_project(tmp_path_factory.mktemp("built") / "proj", tiny_full_params())
    return BuiltProject(path, dvc("repro", cwd=path).stdout)
