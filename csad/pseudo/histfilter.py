"""Histogram filtering of unreliable pseudo-label maps and class pruning (docs/method.md 2.6), crash-free.

Each training image gets a class-area histogram (:func:`class_area_histograms`). HDBSCAN groups the histograms; for
each HDBSCAN cluster the images closest (L-inf) to its mean histogram are "labelled" (supervised in the segmenter
training); classes whose mean area over the largest cluster is tiny are pruned and the rest renumbered
(:func:`remap_labels`).

HDBSCAN implementation: ``sklearn.cluster.HDBSCAN``. It is what the released code calls (scikit-learn 1.5.1), so
its defaults (min_samples = min_cluster_size, "eom" selection, euclidean, no single cluster) are exactly the ones
that produced the published numbers; the ``hdbscan`` package agrees on clean data but differs on ambiguous data,
and its extras (approximate_predict, the condensed tree) are not needed here since we only read ``labels_``.

Fixes over the released code: the min_cluster_size decrement stops at 2 (sklearn's minimum) and, if every image is
still noise, HDBSCAN runs once more with one cluster allowed, so the maps that agree form the cluster and the
outliers stay noise (only if even that finds no cluster do all images form one, with a warning) instead of
crashing; fewer than 2 images (or no class
columns) are all labelled with a warning; every ranking is stable (ties by image index).

>>> import numpy as np
>>> hists = np.array([[0.5, 0.1, 0.0], [0.5, 0.1, 0.0005], [0.52, 0.1, 0.0], [0.48, 0.1, 0.0]])
>>> result = filter_histograms(hists, min_cluster_fraction=0.5)
>>> result.warnings[0].startswith("HDBSCAN found only noise")
True
>>> result.labeled.tolist(), result.kept_classes.tolist()
([True, False, False, False], [0, 1])
>>> remap_labels(np.array([[0, 1, 2, 3]]), result.kept_classes).tolist()
[[0, 1, 2, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import HDBSCAN

from csad.pseudo.histfilter_config import PRUNE_OVER
from csad.pseudo.histfilter_config import FilterConfig as FilterConfig  # re-export


@dataclass
class HistFilterResult:
    """Which images are labelled, and which classes survive, after histogram filtering."""

    labeled: np.ndarray  # (N_images,) bool: the image's pseudo-label map is used as supervision
    hdbscan_labels: np.ndarray  # (N_images,) int64: HDBSCAN cluster per image (-1 = noise; all 0 in the fallback)
    largest_cluster: int  # HDBSCAN label of the largest cluster (ties: lowest label); -1 when there are no images
    min_cluster_size: int  # the min_cluster_size of the last HDBSCAN run (0 when HDBSCAN did not run)
    kept_classes: np.ndarray  # (K,) int64: raw class indices kept, increasing
    warnings: list[str] = field(default_factory=list)


def class_area_histograms(
    image_index: np.ndarray, labels: np.ndarray, areas: np.ndarray, image_areas: np.ndarray, n_classes: int
) -> np.ndarray:
    """Return the (N_images, n_classes) float64 class-area histograms: entry [i, k] = summed pixel area of image
    i's components with label k, divided by image i's area (label -1 = dropped component, ignored).

    Args:
        image_index: (M,) image position (0..N_images-1) of each component.
        labels: (M,) cluster label of each component, -1..n_classes-1.
        areas: (M,) pixel area of each component.
        image_areas: (N_images,) pixel area (H * W) of each image, > 0.
        n_classes: number of raw classes (histogram columns).

    >>> class_area_histograms(np.array([0, 0, 1]), np.array([1, -1, 0]), np.array([4, 9, 2]), np.array([16, 8]), 2)
    array([[0.  , 0.25],
           [0.25, 0.  ]])
    """
    image_index = np.asarray(image_index, dtype=np.int64).ravel()
    labels = np.asarray(labels, dtype=np.int64).ravel()
    areas = np.asarray(areas, dtype=np.float64).ravel()
    image_areas = np.asarray(image_areas, dtype=np.float64).ravel()
    n_images = image_areas.size
    if not image_index.size == labels.size == areas.size:
        raise ValueError(
            f"class_area_histograms needs one image index, label and area per component, got "
            f"{image_index.size}, {labels.size} and {areas.size}"
        )
    if n_classes < 0:
        raise ValueError(f"class_area_histograms needs n_classes >= 0, got {n_classes}")
    if image_index.size and (image_index.min() < 0 or image_index.max() >= n_images):
        raise ValueError(f"class_area_histograms: image_index must lie in 0..{n_images - 1}")
    if labels.size and (labels.min() < -1 or labels.max() >= n_classes):
        raise ValueError(f"class_area_histograms: labels must lie in -1..{n_classes - 1}")
    if np.any(image_areas <= 0):
        raise ValueError("class_area_histograms: every image area must be > 0")
    keep = labels >= 0
    flat = image_index[keep] * n_classes + labels[keep]
    sums = np.bincount(flat, weights=areas[keep], minlength=n_images * n_classes)
    return sums.reshape(n_images, n_classes) / image_areas[:, None]


def filter_histograms(
    hists: np.ndarray,
    min_cluster_fraction: float = 0.1,
    top_ratio: float = 0.5,
    largest_only: bool = True,
    min_class_area: float = 0.001,
    prune_over: str = "largest",
) -> HistFilterResult:
    """Return which images are labelled and which classes are kept, from the (N_images, K) histograms.

    1. HDBSCAN(min_cluster_size = max(2, int(min_cluster_fraction * N))); while every image is noise, the size is
       decremented, never below 2; still all noise at 2 -> all images form cluster 0 (warning).
    2. For each HDBSCAN cluster j: rank ALL images by L-inf distance to the mean histogram of j's members (stable:
       ties by image index) and select the first max(1, int(top_ratio * |j|)).
    3. ``largest_only``: labelled = the selection of the largest cluster; else the union over all clusters.
    4. Kept classes: mean histogram > ``min_class_area`` over ``prune_over``: "largest" = the largest cluster's
       members (not the selection; the released code), "labeled" = the labelled images, "all" = every image.
       "labeled"/"all" keep classes that appear in only some normal images (e.g. one cable colour per connector
       size), which the released rule prunes whenever they are absent from the largest cluster.

    Raises:
        ValueError: ``hists`` is not 2-D or holds non-finite values, or ``top_ratio`` is outside (0, 1].
    """
    hists = np.asarray(hists, dtype=np.float64)
    if hists.ndim != 2:
        raise ValueError(f"filter_histograms needs (N_images, K) histograms, got shape {hists.shape}")
    if not np.all(np.isfinite(hists)):
        raise ValueError("filter_histograms got non-finite histogram values (NaN or inf)")
    if not 0 < top_ratio <= 1:
        raise ValueError(f"filter_histograms needs 0 < top_ratio <= 1, got {top_ratio}")
    n_images, n_classes = hists.shape
    if n_images == 0:
        return HistFilterResult(
            labeled=np.zeros(0, dtype=bool),
            hdbscan_labels=np.zeros(0, dtype=np.int64),
            largest_cluster=-1,
            min_cluster_size=0,
            kept_classes=np.zeros(0, dtype=np.int64),
            warnings=["no images: nothing to filter"],
        )
    warnings: list[str] = []
    if n_images < 2 or n_classes == 0:
        reason = f"only {n_images} image" if n_images < 2 else "no class columns"
        warnings.append(f"{reason}: HDBSCAN skipped, every image labelled")
        labels, min_size = np.zeros(n_images, dtype=np.int64), 0
    else:
        labels, min_size = _hdbscan_with_fallback(hists, max(2, int(min_cluster_fraction * n_images)), warnings)

    clusters, sizes = np.unique(labels[labels >= 0], return_counts=True)
    largest = int(clusters[np.argmax(sizes)])  # argmax takes the first maximum: the lowest label wins ties
    labeled = np.zeros(n_images, dtype=bool)
    for cluster, size in zip(clusters.tolist(), sizes.tolist(), strict=True):
        if largest_only and cluster != largest:
            continue
        centre = hists[labels == cluster].mean(axis=0)
        distance = np.abs(hists - centre).max(axis=1, initial=0.0)
        closest = np.argsort(distance, kind="stable")[: max(1, int(top_ratio * size))]
        labeled[closest] = True

    if prune_over not in PRUNE_OVER:
        raise ValueError(f"prune_over must be one of {', '.join(PRUNE_OVER)}, got {prune_over!r}")
    basis = {"largest": labels == largest, "labeled": labeled, "all": np.ones(n_images, dtype=bool)}[prune_over]
    kept = np.flatnonzero(hists[basis].mean(axis=0) > min_class_area).astype(np.int64)
    if kept.size == 0:
        warnings.append(f"no class has a mean area > {min_class_area} over the {prune_over} images: no class kept")
    return HistFilterResult(
        labeled=labeled,
        hdbscan_labels=labels,
        largest_cluster=largest,
        min_cluster_size=min_size,
        kept_classes=kept,
        warnings=warnings,
    )


def _hdbscan_with_fallback(hists: np.ndarray, start_size: int, warnings: list[str]) -> tuple[np.ndarray, int]:
    """Return (HDBSCAN labels, min_cluster_size used), appending to ``warnings`` on each fallback.

    1. As released: HDBSCAN with ``min_cluster_size`` from ``start_size`` down to 2 while every image is noise.
    2. Still all noise: HDBSCAN with ``allow_single_cluster=True`` at ``start_size``. Its default off cannot return
       the root of the cluster tree, so when most maps agree (e.g. 21 identical histograms) every image is noise,
       faulty maps included; allowing one cluster keeps the agreeing maps and leaves the outliers as noise, which
       is what the filter exists for (their spurious classes are then pruned).
    3. Still all noise (all maps equally far apart): every image in one cluster.
    """
    tried: list[int] = []
    for size in range(start_size, 1, -1):
        tried.append(size)
        labels = HDBSCAN(min_cluster_size=size, copy=True).fit(hists).labels_.astype(np.int64)
        if np.any(labels >= 0):
            if len(tried) > 1:
                warnings.append(f"HDBSCAN found only noise with min_cluster_size {tried[:-1]}; used {size}")
            return labels, size
    labels = HDBSCAN(min_cluster_size=start_size, allow_single_cluster=True, copy=True).fit(hists).labels_
    labels = labels.astype(np.int64)
    if np.any(labels >= 0):
        warnings.append(
            f"HDBSCAN found only noise with every min_cluster_size {tried}; with one cluster allowed "
            f"(min_cluster_size {start_size}) {int(np.sum(labels >= 0))} of {hists.shape[0]} images form it and "
            f"{int(np.sum(labels < 0))} are left out as noise"
        )
        return labels, start_size
    warnings.append(
        f"HDBSCAN found only noise with every min_cluster_size {tried}, even with one cluster allowed: all "
        f"{hists.shape[0]} images treated as one cluster"
    )
    return np.zeros(hists.shape[0], dtype=np.int64), tried[-1]


def label_consistency(hists: np.ndarray, result: HistFilterResult) -> dict[str, object]:
    """Return how stable the pseudo-labels are across the train images (issue: classes that vanish in some images).

    - ``largest_cluster_share``: fraction of the images whose class histogram falls in HDBSCAN's largest cluster
      (1.0 = every image has the same kind of map; real products with variants, e.g. three juices, sit lower; 0.0
      without images or without any cluster; in the all-noise fallback every image counts as one cluster: 1.0).
    - ``class_presence``: per kept class (1..K, in :func:`remap_labels` order), the fraction of ALL images in whose
      map the class covers any pixel. A class that belongs in every image but is missing in 40 % of them has 0.6:
      the pseudo-label backend merges it into a neighbour there.
    - ``min_class_presence``: the smallest of those (null without classes).

    Args:
        hists: (N_images, K_raw) class-area histograms of :func:`class_area_histograms`.
        result: the :func:`filter_histograms` result for ``hists``.

    Raises:
        ValueError: ``hists`` is not 2-D, holds non-finite values, or does not have one row per image of ``result``.
    """
    hists = np.asarray(hists, dtype=np.float64)
    labels = np.asarray(result.hdbscan_labels)
    if hists.ndim != 2 or hists.shape[0] != labels.shape[0]:
        raise ValueError(
            f"label_consistency needs (N_images, K) histograms with one row per image of the filter result "
            f"({labels.shape[0]} images), got shape {hists.shape}"
        )
    if not np.all(np.isfinite(hists)):
        raise ValueError("label_consistency got non-finite histogram values (NaN or inf)")
    n_images = hists.shape[0]
    found = n_images > 0 and result.largest_cluster >= 0
    share = float(np.mean(labels == result.largest_cluster)) if found else 0.0
    present = hists[:, result.kept_classes] > 0 if n_images else np.zeros((0, result.kept_classes.size), bool)
    presence = present.mean(axis=0) if n_images else np.zeros(result.kept_classes.size)
    return {
        "largest_cluster_share": round(share, 4),
        "class_presence": {str(i + 1): round(float(v), 4) for i, v in enumerate(presence)},
        "min_class_presence": round(float(presence.min()), 4) if presence.size else None,
    }


def remap_labels(label_map: np.ndarray, kept_classes: np.ndarray) -> np.ndarray:
    """Return the uint8 pseudo-label map: raw class ``kept_classes[i]`` (stored as value raw + 1) becomes i + 1 in
    increasing raw-class order, everything else (0 = none, pruned classes) becomes 0.

    Raises:
        ValueError: negative values in ``label_map``, negative or more than 255 kept classes.

    >>> remap_labels(np.array([[0, 1, 3, 4]]), np.array([3, 0])).tolist()
    [[0, 1, 0, 2]]
    """
    label_map = np.asarray(label_map)
    kept = np.unique(np.asarray(kept_classes, dtype=np.int64))
    if kept.size > 255:
        raise ValueError(f"remap_labels: {kept.size} kept classes do not fit a uint8 label map (at most 255)")
    if kept.size and kept[0] < 0:
        raise ValueError("remap_labels: kept_classes must be raw class indices >= 0")
    if label_map.size and label_map.min() < 0:
        raise ValueError("remap_labels: label_map values must be >= 0 (raw class + 1, 0 = none)")
    top = max(int(label_map.max()) if label_map.size else 0, int(kept[-1]) + 1 if kept.size else 0)
    lut = np.zeros(top + 1, dtype=np.uint8)
    lut[kept + 1] = np.arange(1, kept.size + 1, dtype=np.uint8)
    return lut[label_map.astype(np.int64)]
