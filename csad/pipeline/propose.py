"""The ``propose`` stage: part-level object proposals and the corner background per train image (X_seg).

The backend (:func:`csad.pseudo.backends.build_proposal_backend`: ``classical`` or ``sam``) over-segments every
train image; writes ``data/proposals/<category>/`` and the timing ``metrics/<category>/timing/propose.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from csad.artifacts import stage_output
from csad.data.loco import ImageRecord, read_image
from csad.io import atomic_dir, write_json
from csad.pipeline._loop import loop_summary, timed_loop, without_timing
from csad.pipeline.stage import StageInputs, write_timing
from csad.pseudo.backends import build_proposal_backend
from csad.pseudo.store import write_map, write_mask
from csad.pseudo.types import ProposalBackend

log = logging.getLogger(__name__)


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``propose`` stage for one category; return its summary."""
    name = inputs.category.name
    backend = build_proposal_backend(inputs.config, inputs.device(), inputs.args.params)
    summary = run_proposals(inputs.category.split("train"), backend, stage_output("propose", name))
    write_timing(name, "propose", summary)
    return summary


def run_proposals(records: Sequence[ImageRecord], backend: ProposalBackend, out_dir: Path) -> dict[str, Any]:
    """Propose part-level instances in every image; write ``instances/``, ``background/``, ``proposals.parquet``
    and ``summary.json`` into ``out_dir``; return the summary."""
    with atomic_dir(out_dir) as tmp:

        def work(rec: ImageRecord) -> dict[str, Any]:
            result = backend(read_image(rec.path))
            write_map(tmp / "instances" / f"{rec.stem}.png", result.instances)
            write_mask(tmp / "background" / f"{rec.stem}.png", result.background)
            for w in result.warnings:
                log.warning("%s: %s", rec.key, w)
            return {
                "instances": int(result.instances.max(initial=0)),
                "background_fraction": float(result.background.mean()),
                "warnings": "; ".join(result.warnings),
            }

        rows, seconds = timed_loop(records, "propose", work)
        pd.DataFrame(rows).to_parquet(tmp / "proposals.parquet", index=False)
        summary = loop_summary(rows, seconds)
        write_json(tmp / "summary.json", without_timing(summary))
    return summary
