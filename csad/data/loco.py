"""One reader for any MVTec LOCO AD style dataset: the real one, our synthetic one, or a user's.

Records are sorted and keyed by their path relative to the category folder (``test/logical_anomalies/003.png``),
never by list position. :meth:`LocoCategory.open` validates the layout and fails with one clear line
(:class:`DatasetError`) that names the file or folder and the fix.

>>> import tempfile, pathlib
>>> from csad.data.synth.writer import generate_category
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = generate_category("breakfast_box", root / "breakfast_box", image_size=64, seed=0,
...                       counts={"train": 2, "validation": 1, "test_good": 1, "test_logical": 1,
...                               "test_structural": 1}, progress=False)
>>> cat = LocoCategory.open(root, "breakfast_box")
>>> [r.key for r in cat.split("test")][:2]
['test/good/000.png', 'test/logical_anomalies/000.png']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from csad.errors import CsadError

SPLITS = ("train", "validation", "test")
TEST_TYPES = ("good", "logical_anomalies", "structural_anomalies")
ANOMALY_TYPES = ("logical_anomalies", "structural_anomalies")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LOCO_CATEGORIES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")


class DatasetError(CsadError, ValueError):
    """A dataset does not have the MVTec LOCO AD layout; the message names the path and the fix."""


@dataclass(frozen=True)
class DefectType:
    """One entry of ``defects_config.json``."""

    name: str
    pixel_value: int
    saturation_threshold: int | float
    relative_saturation: bool


@dataclass(frozen=True)
class ImageRecord:
    """One image of a category; ``key`` is its path relative to the category folder."""

    key: str
    path: Path
    split: str
    type: str
    gt_paths: tuple[Path, ...] = ()

    @property
    def label(self) -> int:
        """Return 0 for a good image, 1 for an anomalous one."""
        return 0 if self.type == "good" else 1

    @property
    def stem(self) -> str:
        """Return the file name without suffix (``003``)."""
        return self.path.stem


@dataclass(frozen=True)
class LocoCategory:
    """A validated category folder: its records (sorted by key) and defect types (by pixel value)."""

    name: str
    root: Path
    records: tuple[ImageRecord, ...]
    defects: dict[int, DefectType]

    def split(self, split: str, type_: str | None = None) -> list[ImageRecord]:
        """Return the records of ``split`` (and of ``type_`` if given), sorted by key."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return [r for r in self.records if r.split == split and (type_ is None or r.type == type_)]

    def by_key(self) -> dict[str, ImageRecord]:
        """Return the records keyed by their relative path."""
        return {r.key: r for r in self.records}

    @classmethod
    def open(cls, dataset_root: Path | str, category: str, check_images: bool = False) -> LocoCategory:
        """Return the validated category ``category`` of the dataset at ``dataset_root``.

        With ``check_images`` every image file is opened and verified (slower; names the first broken file).

        Raises:
            DatasetError: the layout is wrong; the message says where and how to fix it.
        """
        root = Path(dataset_root)
        if not root.is_dir():
            raise DatasetError(
                f"dataset root {root} does not exist: set dataset.root in params.yaml to the folder that holds the "
                f"category folders (e.g. the extracted mvtec_loco_anomaly_detection/)"
            )
        cat_root = root / category
        if not cat_root.is_dir():
            available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            raise DatasetError(
                f"unknown category {category!r}: no folder {cat_root}; available: {', '.join(available) or 'none'}"
            )
        defects = read_defects_config(cat_root / "defects_config.json")
        records: list[ImageRecord] = []
        for split in SPLITS:
            split_dir = cat_root / split
            types = ("good",) if split != "test" else TEST_TYPES
            for type_ in types:
                type_dir = split_dir / type_
                images = _list_images(type_dir)
                if split in ("train", "validation") and not images:
                    what = "missing" if not type_dir.is_dir() else "empty"
                    raise DatasetError(
                        f"{type_dir} is {what}: a category needs good {split} images in {split}/good/*.png"
                    )
                for path in images:
                    gt = _gt_paths(cat_root, type_, path) if type_ in ANOMALY_TYPES else ()
                    records.append(ImageRecord(f"{split}/{type_}/{path.name}", path, split, type_, gt))
        if not any(r.split == "test" for r in records):
            raise DatasetError(
                f"{cat_root / 'test'} has no images in good/, logical_anomalies/ or structural_anomalies/"
            )
        _check_orphan_gt(cat_root, records)
        if check_images:
            for rec in records:
                verify_image(rec.path)
                for gt_path in rec.gt_paths:
                    verify_image(gt_path)
        records.sort(key=lambda r: r.key)
        return cls(category, cat_root, tuple(records), defects)


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _gt_paths(cat_root: Path, type_: str, image: Path) -> tuple[Path, ...]:
    gt_dir = cat_root / "ground_truth" / type_ / image.stem
    masks = sorted(gt_dir.glob("*.png")) if gt_dir.is_dir() else []
    if not masks:
        raise DatasetError(f"anomalous image {image} has no ground truth: expected one or more PNGs in {gt_dir}")
    return tuple(masks)


