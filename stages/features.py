"""DVC stage ``features@<category>``: a rotation-invariant descriptor per refined component (docs/method.md 2.4).

    python stages/features.py --category pushpins

Params ``features``: which descriptors (``cnn``: crop, min-area-rect diagonal scaling to a square canvas,
``n_rotations`` rotations, backbone ``layer`` averaged over space and rotations; hand-crafted ``color``, ``shape``
(log-Hu), ``area``, ``elongation``), the backbone and its weights (path | download | none), block weights.
Writes ``data/components/<category>/`` (components.parquet, images.parquet, features.npy, summary.json).
"""

from __future__ import annotations

from csad.pipeline import features
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Describe the refined components of one category."""
    features.run(load_stage(argv, __doc__, "features"))


if __name__ == "__main__":
    run_stage(main)
