"""One reader for any MVTec LOCO AD style dataset: the real one, our synthetic one, or a user's.

Records are sorted and keyed by their path relative to the category folder (``test/logical_anomalies/003.png``),
never by list position. :meth:`LocoCategory.open` validates the layout and fails with one clear line
(:class:`DatasetError`) that names the file or folder and the fix. Hidden and system files (``.DS_Store``,
AppleDouble ``._000.png``, ``.ipynb_checkpoints/``, ``__MACOSX/``, ``Thumbs.db``) are never data
(:func:`csad.io.list_dir`).

Decoding: :func:`read_image` returns uint8 RGB or fails naming the file (it never silently clips a float or
signed image); :func:`read_gt_mask` reads a ground-truth PNG as the official MVTec LOCO evaluator does (raw values:
palette indices for palette images), one defect value per PNG.

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
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from csad.errors import CsadError
from csad.io import list_dir

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
TEST_TYPES = ("good", "logical_anomalies", "structural_anomalies")
ANOMALY_TYPES = ("logical_anomalies", "structural_anomalies")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GT_SUFFIXES = (".png",)
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
        Without it, only the headers of anomalous test images and their masks are read (to compare their sizes).
        Hidden and system entries are skipped everywhere; a category without any test image is accepted (with a
        warning): its test metrics are then undefined, and it needs no ``defects_config.json`` when it has no
        ``test/`` or ``ground_truth/`` folder either (a new product with only train/good and validation/good).

        Raises:
            DatasetError: the layout is wrong (the message says where and how to fix it), a ground-truth mask's
                size differs from its image's (both named, sizes as WxH), or two images of one folder share a name.
        """
        root = Path(dataset_root)
        if not root.is_dir():
            raise DatasetError(
                f"dataset root {root} does not exist: set dataset.root in params.yaml to the folder that holds the "
                f"category folders (e.g. the extracted mvtec_loco_anomaly_detection/)"
            )
        cat_root = root / category
        if not cat_root.is_dir():
            available = [p.name for p in list_dir(root, kind="dir")]
            raise DatasetError(
                f"unknown category {category!r}: no folder {cat_root}; available: {', '.join(available) or 'none'}"
            )
        has_labels = any((cat_root / name).exists() for name in ("test", "ground_truth", "defects_config.json"))
        # defects_config.json describes the ground truth: a category without test set or ground truth needs none
        defects = read_defects_config(cat_root / "defects_config.json") if has_labels else {}
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
                    if gt:
                        _check_gt_sizes(path, gt)
                    records.append(ImageRecord(f"{split}/{type_}/{path.name}", path, split, type_, gt))
        _check_stems(records)
        if not any(r.split == "test" for r in records):
            # Not an error: training needs no test set, and score/evaluate report undefined test metrics.
            log.warning(
                "%s has no images in good/, logical_anomalies/ or structural_anomalies/: test metrics will be "
                "undefined",
                cat_root / "test",
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
    return list_dir(folder, kind="file", suffixes=IMAGE_SUFFIXES)


def _check_stems(records: list[ImageRecord]) -> None:
    """Raise :class:`DatasetError` if two images of one folder share a stem (``000.png`` and ``000.jpg``): their
    ground truth and anomaly maps are found by stem, so the pair is ambiguous."""
    seen: dict[tuple[str, str, str], Path] = {}
    for rec in records:
        other = seen.setdefault((rec.split, rec.type, rec.stem), rec.path)
        if other != rec.path:
            raise DatasetError(
                f"ambiguous images {other} and {rec.path}: one folder may hold only one image per name; "
                "remove or rename one"
            )


def _gt_paths(cat_root: Path, type_: str, image: Path) -> tuple[Path, ...]:
    gt_dir = cat_root / "ground_truth" / type_ / image.stem
    masks = list_dir(gt_dir, kind="file", suffixes=GT_SUFFIXES)
    if not masks:
        raise DatasetError(f"anomalous image {image} has no ground truth: expected one or more PNGs in {gt_dir}")
    return tuple(masks)


def image_size(path: Path | str) -> tuple[int, int] | None:
    """Return the size of the image at ``path`` from its header (nothing is decoded; cheap on large datasets).

    Returns:
        ``(width, height)`` in pixels, or None if PIL cannot identify the file (a reader names it later).
    """
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # PIL raises many types for unidentifiable files
        return None


def _check_gt_sizes(image: Path, masks: tuple[Path, ...]) -> None:
    """Raise :class:`DatasetError` naming the mask, both sizes (WxH) and the image if a mask's size differs from
    its image's. Sizes come from the file headers only (cheap)."""
    size = image_size(image)
    if size is None:
        return
    for mask in masks:
        mask_size = image_size(mask)
        if mask_size is not None and mask_size != size:
            raise DatasetError(
                f"ground-truth mask {mask} is {mask_size[0]}x{mask_size[1]} but its image {image} is "
                f"{size[0]}x{size[1]}: a mask must have the size of its image"
            )


def _check_orphan_gt(cat_root: Path, records: list[ImageRecord]) -> None:
    gt_root = cat_root / "ground_truth"
    if not gt_root.is_dir():
        return
    stems = {(r.type, r.stem) for r in records if r.split == "test"}
    for type_dir in list_dir(gt_root, kind="dir"):
        if type_dir.name not in ANOMALY_TYPES:
            raise DatasetError(f"{type_dir}: ground_truth/ may only hold logical_anomalies/ and structural_anomalies/")
        for img_dir in list_dir(type_dir, kind="dir"):
            if (type_dir.name, img_dir.name) not in stems:
                raise DatasetError(
                    f"ground-truth folder {img_dir} has no image test/{type_dir.name}/{img_dir.name}.png"
                )


def read_defects_config(path: Path) -> dict[int, DefectType]:
    """Return the defect types of ``defects_config.json`` keyed by pixel value, validated as MVTec does."""
    if not path.is_file():
        raise DatasetError(
            f"{path} is missing: a category with a test set needs a defects_config.json (MVTec LOCO format)"
        )
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


#: Largest value of each unsigned integer depth; the image is scaled by 255 / this (rounded) to 8 bit.
_UINT_MAX = {np.dtype(np.uint16): 65535.0, np.dtype(np.uint32): 4294967295.0}


def to_uint8(arr: np.ndarray, path: Path | str) -> np.ndarray:
    """Return ``arr`` (any shape) as uint8 0..255 when its values can be mapped faithfully, else fail naming ``path``.

    Rules: uint8 unchanged; bool -> 0/255; uint16 and uint32 scaled by their full range (``round(v * 255 / max)``);
    float (16/32/64 bit) with every value in [0, 1] -> ``round(v * 255)``.

    Raises:
        DatasetError: a float image with NaN/inf or values outside [0, 1] (the range is named), a signed-integer
            image, or any other pixel type; the message names ``path`` and the fix.
    """
    dtype = arr.dtype
    if dtype == np.uint8:
        return arr
    if dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if dtype in _UINT_MAX:
        return np.floor(arr.astype(np.float64) * (255.0 / _UINT_MAX[dtype]) + 0.5).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if arr.size and not np.isfinite(arr).all():
            raise DatasetError(
                f"image {path} ({dtype} pixels) holds NaN or inf values: it cannot be decoded faithfully; save it as "
                "8- or 16-bit PNG"
            )
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise DatasetError(
                f"image {path} has {dtype} pixels with values in [{lo:g}, {hi:g}]: a float image must lie in [0, 1] "
                "to be read (0 = black, 1 = white); rescale it or save it as 8- or 16-bit PNG"
            )
        return np.floor(arr.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(dtype, np.signedinteger):
        raise DatasetError(
            f"image {path} has signed {dtype} pixels, which have no defined black and white level: save it as "
            "unsigned 8- or 16-bit PNG"
        )
    raise DatasetError(f"image {path} has {dtype} pixels, which cannot be read as an image: save it as 8-bit PNG")


def _decode_tiff(path: Path) -> np.ndarray | None:
    """Return the pixels of a plain single-page TIFF OpenCV cannot decode (e.g. float16) in RGB(A) order, or None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(tif.pages) != 1 or series.axes not in ("YX", "YXS"):
                return None
            return series.asarray()
    except Exception:  # tifffile raises several types for files it cannot read
        return None


def read_image(path: Path | str) -> np.ndarray:
    """Return the image at ``path`` as (H, W, 3) uint8 RGB, whatever its channels (grey, grey + alpha, RGBA).

    Pixel types are mapped as :func:`to_uint8` says (16/32-bit unsigned scaled by their range, float in [0, 1]
    scaled by 255); anything that cannot be decoded faithfully is an error, never a silently clipped image.

    Raises:
        DatasetError: the file is missing or cannot be decoded, or its pixel type or channel count cannot be
            mapped faithfully; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not an image")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # bytes first: clear errors, and non-ASCII paths work everywhere
    except FileNotFoundError:
        raise DatasetError(f"image {path} not found") from None
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err.strerror or err}") from None
    if data.size == 0:
        raise DatasetError(f"image {path} is empty (0 bytes)")
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    bgr = True
    if arr is None and path.suffix.lower() in (".tif", ".tiff"):
        arr, bgr = _decode_tiff(path), False
    if arr is None:
        raise DatasetError(f"unreadable image {path}: not an image OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP)")
    arr = to_uint8(arr, path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3, 4):
        raise DatasetError(
            f"image {path} has shape {arr.shape}: expected grey, grey + alpha, RGB or RGBA; save it as 8-bit PNG"
        )
    if arr.shape[2] == 2:  # grey + alpha
        return np.repeat(arr[..., :1], 3, axis=2)
    rgb = arr[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1] if bgr else rgb)


