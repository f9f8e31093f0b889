"""DVC stage ``train_seg@<category>``: the component segmenter (frozen backbone + DeepLabV3+ decoder, LSA) trained
on the pseudo-labels, and the Patch Histogram fitted on its predictions.

    python stages/train_seg.py --category pushpins

Params ``segment`` (backbone, train schedule/losses/augmentation, patch_hist grids and trimming; per category via
``segment.overrides``) and ``runtime``. Writes ``models/<category>/segmenter.pt``, the training curves
``metrics/<category>/train_seg/`` (dvclive) and ``metrics/<category>/segmentation.json`` (mIoU of the predictions
on test/good against component_gt, when the dataset has it).
"""

from __future__ import annotations

from csad.pipeline import train_seg
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Train the segmenter of one category."""
    train_seg.run(load_stage(argv, __doc__, "train_seg"))


if __name__ == "__main__":
    run_stage(main)
