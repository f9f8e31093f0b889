"""The ``train_seg`` stage's work: train the component segmenter on the pseudo-labels, fit the Patch Histogram,
and measure segmentation quality against ``component_gt`` where the dataset has it (synthetic benchmark only).

The checkpoint (``segmenter.pt``) is one dict saved with ``torch.save`` and loaded with ``weights_only=True``:
``{"segmenter": {"config", "state_dict"}, "patch_hist": {name: tensor}, "image_size": int, "train_config": dict}``,
read back by :func:`csad.seg.checkpoint.load_segmenter`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csad.data.loco import LocoCategory, read_image
from csad.errors import CsadError, ParamsError
from csad.io import numpy_to_tensors, read_json, read_label_png, save_checkpoint
from csad.models.backbone import BackboneSpec
from csad.models.segmenter import ComponentSegmenter, predict_labels
from csad.params import build_with_kwargs
from csad.pseudo.quality import component_gt_dir, hungarian_miou
from csad.pseudo.store import read_map, read_mask
from csad.scoring.patch_hist import PatchHistogramScorer
from csad.seg.checkpoint import load_segmenter as load_segmenter  # re-exported: its old home
from csad.seg.train import SegTrainConfig, train_segmenter

log = logging.getLogger(__name__)


def segment_config(cfg: Mapping[str, Any], device: str) -> tuple[SegTrainConfig, BackboneSpec]:
    """Return the training config and backbone spec of the ``segment`` params (one category's values).

    Raises:
        ParamsError: an unknown or mistyped key under ``segment.train`` or ``segment.backbone`` (whose ``seed`` is
            ``segment.train.seed``: it seeds the decoder and a random backbone alike).
    """
    train = build_with_kwargs(SegTrainConfig, {**cfg["train"], "device": device}, "segment.train")
    if isinstance(cfg["backbone"], Mapping) and "seed" in cfg["backbone"]:
        raise ParamsError(
            "params.yaml: segment.backbone.seed is not read: segment.train.seed seeds the segmenter's decoder and a "
            "random backbone; remove segment.backbone.seed"
        )
    backbone = BackboneSpec.from_params(cfg["backbone"], "segment")
    return train, backbone


def train_category_segmenter(
    category: LocoCategory,
    pseudo_dir: Path,
    refined_dir: Path,
    proposals_dir: Path,
    cfg: Mapping[str, Any],
    device: str,
    checkpoint_path: Path,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train and save the segmenter + Patch Histogram of one category; return a summary (timings, sizes)."""
    train_cfg, backbone = segment_config(cfg, device)
    records = category.split("train")
    labeled = pd.read_parquet(pseudo_dir / "labeled.parquet")
    labeled_keys = set(labeled.loc[labeled["labeled"], "key"])
    num_classes = int(read_json(pseudo_dir / "classes.json")["num_classes"]) + 1
    images = [read_image(r.path) for r in records]
    labels, instances, backgrounds = {}, {}, {}
    for i, rec in enumerate(records):
        if rec.key in labeled_keys:
            labels[i] = read_map(pseudo_dir / "labels", rec.stem, "filter")
            instances[i] = read_map(refined_dir / "instances", rec.stem, "refine")
            backgrounds[i] = read_mask(proposals_dir / "background", rec.stem, "propose")
    if not labels:
        raise CsadError(f"{pseudo_dir}: no labelled image; check the filter stage")
    start = time.perf_counter()
    model, history = train_segmenter(
        images, labels, instances, backgrounds, num_classes, train_cfg, backbone, callback, progress=True
    )
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    size = train_cfg.image_size
    val_images = [read_image(r.path) for r in category.split("validation")]
    train_maps = np.stack(predict_labels(model, images, size, device=device))
    val_maps = np.stack(predict_labels(model, val_images, size, device=device))
    ph = cfg["patch_hist"]
    scorer = PatchHistogramScorer(num_classes, [tuple(g) for g in ph["grids"]], ph["lower"], ph["upper"])
    scorer.fit(train_maps, val_maps)
    fit_seconds = time.perf_counter() - start
    save_checkpoint(
        checkpoint_path,
        {
            "segmenter": model.checkpoint(),
            "patch_hist": numpy_to_tensors(scorer.state()),
            "image_size": size,
            "train_config": train_cfg.to_dict(),
        },
    )
    return {
        "num_classes": num_classes,
        "labeled_images": len(labels),
        "train_images": len(images),
        "epochs": train_cfg.epochs,
        "final_loss": history[-1]["loss"] if history else None,
        "train_seconds": round(train_seconds, 2),
        "patch_hist_fit_seconds": round(fit_seconds, 2),
    }


def segmentation_quality(
    category: LocoCategory,
    model: ComponentSegmenter,
    image_size: int,
    device: str,
    split: str = "test",
    type_: str = "good",
) -> dict[str, Any]:
    """Return the Hungarian mIoU of the segmenter's predictions on ``split/type_`` against component_gt (resized
    to the original resolution with nearest neighbour); an empty dict when the dataset has no component_gt."""
    import cv2

    gt_dir = component_gt_dir(category)
    if gt_dir is None:
        return {}
    classes = read_json(category.root / "component_classes.json")
    names = {v: k for k, v in classes.items()}
    records = category.split(split, type_)
    images = [read_image(r.path) for r in records]
    preds = predict_labels(model, images, image_size, device=device)

    def pairs():
        for rec, image, pred in zip(records, images, preds, strict=True):
            full = cv2.resize(pred, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
            yield full, read_label_png(gt_dir / rec.key)

    result = hungarian_miou(pairs(), model.num_classes - 1, len(classes) - 1)
    return {
        "miou": round(float(result["miou"]), 4),
        "per_class_iou": {names[int(c)]: round(float(v), 4) for c, v in result["per_class"].items()},
        "evaluated_images": len(records),
        "absent_gt_classes": [names[int(c)] for c in result["absent_gt_classes"]],
        "split": f"{split}/{type_}",
    }
