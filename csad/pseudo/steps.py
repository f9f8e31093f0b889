"""The per-category work of each pseudo-label stage: loops over the train images, reading and writing artifacts.

Each ``run_*`` function writes exactly one output folder (built in a temporary sibling, renamed into place when
complete) and returns a small JSON-ready summary. Images are processed in key order; maps are keyed by the train
image's stem (``train/good/<stem>.png`` -> ``<out>/<stem>.png``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from csad.data.loco import ImageRecord, read_image
from csad.errors import CsadError, ParamsError
from csad.io import atomic_dir, write_json
from csad.pseudo.masks import relabel_sequential
from csad.pseudo.refine import refine_instances
from csad.pseudo.store import read_map, read_mask, write_map, write_mask
from csad.pseudo.types import GroundingBackend, ProposalBackend

log = logging.getLogger(__name__)


def _timed_loop(
    records: Sequence[ImageRecord], desc: str, work: Callable[[ImageRecord], dict[str, Any]]
) -> tuple[list[dict[str, Any]], float]:
    rows = []
    start = time.perf_counter()
    for rec in tqdm(records, desc=desc, unit="img"):
        rows.append({"key": rec.key, "stem": rec.stem, **work(rec)})
    return rows, time.perf_counter() - start


TIMING_KEYS = ("seconds", "seconds_per_image")


def without_timing(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``summary`` without wall-clock figures, so the artifact written from it is bit-reproducible (timings
    go to the stage's metrics file instead)."""
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def _summary(rows: list[dict[str, Any]], seconds: float, **extra: Any) -> dict[str, Any]:
    warned = {r["key"]: r["warnings"] for r in rows if r.get("warnings")}
    return {
        "images": len(rows),
        "seconds": round(seconds, 3),
        "seconds_per_image": round(seconds / max(1, len(rows)), 4),
        "empty_images": [r["key"] for r in rows if r.get("instances", 1) == 0],
        "warnings": warned,
        **extra,
    }


class LazyImages(Sequence[np.ndarray]):
    """The RGB images of ``records`` as a sequence that reads each one from disk when it is indexed (so a backend's
    ``fit`` never holds a whole full-resolution train set in memory), with a progress bar over one pass."""

    def __init__(self, records: Sequence[ImageRecord], desc: str = "read") -> None:
        self.records = list(records)
        self.desc = desc

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("LazyImages does not support slicing")
        return read_image(self.records[index].path)

    def __iter__(self) -> Iterator[np.ndarray]:
        for rec in tqdm(self.records, desc=self.desc, unit="img"):
            yield read_image(rec.path)


def run_grounding(
    records: Sequence[ImageRecord], backend: GroundingBackend, prompt: str, out_dir: Path
) -> dict[str, Any]:
    """Ground ``prompt`` in every image; write ``instances/<stem>.png``, ``background/<stem>.png``,
    ``grounding.parquet`` and ``summary.json`` into ``out_dir``; return the summary.

    A backend with a ``fit(images)`` method (one that learns from the train images, e.g.
    :class:`csad.pseudo.pretrained.PretrainedGrounding`) is fitted on all ``records`` first; its summary (a mapping;
    any other return value counts as an empty one) goes to ``summary.json`` under ``fit``, its ``warnings`` are
    logged, and its ``state()`` arrays, when it has them, go to ``model.npz``.
    """
    with atomic_dir(out_dir) as tmp:
        fit_summary = None
        if hasattr(backend, "fit"):
            fit_start = time.perf_counter()
            images = LazyImages(records, desc="ground: fit on the train images")
            fitted = backend.fit(images)
            fit_summary = dict(fitted) if isinstance(fitted, Mapping) else {}
            fit_summary["seconds"] = round(time.perf_counter() - fit_start, 3)
            del images
            for w in fit_summary.get("warnings") or []:
                log.warning("ground fit: %s", w)
            if hasattr(backend, "state"):
                np.savez(tmp / "model.npz", **backend.state())

        def work(rec: ImageRecord) -> dict[str, Any]:
            result = backend(read_image(rec.path), prompt)
            write_map(tmp / "instances" / f"{rec.stem}.png", result.instances)
            write_mask(tmp / "background" / f"{rec.stem}.png", result.background)
            for w in result.warnings:
                log.warning("%s: %s", rec.key, w)
            return {
                "instances": int(len(np.unique(result.instances)) - (1 if (result.instances == 0).any() else 0)),
                "background_fraction": float(result.background.mean()),
                "phrases": " | ".join(result.phrases),
                "warnings": "; ".join(result.warnings),
            }

        rows, seconds = _timed_loop(records, "ground", work)
        pd.DataFrame(rows).to_parquet(tmp / "grounding.parquet", index=False)
        extra = {} if fit_summary is None else {"fit": fit_summary}
        summary = _summary(rows, seconds, prompt=prompt, **extra)
        if fit_summary is not None:  # the fit is part of the stage's work: count it in both timings
            summary["seconds"] = round(summary["seconds"] + fit_summary["seconds"], 3)
            summary["seconds_per_image"] = round(summary["seconds"] / max(1, len(rows)), 4)
        written = without_timing(summary)
        if fit_summary is not None:
            written["fit"] = {k: v for k, v in fit_summary.items() if k != "seconds"}
        write_json(tmp / "summary.json", written)
    return summary


