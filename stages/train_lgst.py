"""DVC stage ``train_lgst@<category>``: the Local-Global Student-Teacher branch (docs/method.md section 5).

    python stages/train_lgst.py --category pushpins

Frozen teacher (shared backbone layer2 + layer3, 3x3 average pooling, frozen seeded 1x1 projection), local student
(33x33 receptive field, two heads) and autoencoder, trained on train/good with the hard loss, optional penalty
images and the AE / student-AE losses; map quantiles (0.9 / 0.995) fitted on validation/good only.
Params ``lgst`` (per category via ``lgst.overrides``) and ``runtime``. Writes ``models/<category>/lgst.pt`` and the
training curves ``metrics/<category>/train_lgst/`` (dvclive).
"""

from __future__ import annotations

from csad.pipeline import train_lgst
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Train LGST for one category."""
    train_lgst.run(load_stage(argv, __doc__, "train_lgst"))


if __name__ == "__main__":
    run_stage(main)
