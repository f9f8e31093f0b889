"""DVC stage ``score@<category>``: both branches on validation/good and the test set, fused (method.md 6).

    python stages/score.py --category pushpins

Params ``score`` (branch weights, trimming quantiles, batch size). Reads ``models/<category>/{segmenter,lgst}.pt``.
Writes ``data/scores/<category>/`` (scores.parquet: per image key, split, type, label, raw and normalised branch
scores, fused score; ``maps/<category>/test/<type>/<stem>.tiff`` anomaly maps at the original resolution in the
official layout; segmentation predictions) and the metrics ``metrics/<category>.json``.
"""

from __future__ import annotations

from pathlib import Path

from csad.io import write_json
from csad.scoring.run import score_category
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Score one category."""
    run = load_stage(argv, __doc__, "score")
    args, category = run.args, run.category
    _, metrics = score_category(
        category,
        Path("models") / args.category / "segmenter.pt",
        Path("models") / args.category / "lgst.pt",
        run.config,
        run.device(),
        Path("data/scores") / args.category,
    )
    write_json(Path("metrics") / f"{args.category}.json", {"category": args.category, **metrics})


if __name__ == "__main__":
    run_stage(main)
