"""Atomic file and folder writes, PNG/JSON helpers, and the one listing helper that skips hidden/system files.

Every artifact of the pipeline is written to a temporary path next to its destination and renamed into place,
so a crash or a SIGKILL never leaves a half-written file that a later stage could read.

Every JSON file the project writes is strict JSON (:func:`write_json` refuses NaN and inf). A metric that is
undefined (e.g. the structural AUROC of a test set without structural anomalies) is written as ``null`` with a
string ``"<key>_reason"`` beside it (:func:`set_undefined`); a defined metric has no ``_reason`` key.

Every folder listing of the project goes through :func:`list_dir`, which never returns hidden or system entries
(:func:`is_hidden`: ``.DS_Store``, AppleDouble ``._x.png``, ``.ipynb_checkpoints/``, ``__MACOSX/``, ``Thumbs.db``...).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "m.json", {"auroc": 0.5})
>>> read_json(d / "m.json")
{'auroc': 0.5}
>>> out = {}
>>> set_undefined(out, "structural", "no structural_anomalies test images")
>>> out
{'structural': None, 'structural_reason': 'no structural_anomalies test images'}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, Literal

import numpy as np


def _umask() -> int:
    """Return the process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary file path beside ``dest``; on success rename it to ``dest``, on error delete it.

    The file gets the permissions a plain ``open(dest, "w")`` would give (0o666 minus the umask), not the owner-only
    0o600 of ``tempfile.mkstemp``, so outputs shared with a team stay readable.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp" + dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_umask())
    try:
        yield tmp_path
        tmp_path.replace(dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(dest: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest`` whole, on error it goes.

    The folder gets the permissions of a plain ``mkdir`` (0o777 minus the umask), not ``mkdtemp``'s 0o700.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*.tmp"):  # left by a killed earlier run (SIGKILL skips cleanup)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    tmp.chmod(0o777 & ~_umask())
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


#: Names (compared in lower case) of system entries that are never data, besides every name starting with ".".
SYSTEM_NAMES = frozenset({"__macosx", "__pycache__", "thumbs.db", "desktop.ini", ".ds_store"})

#: Suffix of the key that holds the reason beside an undefined (``null``) metric.
REASON_SUFFIX = "_reason"


def is_hidden(path: Path | str) -> bool:
    """Return True if ``path``'s name is a hidden or system entry, never data.

    Hidden: any name starting with ``.`` (``.DS_Store``, macOS AppleDouble files ``._000.png``,
    ``.ipynb_checkpoints``, ``.git``, our own ``.x.tmp`` files). System: ``__MACOSX``, ``__pycache__``,
    ``Thumbs.db``, ``desktop.ini`` (case-insensitive).

    >>> [is_hidden(n) for n in (".DS_Store", "._000.png", "__MACOSX", "Thumbs.db", "000.png")]
    [True, True, True, True, False]
    """
    name = Path(path).name
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def list_dir(
    folder: Path | str,
    *,
    kind: Literal["any", "file", "dir"] = "any",
    suffixes: Iterable[str] | None = None,
    recursive: bool = False,
) -> list[Path]:
    """Return the entries of ``folder``, sorted, without hidden or system entries (:func:`is_hidden`).

    The one listing helper of the project: every place that lists data files or folders goes through it.

    Args:
        folder: Folder to list; a missing folder (or a file) gives an empty list.
        kind: ``"file"`` keeps regular files (symlinks to files included), ``"dir"`` folders, ``"any"`` both.
        suffixes: If given, keep only files whose suffix is one of these (case-insensitive, with the dot,
            e.g. ``(".png", ".tif")``); folders are then dropped.
        recursive: Also list sub-folders, never descending into hidden or system folders.

    Returns:
        Paths under ``folder`` sorted by path.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = tuple(s.lower() for s in suffixes) if suffixes is not None else None

    def keep(p: Path) -> bool:
        if is_hidden(p):
            return False
        if wanted is not None:
            return p.suffix.lower() in wanted and p.is_file()
        if kind == "file":
            return p.is_file()
        if kind == "dir":
            return p.is_dir()
        return True

    if not recursive:
        return sorted(p for p in folder.iterdir() if keep(p))
    found: list[Path] = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not is_hidden(d)]  # prune: never descend into hidden/system folders
        base = Path(here)
        found.extend(p for p in (base / n for n in (*dirs, *files)) if keep(p))
    return sorted(found)


def set_undefined(out: MutableMapping[str, Any], key: str, reason: str) -> None:
    """Record an undefined metric: ``out[key] = None`` and ``out[key + "_reason"] = reason``.

    This is the project's one shape for undefined values in metrics JSON files (never NaN).
    """
    out[key] = None
    out[key + REASON_SUFFIX] = reason


def is_reason_key(key: object) -> bool:
    """Return True for the ``<key>_reason`` keys written by :func:`set_undefined`."""
    return isinstance(key, str) and key.endswith(REASON_SUFFIX)


def is_defined(value: Any) -> bool:
    """Return True if ``value`` is a finite real number (not None, not bool, not NaN/inf).

    >>> [is_defined(v) for v in (0.5, 1, None, float("nan"), True)]
    [True, True, False, False, False]
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return math.isfinite(float(value))


def round_metrics(obj: Any, ndigits: int = 4) -> Any:
    """Return ``obj`` (nested dicts/lists) with every real number rounded to ``ndigits``; None, strings,
    ints and bools unchanged; numpy scalars become Python numbers.

    >>> round_metrics({"a": 0.123456, "b": None, "b_reason": "x", "n": 3})
    {'a': 0.1235, 'b': None, 'b_reason': 'x', 'n': 3}
    """
    if isinstance(obj, dict):
        return {k: round_metrics(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_metrics(v, ndigits) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return round(float(obj), ndigits)
    return obj


def _strict(obj: Any, where: str) -> Any:
    """Return ``obj`` as plain JSON types (numpy scalars/arrays converted).

    Raises:
        ValueError: a float is NaN or infinite; the message names its key path ``where``.
    """
    if isinstance(obj, dict):
        return {k: _strict(v, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _strict(obj.tolist(), where)
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        if not math.isfinite(float(obj)):
            raise ValueError(
                f"non-finite value {float(obj)} at '{where or '<root>'}': strict JSON has no NaN/inf; write an "
                f"undefined metric as null with a '<key>{REASON_SUFFIX}' string (csad.io.set_undefined)"
            )
        return float(obj)
    return obj


def json_text(obj: Any) -> str:
    """Return ``obj`` as indented strict JSON text (``allow_nan=False``; numpy scalars and arrays converted).

    Raises:
        ValueError: ``obj`` holds a NaN or infinite float (the message names its key path).
        TypeError: ``obj`` holds a value JSON cannot represent.
    """
    return json.dumps(_strict(obj, ""), indent=2, sort_keys=False, allow_nan=False)


def write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON, atomically.

    Undefined metrics must be ``None`` with a ``"<key>_reason"`` string beside them (:func:`set_undefined`); a NaN
    or inf is refused, so no file the project writes can hold the bare ``NaN`` that strict JSON parsers reject.

    Raises:
        ValueError: ``obj`` holds a NaN or infinite float; the message names ``path`` and the key path. Nothing is
            written then.
    """
    try:
        text = json_text(obj)
    except ValueError as err:
        raise ValueError(f"refusing to write {path}: {err}") from err
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    """Return the parsed JSON content of ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_png(path: Path | str, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8/uint16 array as PNG, atomically."""
    import cv2  # here, not at the top: the settings stage imports this module and needs no OpenCV

    array = np.asarray(array)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        ok = cv2.imwrite(str(tmp), array)
        if not ok:
            raise OSError(f"could not write PNG {path}")


def read_label_png(path: Path | str) -> np.ndarray:
    """Return a single-channel label/instance PNG as a 2-D integer array (uint8 or uint16), unchanged."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError(f"cannot read label image {path}: missing or not an image")
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr


#: Plain values a checkpoint may hold besides tensors (what ``torch.load(weights_only=True)`` reads back).
_PLAIN = (str, int, float, bool, type(None))


def _check_tensors_only(value: Any, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` if ``value`` holds anything but tensors, plain values, lists, tuples and
    dicts with string or integer keys (what a ``weights_only`` load accepts)."""
    import torch

    if isinstance(value, (torch.Tensor, *_PLAIN)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise ValueError(f"{where}: key {key!r} is a {type(key).__name__}; use str or int keys")
            _check_tensors_only(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_tensors_only(item, f"{where}[{i}]")
        return
    hint = " (turn numpy arrays into tensors with numpy_to_tensors)" if isinstance(value, np.ndarray) else ""
    raise ValueError(f"{where} is a {type(value).__name__}, which a tensors-only checkpoint cannot hold{hint}")


def save_checkpoint(path: Path | str, obj: dict[str, Any]) -> None:
    """Save a dict of tensors and plain values (str, int, float, bool, None, lists, tuples, dicts) with
    ``torch.save``, atomically; what is written is what :func:`load_checkpoint` reads back (no pickled objects).

    Every checkpoint of the project is written here. The same ``obj`` gives the same bytes on every run: the
    archive goes through an open file handle, because ``torch.save`` given a path names the zip's inner folder
    after it, and the temporary file's random name would make each build's bytes differ (so DVC would see a new
    output and rerun every stage downstream). A tensor is saved with its whole storage: save ``.clone()`` of views.

    Raises:
        ValueError: ``obj`` is not a dict or holds something else (numpy arrays, objects); the entry is named.
    """
    import torch

    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path}: expected a dict, got {type(obj).__name__}")
    _check_tensors_only(obj, f"checkpoint {path}")
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.save(obj, handle)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _load_error(err: Exception) -> str:
    """Return the line of a ``torch.load`` error that says what is wrong (the unpickler's, without colour codes)."""
    lines = [_ANSI.sub("", line).strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line[:300]
    if "weights_only" in str(err):  # the file is not a torch zip archive (a plain pickle, random bytes)
        return "not a torch checkpoint archive"
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def load_checkpoint(path: Path | str, what: str, kind: str = "", fmt: str | None = None) -> dict[str, Any]:
    """Return the dict saved by :func:`save_checkpoint`, loaded with ``weights_only=True`` (tensors and plain values
    only, never pickled code). Every checkpoint of the project is read here.

    Args:
        path: the checkpoint file.
        what: the DVC stage that writes it (named in every error, with the command that rebuilds it).
        kind: what the file holds, for the messages (``"CSAD detector"`` gives "CSAD detector checkpoint X").
        fmt: the ``"format"`` tag the dict must carry; None = no tag checked.

    Raises:
        CheckpointError: the file is missing, a folder, empty, unreadable (permissions), not a tensors-only torch
            file, not a dict, or its ``format`` tag is not ``fmt``; the message names the file and the stage that
            rebuilds it.
    """
    import torch

    from csad.errors import CheckpointError

    path = Path(path)
    name = f"{kind} checkpoint {path}".strip()
    rebuild = f"rebuild it with `dvc repro {what}`"
    if path.is_dir():
        raise CheckpointError(f"{name} is a folder, not a checkpoint file; {rebuild}")
    if not path.is_file():
        raise CheckpointError(f"{name} not found: run the {what} stage first (`dvc repro {what}`)")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{name} cannot be read (permission denied): fix its permissions")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{name} is empty (an interrupted copy?); {rebuild}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"cannot read {name}: {_load_error(err)}; {rebuild}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{name} holds a {type(obj).__name__}, not a checkpoint dict; {rebuild}")
    if fmt is not None and obj.get("format") != fmt:
        raise CheckpointError(
            f"{name} has format tag {obj.get('format')!r}, expected {fmt!r} (another kind of file?); {rebuild}"
        )
    return obj


def numpy_to_tensors(state: dict[str, np.ndarray]) -> dict[str, Any]:
    """Return ``state`` with numpy arrays turned into tensors (so ``weights_only`` loading accepts them)."""
    import torch

    return {k: torch.from_numpy(np.array(v, order="C", copy=True)) for k, v in state.items()}


def tensors_to_numpy(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """Return ``state`` with tensors turned back into numpy arrays."""
    return {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in state.items()}
