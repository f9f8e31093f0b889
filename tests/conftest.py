"""Shared fixtures: a tiny synthetic dataset rendered once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csad.data.synth.writer import generate_category

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
