"""Reading and writing float32 anomaly maps as ``.tiff`` in the official MVTec LOCO AD layout.

The official evaluator expects ``<maps_root>/<category>/test/<type>/<image_stem>.tiff``, one real-valued map per
test image, with the original image size. Like it, the reader accepts the suffixes ``.tif``, ``.tiff``, ``.TIF``
and ``.TIFF`` (any case, :func:`index_anomaly_maps`); we write ``.tiff``.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> path = anomaly_map_path(root, "pushpins", "good", "000")
    >>> path.relative_to(root).as_posix()
    'pushpins/test/good/000.tiff'
    >>> write_anomaly_map(path, np.zeros((2, 3)))
    >>> read_anomaly_map(path).shape
    (2, 3)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from csad.data.loco import DatasetError
from csad.io import list_dir

__all__ = [
    "MAP_SUFFIXES",
    "MAP_TYPES",
    "anomaly_map_path",
    "index_anomaly_maps",
    "read_anomaly_map",
    "write_anomaly_map",
]

MAP_TYPES: tuple[str, ...] = ("good", "logical_anomalies", "structural_anomalies")
"""Test sub-folders that hold anomaly maps."""

MAP_SUFFIXES: tuple[str, ...] = (".tiff", ".tif")
"""Suffixes of anomaly-map files, compared case-insensitively (``.TIF`` and ``.TIFF`` too), as the official reader."""


def anomaly_map_path(maps_root: str | Path, category: str, image_type: str, image_stem: str) -> Path:
    """Returns the official path ``<maps_root>/<category>/test/<image_type>/<image_stem>.tiff``.

    Args:
        maps_root: Root folder of the anomaly maps.
        category: Category name, e.g. ``"breakfast_box"``.
        image_type: One of ``"good"``, ``"logical_anomalies"``, ``"structural_anomalies"``.
        image_stem: Test image name without extension, e.g. ``"000"``.

    Raises:
        ValueError: On an unknown image type, or a category/stem that is empty or contains a path separator.
    """
    if image_type not in MAP_TYPES:
        raise ValueError(f"image_type must be one of {list(MAP_TYPES)}, got {image_type!r}")
    for name, value in (("category", category), ("image_stem", image_stem)):
        if not value or "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError(f"{name} must be a plain file name, got {value!r}")
    return Path(maps_root) / category / "test" / image_type / f"{image_stem}.tiff"


def index_anomaly_maps(folder: str | Path) -> dict[str, Path]:
    """Returns ``{image stem: map file}`` of the anomaly maps in ``folder`` (one ``<maps>/<category>/test/<type>``).

    A map is a file whose suffix is ``.tif`` or ``.tiff`` in any case; hidden and system files (``.DS_Store``,
    ``._000.tiff``) are skipped. A missing folder gives an empty index.

    Raises:
        DatasetError: two files hold the map of one image (e.g. ``000.tif`` and ``000.tiff``); both are named.
    """
    index: dict[str, Path] = {}
    for path in list_dir(folder, kind="file", suffixes=MAP_SUFFIXES):
        other = index.setdefault(path.stem, path)
        if other != path:
            raise DatasetError(
                f"ambiguous anomaly maps {other} and {path} for image {path.stem}: keep exactly one map per image"
            )
    return index


def write_anomaly_map(path: str | Path, anomaly_map: np.ndarray) -> None:
    """Returns nothing; writes a 2-D map as float32 ``.tiff`` atomically (temp file in the same folder, then replace).

    Args:
        path: Destination file; parent folders are created.
        anomaly_map: 2-D array of finite real values.

    Raises:
        ValueError: If the map is not 2-D or holds NaN/inf.
    """
    path = Path(path)
    arr = np.asarray(anomaly_map)
    if arr.ndim != 2:
        raise ValueError(f"anomaly map for {path} must be 2-D (H, W), got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"anomaly map for {path} contains NaN or inf values (after conversion to float32)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.tiff")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tifffile.imwrite(tmp, arr)
        tmp.replace(path)  # os.replace: atomic within one file system
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_anomaly_map(path: str | Path) -> np.ndarray:
    """Returns the 2-D float32 anomaly map stored at ``path``.

    Args:
        path: A ``.tif`` / ``.tiff`` file (any suffix case).

    Returns:
        (H, W) float32 array of finite values.

    Raises:
        FileNotFoundError: If the file does not exist (the message names it).
        ValueError: If it cannot be read as TIFF, is not a single 2-D real-valued image, or holds NaN/inf values
            (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"anomaly map not found: {path}")
    try:
        arr = tifffile.imread(path)
    except Exception as err:  # tifffile raises several types for corrupt files
        raise ValueError(f"cannot read anomaly map {path}: {err}") from err
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        shape = getattr(arr, "shape", None)
        raise ValueError(f"anomaly map {path} must be a single 2-D image, got shape {shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"anomaly map {path} has non-real dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"anomaly map {path} holds NaN or inf values: write finite scores")
    return arr
