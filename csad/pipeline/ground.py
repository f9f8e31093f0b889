"""The ``ground`` stage: object-level instances and a background mask per train image (X_sem).

The backend (:func:`csad.pseudo.backends.build_ground_backend`: ``pretrained``, ``classical`` or ``grounded_sam``)
grounds the tag prompt of ``data/tags/<category>.json`` in every train image; writes ``data/grounding/<category>/``
and the timing ``metrics/<category>/timing/ground.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csad.artifacts import stage_output
from csad.data.loco import ImageRecord, read_image
from csad.errors import ParamsError
from csad.io import atomic_dir, read_json, write_json
from csad.pipeline._loop import LazyImages, loop_summary, timed_loop, without_timing
from csad.pipeline.stage import StageInputs, write_timing
from csad.pseudo.backends import build_ground_backend
from csad.pseudo.store import write_map, write_mask
from csad.pseudo.types import GroundingBackend

log = logging.getLogger(__name__)


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``ground`` stage for one category; return its summary.

    Raises:
        ParamsError: the tag file is missing (run the tag stage) or the backend's params are wrong.
    """
    name = inputs.category.name
    tags_file = stage_output("tag", name)
    if not tags_file.is_file():
        raise ParamsError(f"{tags_file} is missing: run the tag stage first (dvc repro tag@{name})")
    prompt = read_json(tags_file)["prompt"]
    backend = build_ground_backend(inputs.config, inputs.device(), inputs.args.params)
    summary = run_grounding(inputs.category.split("train"), backend, prompt, stage_output("ground", name))
    write_timing(name, "ground", summary)
    return summary


def run_grounding(
    records: Sequence[ImageRecord], backend: GroundingBackend, prompt: str, out_dir: Path
) -> dict[str, Any]:
    """Ground ``prompt`` in every image; write ``instances/<stem>.png``, ``background/<stem>.png``,
    ``grounding.parquet`` and ``summary.json`` into ``out_dir``; return the summary.

    A backend with a ``fit(images)`` method (one that learns from the train images, e.g.
    :class:`csad.pseudo.pretrained.PretrainedGrounding`) is fitted on all ``records`` first; its summary (a mapping;
    any other return value counts as an empty one) goes to ``summary.json`` under ``fit``, its ``warnings`` are
    logged, and its ``state()`` arrays, when it has them, go to ``model.npz``.
    """
    with atomic_dir(out_dir) as tmp:
        fit_summary = None
        if hasattr(backend, "fit"):
            fit_start = time.perf_counter()
            images = LazyImages(records, desc="ground: fit on the train images")
            fitted = backend.fit(images)
            fit_summary = dict(fitted) if isinstance(fitted, Mapping) else {}
            fit_summary["seconds"] = round(time.perf_counter() - fit_start, 3)
            del images
            for w in fit_summary.get("warnings") or []:
                log.warning("ground fit: %s", w)
            if hasattr(backend, "state"):
                np.savez(tmp / "model.npz", **backend.state())

        def work(rec: ImageRecord) -> dict[str, Any]:
            result = backend(read_image(rec.path), prompt)
            write_map(tmp / "instances" / f"{rec.stem}.png", result.instances)
            write_mask(tmp / "background" / f"{rec.stem}.png", result.background)
            for w in result.warnings:
                log.warning("%s: %s", rec.key, w)
            return {
                "instances": int(len(np.unique(result.instances)) - (1 if (result.instances == 0).any() else 0)),
                "background_fraction": float(result.background.mean()),
                "phrases": " | ".join(result.phrases),
                "warnings": "; ".join(result.warnings),
            }

        rows, seconds = timed_loop(records, "ground", work)
        pd.DataFrame(rows).to_parquet(tmp / "grounding.parquet", index=False)
        extra = {} if fit_summary is None else {"fit": fit_summary}
        summary = loop_summary(rows, seconds, prompt=prompt, **extra)
        if fit_summary is not None:  # the fit is part of the stage's work: count it in both timings
            summary["seconds"] = round(summary["seconds"] + fit_summary["seconds"], 3)
            summary["seconds_per_image"] = round(summary["seconds"] / max(1, len(rows)), 4)
        written = without_timing(summary)
        if fit_summary is not None:
            written["fit"] = {k: v for k, v in fit_summary.items() if k != "seconds"}
        write_json(tmp / "summary.json", written)
    return summary
