"""The MVTec LOCO reader: records, keys, image decoding and one-line errors for bad layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from csad.data.loco import DatasetError, LocoCategory, read_gt_channels, read_image


def _copy(tiny_dataset: Path, tmp_path: Path, category: str = "breakfast_box") -> Path:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset / category, root / category)
    return root


def test_records_are_sorted_and_keyed(tiny_dataset: Path) -> None:
    cat = LocoCategory.open(tiny_dataset, "breakfast_box", check_images=True)
    keys = [r.key for r in cat.records]
    assert keys == sorted(keys)
    assert len(cat.split("train")) == 3 and len(cat.split("validation")) == 2
    assert [r.type for r in cat.split("test")].count("logical_anomalies") == 3
    rec = cat.by_key()["test/logical_anomalies/001.png"]
    assert rec.label == 1 and rec.stem == "001" and rec.gt_paths
    good = cat.by_key()["test/good/000.png"]
    assert good.label == 0 and good.gt_paths == ()


def test_gt_channels_carry_their_defect_type(tiny_dataset: Path) -> None:
    cat = LocoCategory.open(tiny_dataset, "breakfast_box")
    for rec in cat.split("test"):
        for mask, defect in read_gt_channels(rec, cat.defects):
            assert mask.any() and mask.shape == (64, 64)
            assert defect.pixel_value in cat.defects


@pytest.mark.parametrize("mode", ["gray", "rgba", "gray16", "rgb16", "nonsquare"])
def test_read_image_any_format(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(0)
    if mode == "gray":
        arr = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    elif mode == "rgba":
        arr = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    elif mode == "gray16":
        arr = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    elif mode == "rgb16":
        arr = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    else:
        arr = rng.integers(0, 256, (17, 41, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), arr)
    img = read_image(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[:2] == arr.shape[:2]
    if mode == "gray16":
        assert np.abs(img[..., 0].astype(int) - arr.astype(int) // 257).max() <= 1


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset root .* does not exist: set dataset.root"):
        LocoCategory.open(tmp_path / "nope", "breakfast_box")


def test_unknown_category_lists_available(tiny_dataset: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown category 'pushpin'.*available: breakfast_box"):
        LocoCategory.open(tiny_dataset, "pushpin")


@pytest.mark.parametrize("split", ["train", "validation"])
def test_missing_or_empty_good_folder(tiny_dataset: Path, tmp_path: Path, split: str) -> None:
    root = _copy(tiny_dataset, tmp_path)
    folder = root / "breakfast_box" / split / "good"
    for p in folder.iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=rf"{split}/good is empty"):
        LocoCategory.open(root, "breakfast_box")
    folder.rmdir()
    with pytest.raises(DatasetError, match=rf"{split}/good is missing"):
        LocoCategory.open(root, "breakfast_box")


def test_unreadable_image_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    bad = root / "breakfast_box" / "train" / "good" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    LocoCategory.open(root, "breakfast_box")  # layout alone is fine
    with pytest.raises(DatasetError, match=r"unreadable image .*train/good/001.png"):
        LocoCategory.open(root, "breakfast_box", check_images=True)
    with pytest.raises(DatasetError, match=r"unreadable image .*001.png"):
        read_image(bad)


def test_gt_folder_without_image(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    (root / "breakfast_box" / "test" / "logical_anomalies" / "002.png").unlink()
    with pytest.raises(DatasetError, match=r"ground-truth folder .*logical_anomalies/002 has no image"):
        LocoCategory.open(root, "breakfast_box")


def test_anomalous_image_without_gt(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    shutil.rmtree(root / "breakfast_box" / "ground_truth" / "structural_anomalies" / "001")
    with pytest.raises(DatasetError, match=r"structural_anomalies/001.png has no ground truth"):
        LocoCategory.open(root, "breakfast_box")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("{}", "non-empty JSON list"),
        ('[{"defect_name": "x"}]', "must be an object with keys"),
        (
            '[{"defect_name": "x", "pixel_value": 255, "saturation_threshold": 1.5, "relative_saturation": true}]',
            r"relative saturation_threshold must be in \(0, 1\]",
        ),
        (
            '[{"defect_name": "x", "pixel_value": 255, "saturation_threshold": 10.5, "relative_saturation": false}]',
            "absolute saturation_threshold must be a positive int",
        ),
        (
            '[{"defect_name": "x", "pixel_value": 300, "saturation_threshold": 10, "relative_saturation": false}]',
            "pixel_value must be an int in 1..255",
        ),
    ],
)
def test_malformed_defects_config(tiny_dataset: Path, tmp_path: Path, content: str, message: str) -> None:
    root = _copy(tiny_dataset, tmp_path)
    (root / "breakfast_box" / "defects_config.json").write_text(content)
    with pytest.raises(DatasetError, match=message):
        LocoCategory.open(root, "breakfast_box")


def test_missing_defects_config(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    (root / "breakfast_box" / "defects_config.json").unlink()
    with pytest.raises(DatasetError, match=r"defects_config\.json is missing"):
        LocoCategory.open(root, "breakfast_box")


def test_gt_value_not_in_config(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    cfg = root / "breakfast_box" / "defects_config.json"
    entries = json.loads(cfg.read_text())
    cat = LocoCategory.open(root, "breakfast_box")
    rec = cat.split("test", "logical_anomalies")[0]
    used = int(cv2.imread(str(rec.gt_paths[0]), cv2.IMREAD_UNCHANGED).max())
    cfg.write_text(json.dumps([e for e in entries if e["pixel_value"] != used]))
    cat = LocoCategory.open(root, "breakfast_box")
    with pytest.raises(DatasetError, match=rf"pixel value {used}, which defects_config.json does not define"):
        read_gt_channels(rec, cat.defects)