def _check_orphan_gt(cat_root: Path, records: list[ImageRecord]) -> None:
    gt_root = cat_root / "ground_truth"
    if not gt_root.is_dir():
        return
    stems = {(r.type, r.stem) for r in records if r.split == "test"}
    for type_dir in sorted(gt_root.iterdir()):
        if not type_dir.is_dir():
            continue
        if type_dir.name not in ANOMALY_TYPES:
            raise DatasetError(f"{type_dir}: ground_truth/ may only hold logical_anomalies/ and structural_anomalies/")
        for img_dir in sorted(type_dir.iterdir()):
            if img_dir.is_dir() and (type_dir.name, img_dir.name) not in stems:
                raise DatasetError(
                    f"ground-truth folder {img_dir} has no image test/{type_dir.name}/{img_dir.name}.png"
                )


def read_defects_config(path: Path) -> dict[int, DefectType]:
    """Return the defect types of ``defects_config.json`` keyed by pixel value, validated as MVTec does."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing: every category needs a defects_config.json (MVTec LOCO format)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(entries, list) or not entries:
        raise DatasetError(f"{path} must be a non-empty JSON list of defect entries")
    out: dict[int, DefectType] = {}
    keys = ("defect_name", "pixel_value", "saturation_threshold", "relative_saturation")
    for i, entry in enumerate(entries):
        where = f"{path} entry {i}"
        if not isinstance(entry, dict) or any(k not in entry for k in keys):
            raise DatasetError(f"{where} must be an object with keys {', '.join(keys)}")
        name, value, thr, rel = (entry[k] for k in keys)
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}: defect_name must be a non-empty string")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 255:
            raise DatasetError(f"{where} ({name}): pixel_value must be an int in 1..255, got {value!r}")
        if not isinstance(rel, bool):
            raise DatasetError(f"{where} ({name}): relative_saturation must be true or false, got {rel!r}")
        if rel:
            if isinstance(thr, bool) or not isinstance(thr, int | float) or not 0 < thr <= 1:
                raise DatasetError(f"{where} ({name}): a relative saturation_threshold must be in (0, 1], got {thr!r}")
            thr = float(thr)
        elif isinstance(thr, bool) or not isinstance(thr, int) or thr <= 0:
            raise DatasetError(
                f"{where} ({name}): an absolute saturation_threshold must be a positive int, got {thr!r}"
            )
        if value in out:
            raise DatasetError(f"{where} ({name}): pixel_value {value} is used twice")
        out[value] = DefectType(name, value, thr, rel)
    return out


def verify_image(path: Path) -> None:
    """Raise :class:`DatasetError` naming ``path`` if it cannot be decoded as an image."""
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as err:  # PIL raises many types for broken files
        raise DatasetError(f"unreadable image {path}: {err}") from err


def read_image(path: Path | str) -> np.ndarray:
    """Return the image at ``path`` as (H, W, 3) uint8 RGB, whatever its channels (grey, RGBA) or depth (16 bit).

    Raises:
        DatasetError: the file is missing or cannot be decoded; the message names it.
    """
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DatasetError(f"unreadable image {path}: missing, empty or not an image")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def read_gt_channels(record: ImageRecord, defects: dict[int, DefectType]) -> list[tuple[np.ndarray, DefectType]]:
    """Return, for every GT PNG of ``record``, its boolean mask and its defect type (by the mask's pixel value).

    Raises:
        DatasetError: a mask is unreadable, empty, or holds a value missing from defects_config.json.
    """
    out = []
    for path in record.gt_paths:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise DatasetError(f"unreadable ground-truth mask {path}")
        if arr.ndim == 3:
            arr = arr[..., 0]
        values = np.unique(arr)
        values = values[values != 0]
        if values.size == 0:
            raise DatasetError(f"ground-truth mask {path} is empty (all zero)")
        value = int(values.max())
        if value not in defects:
            raise DatasetError(
                f"ground-truth mask {path} has pixel value {value}, which defects_config.json does not define"
            )
        out.append((arr != 0, defects[value]))
    return out
