"""The ``train_seg`` stage: the component segmenter trained on the pseudo-labels, and the Patch Histogram fitted on
its predictions.

Reads ``data/pseudo_labels/<category>/``, ``data/refined/<category>/`` (LSA components), ``data/proposals/<category>/``
(LSA background) and the images; writes ``models/<category>/segmenter.pt`` (one dict saved with ``torch.save``, read
back by :func:`csad.seg.checkpoint.load_segmenter`: ``{"segmenter": {"config", "state_dict"}, "patch_hist": {name:
tensor}, "image_size": int, "train_config": dict}``), the training curves ``metrics/<category>/train_seg/``
(dvclive) and ``metrics/<category>/segmentation.json`` (mIoU on test/good against component_gt, when the dataset
has it). The algorithms are :mod:`csad.seg` and :class:`csad.scoring.patch_hist.PatchHistogramScorer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dvclive import Live

from csad.artifacts import category_metrics_dir, stage_metrics, stage_output
from csad.data.loco import LocoCategory, read_image
from csad.errors import CsadError, ParamsError
from csad.io import numpy_to_tensors, read_json, save_checkpoint, write_json
from csad.models.segmenter import predict_labels
from csad.models.spec import BackboneSpec
from csad.params import build_with_kwargs
from csad.pipeline.stage import StageInputs
from csad.pseudo.store import read_map, read_mask
from csad.scoring.patch_hist import PatchHistogramScorer
from csad.seg.checkpoint import load_segmenter
from csad.seg.config import SegTrainConfig
from csad.seg.data import prepare_data
from csad.seg.quality import segmentation_quality
from csad.seg.train import train_segmenter


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``train_seg`` stage for one category; return the metrics written to ``segmentation.json``."""
    name, device = inputs.category.name, inputs.device()
    checkpoint = stage_output("train_seg", name)
    with Live(dir=str(category_metrics_dir(name) / "train_seg"), save_dvc_exp=False, dvcyaml=None) as live:

        def log_step(step: int, losses: dict[str, float]) -> None:
            for key, value in losses.items():
                live.log_metric(f"train/{key}", float(value), plot=True)
            live.next_step()

        summary = train_category_segmenter(
            inputs.category,
            stage_output("filter", name),
            stage_output("refine", name),
            stage_output("propose", name),
            inputs.config,
            device,
            checkpoint,
            callback=log_step,
        )
    model, _, size = load_segmenter(checkpoint, device=device)
    metrics = {**segmentation_quality(inputs.category, model, size, device), **summary}
    write_json(stage_metrics("train_seg", name), metrics)
    return metrics


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
    ph = cfg["patch_hist"]
    try:  # checked before the training, not after it
        scorer = PatchHistogramScorer(
            num_classes, [tuple(g) for g in ph["grids"]], ph["lower"], ph["upper"], ph["count_min_fraction"]
        )
    except ValueError as err:
        raise ParamsError(f"params.yaml: {err}") from None
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
    data = prepare_data(images, labels, instances, backgrounds, train_cfg.image_size, fill=train_cfg.fill_holes)
    model, history = train_segmenter(data, num_classes, train_cfg, backbone, callback, progress=True)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    size = train_cfg.image_size
    val_images = [read_image(r.path) for r in category.split("validation")]
    train_maps = np.stack(predict_labels(model, images, size, device=device))
    val_maps = np.stack(predict_labels(model, val_images, size, device=device))
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
