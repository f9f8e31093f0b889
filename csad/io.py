"""Atomic file and folder writes, PNG/JSON helpers.

Every artifact of the pipeline is written to a temporary path next to its destination and renamed into place,
so a crash or a SIGKILL never leaves a half-written file that a later stage could read.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "m.json", {"auroc": 0.5})
>>> read_json(d / "m.json")
{'auroc': 0.5}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary file path beside ``dest``; on success rename it to ``dest``, on error delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp" + dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.replace(dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(dest: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest`` whole, on error it goes."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*.tmp"):  # left by a killed earlier run (SIGKILL skips cleanup)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            old.rmdir()
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    """Return the parsed JSON content of ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_png(path: Path | str, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8/uint16 array as PNG, atomically."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        ok = cv2.imwrite(str(tmp), array)
        if not ok:
            raise OSError(f"could not write PNG {path}")


def read_label_png(path: Path | str) -> np.ndarray:
    """Return a single-channel label/instance PNG as a 2-D integer array (uint8 or uint16), unchanged."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError(f"cannot read label image {path}: missing or not an image")
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr


def save_checkpoint(path: Path | str, obj: dict[str, Any]) -> None:
    """Save a dict of tensors / plain Python values with ``torch.save``, atomically (no pickled modules)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path | str, what: str) -> dict[str, Any]:
    """Return the dict saved by :func:`save_checkpoint`, loaded with ``weights_only=True``.

    Raises:
        CsadError: the file is missing (names the ``what`` stage that writes it) or not a tensors-only dict.
    """
    import torch

    from csad.errors import CsadError

    path = Path(path)
    if not path.is_file():
        raise CsadError(f"{path} is missing: run the {what} stage first (dvc repro)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CsadError(
            f"{path} is not a tensors-only checkpoint ({type(err).__name__}): rerun the {what} stage"
        ) from err
    if not isinstance(obj, dict):
        raise CsadError(f"{path} does not hold a checkpoint dict: rerun the {what} stage")
    return obj


def numpy_to_tensors(state: dict[str, np.ndarray]) -> dict[str, Any]:
    """Return ``state`` with numpy arrays turned into tensors (so ``weights_only`` loading accepts them)."""
    import torch

    return {k: torch.from_numpy(np.array(v, order="C", copy=True)) for k, v in state.items()}


def tensors_to_numpy(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """Return ``state`` with tensors turned back into numpy arrays."""
    return {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in state.items()}
