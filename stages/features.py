"""DVC stage ``features@<category>``: a rotation-invariant descriptor per refined component (docs/method.md 2.4).

    python stages/features.py --category pushpins

Params ``features``: which descriptors (``cnn``: crop, min-area-rect diagonal scaling to a square canvas,
``n_rotations`` rotations, backbone ``layer`` averaged over space and rotations; hand-crafted ``color``, ``shape``
(log-Hu), ``area``, ``elongation``), the backbone and its weights (path | download | none), block weights.
Writes ``data/components/<category>/`` (components.parquet, images.parquet, features.npy, summary.json).
"""

from __future__ import annotations

from csad.artifacts import stage_output
from csad.pseudo.steps import run_features
from csad.stage import load_stage, run_stage, write_timing


def main(argv: list[str] | None = None) -> None:
    """Describe the refined components of one category."""
    run = load_stage(argv, __doc__, "features")
    args, category, cfg = run.args, run.category, run.config
    summary = run_features(
        category.split("train"),
        stage_output("refine", args.category),
        cfg,
        run.device(),
        stage_output("features", args.category),
    )
    write_timing(args.category, "features", summary)


if __name__ == "__main__":
    run_stage(main)
