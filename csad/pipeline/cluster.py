"""The ``cluster`` stage: component classes by MeanShift on the component descriptors.

Reads ``data/components/<category>/`` and ``data/refined/<category>/``; writes ``data/clusters/<category>/``.
The algorithm is :mod:`csad.pseudo.cluster`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from csad.artifacts import stage_output
from csad.errors import CsadError
from csad.io import atomic_dir, write_json
from csad.params import build_with_kwargs
from csad.pipeline._loop import without_timing
from csad.pipeline.features import read_components
from csad.pipeline.stage import StageInputs
from csad.pseudo.cluster import alpha_min_members, cluster_components, merge_steady_clusters
from csad.pseudo.cluster_config import ClusterConfig
from csad.pseudo.store import read_map, write_map


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``cluster`` stage for one category; return its summary."""
    name = inputs.category.name
    return run_cluster(
        stage_output("features", name),
        stage_output("refine", name),
        inputs.config,
        len(inputs.category.split("train")),
        stage_output("cluster", name),
    )


def run_cluster(
    components_dir: Path, refined_dir: Path, cfg: Mapping[str, Any], n_images: int, out_dir: Path
) -> dict[str, Any]:
    """Cluster all components of a category (``cfg``: the ``cluster`` params section,
    :class:`csad.pseudo.cluster_config.ClusterConfig`: random projection, MeanShift at its bandwidth, clusters under
    alpha dropped, then clusters whose per-image areas trade off over the ``n_images`` train images merged by
    :func:`csad.pseudo.cluster.merge_steady_clusters`); write ``clusters.parquet`` (one row per component: its
    cluster, -1 = dropped), ``maps/<stem>.png`` (cluster k painted as k + 1) and ``summary.json`` (with the
    ``steady_merges`` made) into ``out_dir``; return the summary.

    Raises:
        ParamsError: an unknown key or a bad value in ``cfg`` (e.g. a bandwidth neither ``"auto"`` nor > 0).
        CsadError: a missing or inconsistent features artifact, or no cluster kept (names the param to change).
    """
    config = build_with_kwargs(ClusterConfig, dict(cfg), "cluster")
    table, features = read_components(components_dir)
    min_members = alpha_min_members(n_images, config.alpha)
    bandwidth = config.bandwidth_for(features)
    result = cluster_components(features, bandwidth, min_members, config.proj_dim, config.seed, config.n_jobs)
    keys = sorted(table["key"].unique())
    result, merges = merge_steady_clusters(
        result,
        np.searchsorted(keys, table["key"].to_numpy()),
        table["area"].to_numpy(dtype=np.float64) / table["image_area"].to_numpy(dtype=np.float64),
        max(n_images, len(keys)),
        config.merge_max_std_ratio,
        config.merge_min_copresence,
    )
    table = table.assign(cluster=result.labels)
    summary = {
        "components": len(table),
        "bandwidth": round(bandwidth, 6),
        "clusters_kept": result.n_clusters,
        "cluster_sizes": result.sizes.tolist(),
        "clusters_dropped": len(result.dropped_sizes),
        "dropped_sizes": result.dropped_sizes.tolist(),
        "min_members": min_members,
        "steady_merges": [asdict(m) for m in merges],
    }
    if result.n_clusters == 0:
        summary["warnings"] = [f"every cluster has fewer than {min_members} members (alpha {config.alpha})"]
    with atomic_dir(out_dir) as tmp:
        table[["key", "stem", "component", "cluster"]].to_parquet(tmp / "clusters.parquet", index=False)
        for stem, group in tqdm(table.groupby("stem", sort=True), desc="cluster maps", unit="img"):
            instances = read_map(refined_dir / "instances", str(stem), "refine")
            lut = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.int64)
            lut[group["component"].to_numpy()] = group["cluster"].to_numpy() + 1
            write_map(tmp / "maps" / f"{stem}.png", lut[instances])
        write_json(tmp / "summary.json", without_timing(summary))
    if result.n_clusters == 0:
        knob = "cluster.bandwidth_quantile" if config.bandwidth == "auto" else "cluster.bandwidth"
        raise CsadError(
            f"cluster: no cluster has at least {min_members} members ({len(table)} components, bandwidth "
            f"{bandwidth:.6g}); raise {knob} or lower cluster.alpha for this category"
        )
    return summary
