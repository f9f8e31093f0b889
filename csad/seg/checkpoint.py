"""Reading the component segmenter's checkpoint (docs/method.md 3.3-3.6): :func:`load_segmenter` returns the trained
segmenter, its fitted Patch Histogram scorer and its input size, for scoring and for the ``train_seg`` stage's
quality check. Nothing here imports the training code (:mod:`csad.seg.train`, :mod:`csad.pipeline.train_seg`).

The checkpoint (``segmenter.pt``, written by :func:`csad.pipeline.train_seg.train_category_segmenter`) is one dict
saved with ``torch.save`` and loaded with ``weights_only=True``:
``{"segmenter": {"config", "state_dict"}, "patch_hist": {name: tensor}, "image_size": int, "train_config": dict}``.
"""

from __future__ import annotations

from pathlib import Path

from csad.io import load_checkpoint, tensors_to_numpy
from csad.models.segmenter import ComponentSegmenter
from csad.scoring.patch_hist import PatchHistogramScorer


def load_segmenter(
    path: Path, weights: str | None = None, device: str = "cpu"
) -> tuple[ComponentSegmenter, PatchHistogramScorer, int]:
    """Return (segmenter, fitted Patch Histogram scorer, input image size) from a ``segmenter.pt`` checkpoint.

    ``weights`` overrides the backbone weights recorded at training (e.g. a path valid on this machine).
    """
    ckpt = load_checkpoint(path, "train_seg", "segmenter")
    model = ComponentSegmenter.from_checkpoint(ckpt["segmenter"], weights=weights).to(device).eval()
    scorer = PatchHistogramScorer.from_state(tensors_to_numpy(ckpt["patch_hist"]))
    return model, scorer, int(ckpt["image_size"])
