"""The ``features`` stage: a rotation-invariant descriptor per refined component.

Reads ``data/refined/<category>/`` and the train images; writes ``data/components/<category>/`` and the timing
``metrics/<category>/timing/features.json``. The algorithm is :mod:`csad.pseudo.features`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csad.artifacts import stage_output
from csad.data.loco import ImageRecord, read_image
from csad.errors import CsadError
from csad.io import atomic_dir, write_json
from csad.params import build_with_kwargs
from csad.pipeline._loop import without_timing
from csad.pipeline.stage import StageInputs, write_timing
from csad.pseudo.features import build_feature_backbone, extract_features_batch, feature_dim
from csad.pseudo.features_config import ComponentFeatureConfig
from csad.pseudo.store import read_map


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``features`` stage for one category; return its summary."""
    name = inputs.category.name
    summary = run_features(
        inputs.category.split("train"),
        stage_output("refine", name),
        inputs.config,
        inputs.device(),
        stage_output("features", name),
    )
    write_timing(name, "features", summary)
    return summary


def run_features(
    records: Sequence[ImageRecord], refined_dir: Path, cfg: Mapping[str, Any], device: str, out_dir: Path
) -> dict[str, Any]:
    """Describe every refined component of every train image; write ``components.parquet`` (one row per
    component: key, stem, component, area, bbox, centre, image_area), ``features.npy`` (N x D float32, same row
    order), ``images.parquet`` (one row per image) and ``summary.json`` into ``out_dir``; return the summary."""
    config = build_with_kwargs(ComponentFeatureConfig, {**cfg, "device": device}, "features")
    backbone = build_feature_backbone(config)
    if backbone is not None:
        backbone = backbone.to(device)
    start = time.perf_counter()
    images = [read_image(r.path) for r in records]
    instance_maps = [read_map(refined_dir / "instances", r.stem, "refine") for r in records]
    per_image = extract_features_batch(images, instance_maps, config, backbone, progress=True)
    seconds = time.perf_counter() - start
    rows, feats, image_rows = [], [], []
    for rec, image, (comp_records, comp_feats) in zip(records, images, per_image, strict=True):
        area = int(image.shape[0] * image.shape[1])
        image_rows.append(
            {
                "key": rec.key,
                "stem": rec.stem,
                "height": image.shape[0],
                "width": image.shape[1],
                "image_area": area,
                "components": len(comp_records),
            }
        )
        rows += [{"key": rec.key, "stem": rec.stem, **r, "image_area": area} for r in comp_records]
        feats.append(comp_feats)
    dim = feature_dim(config, backbone)
    matrix = np.concatenate(feats, axis=0) if feats else np.zeros((0, dim), np.float32)
    summary = {
        "images": len(records),
        "components": len(rows),
        "feature_dim": int(matrix.shape[1]),
        "descriptors": list(config.descriptors),
        "seconds": round(seconds, 3),
        "seconds_per_image": round(seconds / max(1, len(records)), 4),
        "images_without_components": [r["key"] for r in image_rows if r["components"] == 0],
    }
    if not rows:
        raise CsadError(f"features: no component in any refined map of {refined_dir}; check the refine stage")
    with atomic_dir(out_dir) as tmp:
        pd.DataFrame(rows).to_parquet(tmp / "components.parquet", index=False)
        pd.DataFrame(image_rows).to_parquet(tmp / "images.parquet", index=False)
        np.save(tmp / "features.npy", matrix.astype(np.float32), allow_pickle=False)
        write_json(tmp / "summary.json", without_timing(summary))
    return summary


def read_components(components_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the component table and its (N, D) feature matrix written by the features stage."""
    table_path, feat_path = components_dir / "components.parquet", components_dir / "features.npy"
    for path in (table_path, feat_path):
        if not path.is_file():
            raise CsadError(f"{path} is missing: rerun the features stage (dvc repro) for this category")
    table = pd.read_parquet(table_path)
    features = np.load(feat_path, allow_pickle=False)
    if len(table) != len(features):
        raise CsadError(f"{components_dir}: {len(table)} components but {len(features)} feature rows; rerun features")
    return table, features
