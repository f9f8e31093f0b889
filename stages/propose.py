"""DVC stage ``propose@<category>``: part-level object proposals + corner background per train image (X_seg).

    python stages/propose.py --category pushpins

Backend ``sam``: SAM automatic mask generator (params ``propose.sam``: model_type, checkpoint, the AMG settings),
split into connected components, minus the background SAM finds from the 8 corner points.
Backend ``classical``: a weight-free over-segmentation (params ``propose.classical``).
Writes ``data/proposals/<category>/{instances,background}/<stem>.png``, ``proposals.parquet``, ``summary.json``.
"""

from __future__ import annotations

from csad.pipeline import propose
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Propose part-level instances in every train image of one category."""
    propose.run(load_stage(argv, __doc__, "propose"))


if __name__ == "__main__":
    run_stage(main)