def run_proposals(records: Sequence[ImageRecord], backend: ProposalBackend, out_dir: Path) -> dict[str, Any]:
    """Propose part-level instances in every image; write ``instances/``, ``background/``, ``proposals.parquet``
    and ``summary.json`` into ``out_dir``; return the summary."""
    with atomic_dir(out_dir) as tmp:

        def work(rec: ImageRecord) -> dict[str, Any]:
            result = backend(read_image(rec.path))
            write_map(tmp / "instances" / f"{rec.stem}.png", result.instances)
            write_mask(tmp / "background" / f"{rec.stem}.png", result.background)
            for w in result.warnings:
                log.warning("%s: %s", rec.key, w)
            return {
                "instances": int(result.instances.max(initial=0)),
                "background_fraction": float(result.background.mean()),
                "warnings": "; ".join(result.warnings),
            }

        rows, seconds = _timed_loop(records, "propose", work)
        pd.DataFrame(rows).to_parquet(tmp / "proposals.parquet", index=False)
        summary = _summary(rows, seconds)
        write_json(tmp / "summary.json", without_timing(summary))
    return summary


def run_refine(
    records: Sequence[ImageRecord], grounding_dir: Path, proposals_dir: Path, cfg: Mapping[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Refine every image's proposals with its grounding (fine or coarse mode of ``cfg``); write
    ``<stem>.png`` instance maps and ``summary.json`` into ``out_dir``; return the summary."""
    with atomic_dir(out_dir) as tmp:

        def work(rec: ImageRecord) -> dict[str, Any]:
            refined = refine_instances(
                read_map(proposals_dir / "instances", rec.stem, "propose"),
                read_mask(proposals_dir / "background", rec.stem, "propose"),
                read_map(grounding_dir / "instances", rec.stem, "ground"),
                read_mask(grounding_dir / "background", rec.stem, "ground"),
                **cfg,
            )
            refined = relabel_sequential(refined)
            write_map(tmp / "instances" / f"{rec.stem}.png", refined)
            n = int(refined.max(initial=0))
            return {"instances": n, "warnings": "no instance left after refinement" if n == 0 else ""}

        rows, seconds = _timed_loop(records, "refine", work)
        summary = _summary(rows, seconds, mode=cfg.get("mode"))
        write_json(tmp / "summary.json", without_timing(summary))
    if summary["empty_images"] and len(summary["empty_images"]) == len(records):
        raise CsadError(
            f"refine: no image has any component left ({out_dir}); check the ground/propose outputs and "
            f"refine params (mode, use_grounding_filter)"
        )
    return summary


def run_cluster(
    components_dir: Path, refined_dir: Path, cfg: Mapping[str, Any], n_images: int, out_dir: Path
) -> dict[str, Any]:
    """Cluster all components of a category (random projection + MeanShift with ``cfg["bandwidth"]``, or with
    :func:`csad.pseudo.cluster.auto_bandwidth` at ``cfg["bandwidth_quantile"]`` when it is ``"auto"``; clusters
    under alpha dropped); write
    ``clusters.parquet`` (one row per component: its cluster, -1 = dropped), ``maps/<stem>.png`` (cluster k painted
    as k + 1) and ``summary.json`` into ``out_dir``; return the summary.

    Raises:
        ParamsError: ``cfg["bandwidth"]`` is neither ``"auto"`` nor a finite number > 0.
        CsadError: a missing or inconsistent features artifact, or no cluster kept (names the param to change).
    """
    from csad.pseudo.cluster import alpha_min_members, auto_bandwidth, cluster_components

    table, features = read_components(components_dir)
    min_members = alpha_min_members(n_images, cfg["alpha"])
    bandwidth = cfg["bandwidth"]
    numeric = isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool)
    if bandwidth != "auto" and not (numeric and 0 < bandwidth < math.inf):
        raise ParamsError(f"cluster.bandwidth must be a finite number > 0 or 'auto', got {bandwidth!r}")
    if bandwidth == "auto":
        bandwidth = auto_bandwidth(features, cfg["bandwidth_quantile"], cfg["proj_dim"], cfg["seed"])
    result = cluster_components(features, float(bandwidth), min_members, cfg["proj_dim"], cfg["seed"], cfg["n_jobs"])
    table = table.assign(cluster=result.labels)
    summary = {
        "components": len(table),
        "bandwidth": round(float(bandwidth), 6),
        "clusters_kept": result.n_clusters,
        "cluster_sizes": result.sizes.tolist(),
        "clusters_dropped": len(result.dropped_sizes),
        "dropped_sizes": result.dropped_sizes.tolist(),
        "min_members": min_members,
    }
    if result.n_clusters == 0:
        summary["warnings"] = [f"every cluster has fewer than {min_members} members (alpha {cfg['alpha']})"]
    with atomic_dir(out_dir) as tmp:
        table[["key", "stem", "component", "cluster"]].to_parquet(tmp / "clusters.parquet", index=False)
        for stem, group in tqdm(table.groupby("stem", sort=True), desc="cluster maps", unit="img"):
            instances = read_map(refined_dir / "instances", str(stem), "refine")
            lut = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.int64)
            lut[group["component"].to_numpy()] = group["cluster"].to_numpy() + 1
            write_map(tmp / "maps" / f"{stem}.png", lut[instances])
        write_json(tmp / "summary.json", without_timing(summary))
    if result.n_clusters == 0:
        knob = "cluster.bandwidth_quantile" if cfg["bandwidth"] == "auto" else "cluster.bandwidth"
        raise CsadError(
            f"cluster: no cluster has at least {min_members} members ({len(table)} components, bandwidth "
            f"{float(bandwidth):.6g}); raise {knob} or lower cluster.alpha for this category"
        )
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


def run_filter(
    records: Sequence[ImageRecord], components_dir: Path, clusters_dir: Path, cfg: Mapping[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Filter unreliable pseudo-label maps by their class-area histograms (HDBSCAN + top-ratio rule), prune small
    classes and remap to 1..K; write ``labels/<stem>.png``, ``labeled.parquet``, ``histograms.parquet``,
    ``classes.json`` and ``summary.json`` into ``out_dir``; return the summary.

    Raises:
        CsadError: no class survives (K = 0), with the params to change.
    """
    from csad.pseudo.histfilter import class_area_histograms, filter_histograms, label_consistency, remap_labels

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
    result = filter_histograms(
        hists,
        cfg["min_cluster_fraction"],
        cfg["top_ratio"],
        cfg["largest_only"],
        cfg["min_class_area"],
        cfg["prune_over"],
    )
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
            f"filter: no component class survived (raw clusters {n_raw}, min_class_area {cfg['min_class_area']}); "
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


def run_features(
    records: Sequence[ImageRecord], refined_dir: Path, cfg: Mapping[str, Any], device: str, out_dir: Path
) -> dict[str, Any]:
    """Describe every refined component of every train image; write ``components.parquet`` (one row per
    component: key, stem, component, area, bbox, centre, image_area), ``features.npy`` (N x D float32, same row
    order), ``images.parquet`` (one row per image) and ``summary.json`` into ``out_dir``; return the summary."""
    from csad.params import build_with_kwargs
    from csad.pseudo.features import ComponentFeatureConfig, build_feature_backbone, extract_features_batch, feature_dim

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
