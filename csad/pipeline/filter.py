"""The ``filter`` stage: the final semantic pseudo-labels (0 = background, 1..K = classes) and their quality.

Reads ``data/components/<category>/`` and ``data/clusters/<category>/``; writes ``data/pseudo_labels/<category>/``,
the metric ``metrics/<category>/pseudo_labels.json`` (consistency; mIoU against component_gt when the dataset has
it, with the instance ceiling read from ``data/refined/<category>/``) and the plot
``metrics/<category>/pseudo_labels.png``. The algorithms are :mod:`csad.pseudo.histfilter` and
:mod:`csad.pseudo.quality`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from csad.artifacts import instances_dir, stage_metrics, stage_output
from csad.data.loco import ImageRecord
from csad.errors import CsadError
from csad.io import atomic_dir, write_json, write_png
from csad.params import build_with_kwargs
from csad.pipeline._loop import without_timing
from csad.pipeline.features import read_components
from csad.pipeline.stage import StageInputs
from csad.pseudo.histfilter import class_area_histograms, filter_histograms, label_consistency, remap_labels
from csad.pseudo.histfilter_config import FilterConfig
from csad.pseudo.quality import pseudo_label_grid, pseudo_label_quality
from csad.pseudo.store import read_map, write_map

log = logging.getLogger(__name__)


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``filter`` stage for one category; return the metrics written to ``pseudo_labels.json``."""
    name, category = inputs.category.name, inputs.category
    out = stage_output("filter", name)
    records = category.split("train")
    summary = run_filter(records, stage_output("features", name), stage_output("cluster", name), inputs.config, out)
    labeled = pd.read_parquet(out / "labeled.parquet")
    labeled_keys = labeled.loc[labeled["labeled"], "key"].tolist()
    metrics = {
        "num_classes": summary["classes"],
        "labeled_images": summary["labeled_images"],
        "train_images": summary["images"],
        **summary["consistency"],
        **pseudo_label_quality(
            category, out / "labels", labeled_keys, summary["classes"], instances_dir=instances_dir(name)
        ),
    }
    write_json(stage_metrics("filter", name), metrics)
    write_png(
        stage_metrics("filter", name).with_suffix(".png"),
        pseudo_label_grid(records, out / "labels", set(labeled_keys)),
    )
    return metrics


def run_filter(
    records: Sequence[ImageRecord], components_dir: Path, clusters_dir: Path, cfg: Mapping[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Filter unreliable pseudo-label maps by their class-area histograms (HDBSCAN + top-ratio rule; ``cfg``: the
    ``filter`` params section, :class:`csad.pseudo.histfilter_config.FilterConfig`), prune small classes and remap to
    1..K; write ``labels/<stem>.png``, ``labeled.parquet``, ``histograms.parquet``, ``classes.json`` and
    ``summary.json`` into ``out_dir``; return the summary.

    Raises:
        ParamsError: an unknown key or a bad value in ``cfg``.
        CsadError: a missing or inconsistent upstream artifact, or no class survives (K = 0), with the params to
            change.
    """
    config = build_with_kwargs(FilterConfig, dict(cfg), "filter")
    table, _ = read_components(components_dir)
    clusters = pd.read_parquet(clusters_dir / "clusters.parquet")
    table = table.merge(clusters[["key", "component", "cluster"]], on=["key", "component"], how="left", validate="1:1")
    keys = [r.key for r in records]
    index_of = {k: i for i, k in enumerate(keys)}
    unknown = set(table["key"]) - set(index_of)
    if unknown:
        raise CsadError(f"{components_dir}: components of images not in train/good: {sorted(unknown)[:3]}; rerun")
    n_raw = int(table["cluster"].max()) + 1 if len(table) else 0
    images = pd.read_parquet(components_dir / "images.parquet").set_index("key")
    missing = [k for k in keys if k not in images.index]
    if missing:
        raise CsadError(f"{components_dir}/images.parquet lacks {missing[:3]}: rerun the features stage")
    image_areas = images.loc[keys, "image_area"].to_numpy(dtype=np.float64)
    hists = class_area_histograms(
        table["key"].map(index_of).to_numpy(), table["cluster"].to_numpy(), table["area"].to_numpy(), image_areas, n_raw
    )
    result = filter_histograms(hists, **asdict(config))
    for w in result.warnings:
        log.warning("filter: %s", w)
    kept = result.kept_classes
    summary = {
        "images": len(keys),
        "labeled_images": int(result.labeled.sum()),
        "classes": len(kept),
        "raw_clusters": n_raw,
        "kept_raw_clusters": kept.tolist(),
        "hdbscan_min_cluster_size": result.min_cluster_size,
        "hdbscan_clusters": len(set(result.hdbscan_labels.tolist()) - {-1}),
        "consistency": label_consistency(hists, result),
        "warnings": result.warnings,
    }
    if len(kept) == 0:
        raise CsadError(
            f"filter: no component class survived (raw clusters {n_raw}, min_class_area {config.min_class_area}); "
            f"check the cluster stage (cluster.bandwidth, cluster.alpha) for this category"
        )
    with atomic_dir(out_dir) as tmp:
        for rec in tqdm(records, desc="pseudo-labels", unit="img"):
            cluster_map = read_map(clusters_dir / "maps", rec.stem, "cluster")
            write_map(tmp / "labels" / f"{rec.stem}.png", remap_labels(cluster_map, kept))
        pd.DataFrame(
            {
                "key": keys,
                "stem": [r.stem for r in records],
                "labeled": result.labeled,
                "hdbscan_label": result.hdbscan_labels,
            }
        ).to_parquet(tmp / "labeled.parquet", index=False)
        filtered = pd.DataFrame(hists[:, kept], columns=[f"class_{i}" for i in range(1, len(kept) + 1)])
        filtered.insert(0, "key", keys)
        filtered.to_parquet(tmp / "histograms.parquet", index=False)
        write_json(tmp / "classes.json", {"num_classes": len(kept), "raw_clusters": kept.tolist()})
        write_json(tmp / "summary.json", without_timing(summary))
    return summary
