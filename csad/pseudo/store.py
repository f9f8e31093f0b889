"""On-disk artifacts of the pseudo-label steps: per-image PNG maps keyed by the train image's stem.

Every step writes one folder (built in a temporary sibling and renamed into place by the caller); maps are
single-channel PNGs with the source image's size and stem: uint8, or uint16 when a map holds values above 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csad.errors import CsadError
from csad.io import read_label_png, write_png


def write_map(path: Path, values: np.ndarray) -> None:
    """Write an integer map as uint8 PNG, or uint16 when it holds values above 255."""
    values = np.asarray(values)
    dtype = np.uint8 if int(values.max(initial=0)) <= 255 else np.uint16
    write_png(path, values.astype(dtype))


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a boolean mask as a 0/255 uint8 PNG (lossless, unlike the released code's JPEG background)."""
    write_png(path, np.where(mask, 255, 0).astype(np.uint8))


def read_map(folder: Path, stem: str, what: str) -> np.ndarray:
    """Return the map ``<folder>/<stem>.png``.

    Raises:
        CsadError: it is missing (names the upstream step ``what`` that should have written it).
    """
    path = folder / f"{stem}.png"
    if not path.is_file():
        raise CsadError(f"{path} is missing: rerun the {what} stage (dvc repro) for this category")
    return read_label_png(path)


def read_mask(folder: Path, stem: str, what: str) -> np.ndarray:
    """Return the boolean mask ``<folder>/<stem>.png`` (non-zero = True)."""
    return read_map(folder, stem, what) != 0
