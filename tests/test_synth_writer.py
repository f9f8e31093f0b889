"""Writing a synthetic category: layout, counts, GT encoding, determinism, atomicity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from csad.data.loco import LocoCategory, read_gt_channels
from csad.data.synth import get_renderer
from csad.data.synth.writer import generate_category, pixel_values

COUNTS = {"train": 2, "validation": 1, "test_good": 1, "test_logical": 0, "test_structural": 0}


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".parquet"
    }


def test_layout_counts_and_gt(tiny_dataset: Path) -> None:
    root = tiny_dataset / "breakfast_box"
    cat = LocoCategory.open(tiny_dataset, "breakfast_box", check_images=True)
    assert len(cat.split("train")) == 3 and len(cat.split("validation")) == 2
    assert len(cat.split("test", "good")) == 2
    assert len(cat.split("test", "logical_anomalies")) == 3
    assert len(cat.split("test", "structural_anomalies")) == 3
    specs = get_renderer("breakfast_box").defect_specs(64)
    values = pixel_values(specs)
    assert {d.name: d.pixel_value for d in cat.defects.values()} == values
    manifest = pd.read_parquet(root / "manifest.parquet").set_index("key")
    for rec in cat.split("test"):
        defect = manifest.loc[rec.key, "defect"]
        channels = read_gt_channels(rec, cat.defects)
        assert (defect == "good") == (not channels)
        for mask, dtype in channels:
            assert dtype.name == defect and mask.sum() > 0
    for rec in cat.records:
        comp = cv2.imread(str(root / "component_gt" / rec.key), cv2.IMREAD_UNCHANGED)
        assert comp.shape == (64, 64) and comp.dtype == np.uint8
    classes = json.loads((root / "component_classes.json").read_text())
    assert classes["background"] == 0 and len(classes) == 1 + len(get_renderer("breakfast_box").component_classes)


def test_every_defect_type_appears_when_counts_allow(tmp_path: Path) -> None:
    renderer = get_renderer("breakfast_box")
    n_log = len(renderer.defect_names("logical"))
    n_str = len(renderer.defect_names("structural"))
    counts = {"train": 1, "validation": 1, "test_good": 0, "test_logical": n_log, "test_structural": n_str}
    generate_category(renderer, tmp_path / "bb", 48, 1, counts, progress=False)
    manifest = pd.read_parquet(tmp_path / "bb" / "manifest.parquet")
    assert set(manifest["defect"]) - {"good"} == {s.name for s in renderer.defect_specs(48)}


def test_generation_is_deterministic(tmp_path: Path) -> None:
    generate_category("breakfast_box", tmp_path / "a", 48, 3, COUNTS, progress=False)
    generate_category("breakfast_box", tmp_path / "b", 48, 3, COUNTS, progress=False)
    generate_category("breakfast_box", tmp_path / "c", 48, 4, COUNTS, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    a = pd.read_parquet(tmp_path / "a" / "manifest.parquet")
    b = pd.read_parquet(tmp_path / "b" / "manifest.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_crash_leaves_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "bb"
    generate_category("breakfast_box", out, 48, 0, COUNTS, progress=False)
    before = _digest(out)
    renderer = get_renderer("breakfast_box")
    calls = {"n": 0}
    original = renderer.render

    def flaky(rng: np.random.Generator, size: int, defect: str | None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return original(rng, size, defect)

    renderer.render = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        generate_category(renderer, out, 48, 9, COUNTS, progress=False)
    assert _digest(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["bb"], "temporary folders left behind"


def test_bad_counts_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown synth count keys"):
        generate_category("breakfast_box", tmp_path / "x", 48, 0, {"train": 1, "validation": 1, "tests": 2})
    with pytest.raises(ValueError, match="at least one image"):
        generate_category("breakfast_box", tmp_path / "x", 48, 0, {"train": 0, "validation": 1})
    assert not (tmp_path / "x").exists()
