"""The per-image loop shared by the pseudo-label stages: progress bar, timing, a summary, lazy image reading."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from csad.data.loco import ImageRecord, read_image


def timed_loop(
    records: Sequence[ImageRecord], desc: str, work: Callable[[ImageRecord], dict[str, Any]]
) -> tuple[list[dict[str, Any]], float]:
    """Run ``work`` on every record in order with a progress bar; return its rows (``key``, ``stem`` and what
    ``work`` returns) and the wall-clock seconds."""
    rows = []
    start = time.perf_counter()
    for rec in tqdm(records, desc=desc, unit="img"):
        rows.append({"key": rec.key, "stem": rec.stem, **work(rec)})
    return rows, time.perf_counter() - start


TIMING_KEYS = ("seconds", "seconds_per_image")


def without_timing(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``summary`` without wall-clock figures, so the artifact written from it is bit-reproducible (timings
    go to the stage's metrics file instead)."""
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def loop_summary(rows: list[dict[str, Any]], seconds: float, **extra: Any) -> dict[str, Any]:
    warned = {r["key"]: r["warnings"] for r in rows if r.get("warnings")}
    return {
        "images": len(rows),
        "seconds": round(seconds, 3),
        "seconds_per_image": round(seconds / max(1, len(rows)), 4),
        "empty_images": [r["key"] for r in rows if r.get("instances", 1) == 0],
        "warnings": warned,
        **extra,
    }


class LazyImages(Sequence[np.ndarray]):
    """The RGB images of ``records`` as a sequence that reads each one from disk when it is indexed (so a backend's
    ``fit`` never holds a whole full-resolution train set in memory), with a progress bar over one pass."""

    def __init__(self, records: Sequence[ImageRecord], desc: str = "read") -> None:
        self.records = list(records)
        self.desc = desc

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("LazyImages does not support slicing")
        return read_image(self.records[index].path)

    def __iter__(self) -> Iterator[np.ndarray]:
        for rec in tqdm(self.records, desc=self.desc, unit="img"):
            yield read_image(rec.path)
