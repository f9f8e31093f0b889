"""DVC stage ``propose@<category>``: part-level object proposals + corner background per train image (X_seg).

    python stages/propose.py --category pushpins

Backend ``sam``: SAM automatic mask generator (params ``propose.sam``: model_type, checkpoint, the AMG settings),
split into connected components, minus the background SAM finds from the 8 corner points.
Backend ``classical``: a weight-free over-segmentation (params ``propose.classical``).
Writes ``data/proposals/<category>/{instances,background}/<stem>.png``, ``proposals.parquet``, ``summary.json``.
"""

from __future__ import annotations

from csad.artifacts import stage_output
from csad.pseudo.backends import build_proposal_backend
from csad.pseudo.steps import run_proposals
from csad.stage import load_stage, run_stage, write_timing


def main(argv: list[str] | None = None) -> None:
    """Propose part-level instances in every train image of one category."""
    run = load_stage(argv, __doc__, "propose")
    args, category, cfg = run.args, run.category, run.config
    backend = build_proposal_backend(cfg, run.device(), args.params)
    summary = run_proposals(category.split("train"), backend, stage_output("propose", args.category))
    write_timing(args.category, "propose", summary)


if __name__ == "__main__":
    run_stage(main)
