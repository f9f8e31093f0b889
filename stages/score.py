"""DVC stage ``score@<category>``: the deployed detector on validation/good and the test set (docs/method.md 6).

    python stages/score.py --category pushpins

Params ``score`` (batch size) and ``runtime``. Reads ``models/<category>/detector.pt``. Writes
``data/scores/<category>/`` (scores.parquet: per image key, split, type, label, raw and normalised branch scores,
fused score, verdict; ``maps/<category>/test/<type>/<stem>.tiff`` anomaly maps at the original resolution in the
official layout; ``segmentation/<split>/<type>/<stem>.png`` component labels) and the metrics
``metrics/<category>.json`` (image AUROC, AU-sPRO, false-reject and false-accept rates at the threshold).
"""

from __future__ import annotations

from csad.pipeline import score
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Score one category."""
    score.run(load_stage(argv, __doc__, "score"))


if __name__ == "__main__":
    run_stage(main)