def read_gt_mask(path: Path | str) -> tuple[np.ndarray, int]:
    """Return ``(mask, value)`` of one ground-truth PNG, decoded as the official MVTec LOCO evaluator does.

    The raw values are read with PIL (``np.array(Image.open(path))``): a palette image gives its palette
    *indices*, 'L' / 'I' / 'I;16' images their stored values. A grey image stored as RGB (all channels equal,
    opaque alpha if any) is accepted as its single channel.

    Returns:
        ``mask``: (H, W) bool, True where the defect is; ``value``: its single nonzero value (the defect's
        ``pixel_value`` in defects_config.json).

    Raises:
        DatasetError: naming the file, if it is unreadable, a colour (multi-channel, not grey) or transparent
            image, holds float or negative values, is all zero, or holds more than one nonzero value.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.array(im)
    except Exception as err:  # PIL raises many types for broken files
        raise DatasetError(f"unreadable ground-truth mask {path}: {err}") from err
    if arr.ndim == 3:
        colour_channels = 1 if arr.shape[2] in (1, 2) else 3
        colour = arr[..., :colour_channels]
        if arr.shape[2] in (2, 4):
            alpha = arr[..., -1]
            opaque = np.iinfo(alpha.dtype).max if np.issubdtype(alpha.dtype, np.integer) else 1
            if (alpha != opaque).any():
                raise DatasetError(
                    f"ground-truth mask {path} (mode {mode}) has transparent pixels: save it as a single-channel "
                    "(grey) PNG valued with the defect's pixel_value"
                )
        if colour_channels == 3 and not ((colour[..., 0] == colour[..., 1]) & (colour[..., 1] == colour[..., 2])).all():
            raise DatasetError(
                f"ground-truth mask {path} is a colour image (mode {mode}): a mask must be a single-channel (grey) "
                "PNG valued with the defect's pixel_value"
            )
        arr = colour[..., 0]
    if arr.ndim != 2:
        raise DatasetError(f"ground-truth mask {path} has shape {arr.shape}: expected a single 2-D channel")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(
            f"ground-truth mask {path} holds {arr.dtype} values (mode {mode}): a mask must hold integers (0 and "
            "the defect's pixel_value)"
        )
    nonzero = arr[arr != 0]
    values = np.unique(nonzero)
    if values.size == 0:
        raise DatasetError(f"ground-truth mask {path} is empty (all zero)")
    if values.min() < 0:
        raise DatasetError(f"ground-truth mask {path} holds negative values: a mask holds 0 and one pixel_value")
    if values.size > 1:
        shown = ", ".join(str(int(v)) for v in values[:5]) + (", ..." if values.size > 5 else "")
        raise DatasetError(
            f"ground-truth mask {path} holds {values.size} different nonzero values ({shown}): each PNG must hold "
            "exactly one defect valued with its pixel_value (one PNG per defect)"
        )
    return arr != 0, int(values[0])


def read_gt_channels(record: ImageRecord, defects: dict[int, DefectType]) -> list[tuple[np.ndarray, DefectType]]:
    """Return, for every GT PNG of ``record``, its (H, W) boolean mask and its defect type (by the mask's value).

    Masks are decoded by :func:`read_gt_mask` (the official evaluator's rules).

    Raises:
        DatasetError: a mask is unreadable, not single-channel, empty, holds more than one nonzero value, or a
            value missing from defects_config.json; the message names the file.
    """
    out = []
    for path in record.gt_paths:
        mask, value = read_gt_mask(path)
        if value not in defects:
            raise DatasetError(
                f"ground-truth mask {path} has pixel value {value}, which defects_config.json does not define"
            )
        out.append((mask, defects[value]))
    return out
