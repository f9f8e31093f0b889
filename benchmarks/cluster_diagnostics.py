"""Benchmark: where the clustering of components into pseudo-classes loses mIoU, and what other clusterings give.

    python benchmarks/cluster_diagnostics.py [--categories pushpins screw_bag] \\
        [--out metrics/benchmarks/cluster_diagnostics.json]

Reads, never writes, the pipeline's outputs of one category: the component descriptors and their MeanShift clusters
(``data/components/<category>/``, ``data/clusters/<category>/``), the refined instances
(``data/refined/<category>/instances``), the labelled train images chosen by the filter stage
(``data/pseudo_labels/<category>/labeled.parquet``), and the synthetic ``component_gt`` of the dataset, which is
read only to SCORE (categories without it are skipped). Needs ``dvc repro --glob 'filter@*'`` first.

Every component is scored as the GT class covering most of its pixels (background included). Reported per category:

- ``descriptor_knn_accuracy``: 5-fold cross-validated accuracy of a 5-nearest-neighbour classifier that predicts a
  component's GT class from its descriptor (scikit-learn). A supervised upper bound on what the descriptors tell
  apart: near 1.0 means the classes are separable in descriptor space and an unsupervised grouping loses the rest.
- per clustering, on the labelled images (each component painted with its cluster, clusters under the
  ``cluster.alpha`` size dropped as the cluster stage does):
  ``miou``: Hungarian one-to-one mIoU (:func:`csad.pseudo.quality.hungarian_miou`, the pseudo-label metric before
  the filter stage's class pruning), ``miou_many_to_one``: every cluster takes the GT class that covers most of
  its pixels over all train images, so a class split over several clusters is not penalised (the loss from
  fragmentation is ``miou_many_to_one - miou``; the rest of the gap to the instance ceiling is classes merged into
  one cluster), ``clusters``.

The clusterings: ``stage`` (the cluster stage's own, read from its output: MeanShift, then
:func:`csad.pseudo.cluster.merge_steady_clusters` when ``cluster.merge_max_std_ratio`` > 0); ``hdbscan``
(scikit-learn's HDBSCAN, ``min_cluster_size`` the cluster stage's alpha minimum, noise components given the cluster
of their nearest clustered neighbour); ``gmm_bic`` (Gaussian mixture, full covariance, K in 2..20 chosen by BIC,
seed 0); ``meanshift_zscore`` (MeanShift on per-dimension z-scored descriptors, bandwidth by the cluster stage's rule).

Results are merged into ``--out`` (one entry per category) with the mean over the categories run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _cli import category_parser, start_benchmark
from sklearn.cluster import HDBSCAN, MeanShift
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from csad.data.loco import LocoCategory
from csad.imaging import resize_label
from csad.io import read_json, read_label_png, write_json
from csad.pseudo.cluster import alpha_min_members, auto_bandwidth
from csad.pseudo.quality import component_gt_dir, hungarian_miou
from csad.pseudo.store import read_map
from csad.settings import stage_config

log = logging.getLogger("cluster_diagnostics")


def keep_large(raw: np.ndarray, min_members: int) -> np.ndarray:
    """Return ``raw`` cluster labels with clusters under ``min_members`` (and labels < 0) set to -1, the others
    renumbered 0..n-1 by decreasing size (ties by label)."""
    raw = np.asarray(raw, dtype=np.int64)
    ids, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = [int(i) for s, i in sorted(zip(-sizes, ids, strict=True)) if -s >= min_members]
    out = np.full(raw.shape, -1, dtype=np.int64)
    for new, old in enumerate(order):
        out[raw == old] = new
    return out


def alternative_clusterings(
    features: np.ndarray, stage_labels: np.ndarray, min_members: int, quantile: float, seed: int
) -> dict[str, np.ndarray]:
    """Return the raw labels of the alternative clusterings of the (N, D) ``features`` (module docstring)."""
    out: dict[str, np.ndarray] = {}
    hdb = HDBSCAN(min_cluster_size=max(2, min_members)).fit(features).labels_.copy()
    if (hdb >= 0).any() and (hdb < 0).any():
        clustered = hdb >= 0
        nearest = NearestNeighbors(n_neighbors=1).fit(features[clustered]).kneighbors(features[~clustered])[1][:, 0]
        hdb[~clustered] = hdb[clustered][nearest]
    out["hdbscan"] = hdb
    best: tuple[float, np.ndarray] | None = None
    for k in range(2, min(20, len(features) - 1) + 1):
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-4).fit(features)
        bic = float(gmm.bic(features))
        if best is None or bic < best[0]:
            best = (bic, gmm.predict(features))
    if best is not None:
        out["gmm_bic"] = best[1]
    z = (features - features.mean(axis=0)) / np.maximum(features.std(axis=0), 1e-9)
    out["meanshift_zscore"] = MeanShift(bandwidth=auto_bandwidth(z, quantile, seed=seed)).fit(z).labels_
    out["stage"] = stage_labels
    return out


def diagnose(category: LocoCategory, params: dict[str, Any], data: Path) -> dict[str, Any] | None:
    """Return the diagnostics of one category (module docstring), or None when it has no component_gt."""
    gt_dir = component_gt_dir(category)
    if gt_dir is None:
        return None
    name = category.name
    n_gt = len(read_json(category.root / "component_classes.json")) - 1
    comps = pd.read_parquet(data / "components" / name / "components.parquet")
    features = np.load(data / "components" / name / "features.npy").astype(np.float64)
    clusters = pd.read_parquet(data / "clusters" / name / "clusters.parquet")
    comps = comps.merge(clusters, on=["key", "stem", "component"], how="left", validate="one_to_one")
    labeled = pd.read_parquet(data / "pseudo_labels" / name / "labeled.parquet")
    labeled_keys = set(labeled.loc[labeled["labeled"], "key"])
    maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, stem in comps[["key", "stem"]].drop_duplicates().itertuples(index=False):
        gt = read_label_png(gt_dir / key)
        inst = read_map(data / "refined" / name / "instances", stem, "refine")
        maps[key] = (resize_label(inst, gt.shape) if inst.shape != gt.shape else inst, gt)
    # pixels of every GT class under every component, (N, n_gt + 1)
    votes = np.zeros((len(comps), n_gt + 1), dtype=np.int64)
    for i, (key, component) in enumerate(comps[["key", "component"]].itertuples(index=False)):
        inst, gt = maps[key]
        votes[i] = np.bincount(gt[inst == component], minlength=n_gt + 1)
    truth = votes.argmax(axis=1)
    knn = cross_val_score(KNeighborsClassifier(5), features, truth, cv=5).mean() if len(comps) >= 10 else None

    cluster_cfg = stage_config(params, "cluster", name)
    min_members = alpha_min_members(len(category.split("train")), float(cluster_cfg["alpha"]))
    stage_labels = comps["cluster"].fillna(-1).astype(np.int64).to_numpy()
    raw = alternative_clusterings(
        features, stage_labels, min_members, float(cluster_cfg["bandwidth_quantile"]), int(cluster_cfg["seed"])
    )
    labelings = {m: keep_large(r, min_members) for m, r in raw.items()}

    def pairs(labels: np.ndarray, lut_of: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for key in sorted(labeled_keys):
            inst, gt = maps[key]
            lut = np.zeros(int(inst.max(initial=0)) + 1, dtype=np.int64)
            rows = np.flatnonzero(comps["key"].to_numpy() == key)
            for row in rows:
                component, label = int(comps["component"].iat[row]), int(labels[row])
                if label >= 0 and component < lut.size:
                    lut[component] = lut_of[label]
            yield lut[inst], gt

    result: dict[str, Any] = {
        "components": len(comps),
        "labeled_images": len(labeled_keys),
        "descriptor_knn_accuracy": None if knn is None else round(float(knn), 4),
        "clusterings": {},
    }
    for method in ("stage", "hdbscan", "gmm_bic", "meanshift_zscore"):
        if method not in labelings:
            continue
        labels = labelings[method]
        n = int(labels.max(initial=-1)) + 1
        one_to_one = hungarian_miou(pairs(labels, np.arange(1, n + 1)), n, n_gt)["miou"]
        majority = np.array([votes[labels == c].sum(axis=0).argmax() for c in range(n)], dtype=np.int64)
        many_to_one = hungarian_miou(pairs(labels, majority), n_gt, n_gt)["miou"]
        result["clusterings"][method] = {
            "miou": round(float(one_to_one), 4),
            "miou_many_to_one": round(float(many_to_one), 4),
            "clusters": n,
        }
    return result


def main(argv: list[str] | None = None) -> None:
    """Diagnose every requested category and merge the results into the JSON file."""
    parser = category_parser(__doc__, "metrics/benchmarks/cluster_diagnostics.json")
    parser.add_argument("--data", default="data", help="the pipeline's outputs (read only)")
    args = parser.parse_args(argv)
    params, categories, results = start_benchmark(args)
    per_cat: dict[str, Any] = results.get("per_category", {})
    for name in categories:
        result = diagnose(LocoCategory.open(params["dataset"]["root"], name), params, Path(args.data))
        if result is None:
            print(f"{name}: no component_gt, skipped", flush=True)
            continue
        per_cat[name] = result
        cells = " ".join(
            f"{m}={r['miou']:.3f}/{r['miou_many_to_one']:.3f}(k{r['clusters']})"
            for m, r in result["clusterings"].items()
        )
        print(f"{name}: knn={result['descriptor_knn_accuracy']} {cells}", flush=True)
    methods = sorted({m for r in per_cat.values() for m in r["clusterings"]})
    mean = {
        m: {
            k: round(float(np.mean([r["clusterings"][m][k] for r in per_cat.values()])), 4)
            for k in ("miou", "miou_many_to_one")
        }
        for m in methods
    }
    mean["descriptor_knn_accuracy"] = round(float(np.mean([r["descriptor_knn_accuracy"] for r in per_cat.values()])), 4)
    write_json(Path(args.out), {"per_category": dict(sorted(per_cat.items())), "mean": mean})
    for m in methods:
        print(f"MEAN {m}: miou={mean[m]['miou']:.4f} many_to_one={mean[m]['miou_many_to_one']:.4f}", flush=True)


if __name__ == "__main__":
    main()
