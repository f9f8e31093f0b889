"""The ``refine`` stage: refined part-level instance maps (proposals cut by the grounding, Combine & Filter).

Reads ``data/grounding/<category>/`` and ``data/proposals/<category>/``; writes ``data/refined/<category>/`` and
the timing ``metrics/<category>/timing/refine.json``. The algorithm is :func:`csad.pseudo.refine.refine_instances`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from csad.artifacts import stage_output
from csad.data.loco import ImageRecord
from csad.errors import CsadError
from csad.io import atomic_dir, write_json
from csad.params import build_with_kwargs
from csad.pipeline._loop import loop_summary, timed_loop, without_timing
from csad.pipeline.stage import StageInputs, write_timing
from csad.pseudo.masks import relabel_sequential
from csad.pseudo.refine import refine_instances
from csad.pseudo.refine_config import RefineConfig
from csad.pseudo.store import read_map, read_mask, write_map


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``refine`` stage for one category; return its summary."""
    name = inputs.category.name
    summary = run_refine(
        inputs.category.split("train"),
        stage_output("ground", name),
        stage_output("propose", name),
        inputs.config,
        stage_output("refine", name),
    )
    write_timing(name, "refine", summary)
    return summary


def run_refine(
    records: Sequence[ImageRecord], grounding_dir: Path, proposals_dir: Path, cfg: Mapping[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Refine every image's proposals with its grounding (``cfg``: the ``refine`` params section,
    :class:`csad.pseudo.refine_config.RefineConfig`); write ``<stem>.png`` instance maps and ``summary.json`` into
    ``out_dir``; return the summary.

    Raises:
        ParamsError: an unknown key or a bad value in ``cfg``.
        CsadError: a missing upstream map, or no component left in any image.
    """
    config = build_with_kwargs(RefineConfig, dict(cfg), "refine")
    settings = asdict(config)
    with atomic_dir(out_dir) as tmp:

        def work(rec: ImageRecord) -> dict[str, Any]:
            refined = refine_instances(
                read_map(proposals_dir / "instances", rec.stem, "propose"),
                read_mask(proposals_dir / "background", rec.stem, "propose"),
                read_map(grounding_dir / "instances", rec.stem, "ground"),
                read_mask(grounding_dir / "background", rec.stem, "ground"),
                **settings,
            )
            refined = relabel_sequential(refined)
            write_map(tmp / "instances" / f"{rec.stem}.png", refined)
            n = int(refined.max(initial=0))
            return {"instances": n, "warnings": "no instance left after refinement" if n == 0 else ""}

        rows, seconds = timed_loop(records, "refine", work)
        summary = loop_summary(rows, seconds, mode=config.mode)
        write_json(tmp / "summary.json", without_timing(summary))
    if summary["empty_images"] and len(summary["empty_images"]) == len(records):
        raise CsadError(
            f"refine: no image has any component left ({out_dir}); check the ground/propose outputs and "
            f"refine params (mode, use_grounding_filter)"
        )
    return summary
