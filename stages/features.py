"""DVC stage ``features@<category>``: a rotation-invariant descriptor per refined component (method.md 2.4).

    python stages/features.py --category pushpins

Params ``features``: which descriptors (``cnn``: crop, min-area-rect diagonal scaling to a square canvas,
``n_rotations`` rotations, backbone ``layer`` averaged over space and rotations; hand-crafted ``color``, ``shape``
(log-Hu), ``area``, ``elongation``), the backbone and its weights (path | download | none), block weights.
Writes ``data/components/<category>/`` (components.parquet, images.parquet, features.npy, summary.json).
"""

from __future__ import annotations

from pathlib import Path

from csad.params import resolve
from csad.pseudo.steps import run_features
from csad.stage import load_stage, run_stage, select_device, write_timing


def main(argv: list[str] | None = None) -> None:
    """Describe the refined components of one category."""
    args, params, category = load_stage(argv, __doc__)
    cfg = resolve(params["features"], args.category)
    summary = run_features(
        category.split("train"),
        Path("data/refined") / args.category,
        cfg,
        select_device(params["runtime"]),
        Path("data/components") / args.category,
    )
    write_timing(args.category, "features", summary)


if __name__ == "__main__":
    run_stage(main)
