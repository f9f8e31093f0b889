"""Clustering of component features into pseudo-classes (docs/method.md 2.5), seeded and crash-free.

The features go through a fixed random Gaussian projection (the released code's unseeded ``Linear(2048, 512)``
with weights N(0, 0.01^2) and zero bias; here the weights come from ``np.random.default_rng(seed)``), then
``sklearn.cluster.MeanShift(bandwidth, cluster_all=True)`` over all components of all training images. Clusters
with fewer than ``min_members`` components (alpha = half the training images) are dropped (label -1); the kept ones
are renumbered 0..n-1 by decreasing size.

>>> import numpy as np
>>> x = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]])
>>> result = cluster_components(x, bandwidth=1.0, min_members=2, proj_dim=0, seed=0)
>>> result.labels.tolist(), result.n_clusters, result.sizes.tolist(), result.dropped_sizes.tolist()
([0, 0, 0, -1], 1, [3], [1])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import MeanShift

from csad.pseudo.cluster_config import ClusterConfig as ClusterConfig  # re-export


@dataclass
class ClusterResult:
    """Cluster assignment of N components."""

    labels: np.ndarray  # (N,) int64: kept cluster 0..n_clusters-1 (0 = largest), -1 = in a dropped cluster
    n_clusters: int  # number of kept clusters (0 when every cluster was dropped or N == 0)
    sizes: np.ndarray  # (n_clusters,) int64: members of each kept cluster (non-increasing)
    dropped_sizes: np.ndarray  # (n_dropped,) int64: members of each dropped cluster (non-increasing)


def random_projection(features: np.ndarray, out_dim: int, seed: int, std: float = 0.01) -> np.ndarray:
    """Return ``features @ W`` (N x out_dim, float64), W a fixed (D x out_dim) N(0, std^2) matrix drawn from
    ``np.random.default_rng(seed)``, no bias; ``out_dim <= 0`` returns ``features`` unchanged (identity).

    >>> x = np.ones((2, 8))
    >>> np.array_equal(random_projection(x, 3, seed=1), random_projection(x, 3, seed=1))
    True
    """
    if out_dim <= 0:
        return features
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"random_projection needs (N, D) features, got shape {features.shape}")
    weight = np.random.default_rng(seed).normal(0.0, std, size=(features.shape[1], out_dim))
    return np.asarray(features, dtype=np.float64) @ weight


def cluster_components(
    features: np.ndarray, bandwidth: float, min_members: int, proj_dim: int, seed: int, n_jobs: int = 1
) -> ClusterResult:
    """Return the MeanShift clustering of the (N, D) ``features`` after :func:`random_projection`.

    Clusters with fewer than ``min_members`` members are dropped (label -1); the others are renumbered 0..n-1 by
    decreasing size, ties in MeanShift's centre order. The result depends only on the inputs and their order.
    N == 0 gives an empty result; every cluster dropped gives ``n_clusters == 0`` and all labels -1.

    Args:
        features: (N, D) component features, one row per component (keep a fixed, sorted order).
        bandwidth: MeanShift bandwidth in the projected space (> 0).
        min_members: a cluster needs at least this many members to be kept (see :func:`alpha_min_members`).
        proj_dim: random projection output size; ``<= 0`` clusters the raw features.
        seed: seed of the projection weights.
        n_jobs: MeanShift worker processes (does not change the result).

    Raises:
        ValueError: ``features`` is not 2-D, holds non-finite values, or ``bandwidth <= 0``.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"cluster_components needs (N, D) features, got shape {features.shape}")
    if not bandwidth > 0:
        raise ValueError(f"MeanShift bandwidth must be > 0, got {bandwidth}")
    empty = np.zeros(0, dtype=np.int64)
    if features.shape[0] == 0:
        return ClusterResult(labels=empty, n_clusters=0, sizes=empty, dropped_sizes=empty.copy())
    if not np.all(np.isfinite(features)):
        raise ValueError("cluster_components got non-finite features (NaN or inf)")
    projected = np.asarray(random_projection(features, proj_dim, seed), dtype=np.float64)
    raw = MeanShift(bandwidth=bandwidth, cluster_all=True, n_jobs=n_jobs).fit(projected).labels_
    raw_sizes = np.bincount(raw)
    # Decreasing size, ties by MeanShift's centre index (lexsort sorts by the last key first).
    order = np.lexsort((np.arange(raw_sizes.size), -raw_sizes))
    kept = order[raw_sizes[order] >= min_members]
    dropped = order[raw_sizes[order] < min_members]
    lut = np.full(raw_sizes.size, -1, dtype=np.int64)
    lut[kept] = np.arange(kept.size)
    return ClusterResult(
        labels=lut[raw],
        n_clusters=int(kept.size),
        sizes=raw_sizes[kept].astype(np.int64),
        dropped_sizes=raw_sizes[dropped].astype(np.int64),
    )


def auto_bandwidth(features: np.ndarray, quantile: float, proj_dim: int = 0, seed: int = 0) -> float:
    """Return a MeanShift bandwidth computed from the (N, D) component features themselves, in the units of the
    space :func:`cluster_components` clusters (after :func:`random_projection`): scikit-learn's
    ``estimate_bandwidth``, the mean over all components of the distance to their ``quantile`` x N nearest
    neighbour (the component itself counts as the first, so at least 2 neighbours are used).

    A rule instead of a per-category value: the bandwidth follows the spread of each product's descriptors.
    Degenerate inputs: fewer than 2 components, or all identical, give 1.0 (any bandwidth gives one cluster); when
    so many components repeat exactly that the estimate is 0, it is made on the distinct components instead.

    Raises:
        ValueError: no features, non-finite values, ``quantile`` outside (0, 1], or a bandwidth that overflows.
    """
    from sklearn.cluster import estimate_bandwidth

    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"auto_bandwidth needs (N > 0, D) features, got shape {features.shape}")
    if not 0 < quantile <= 1:
        raise ValueError(f"cluster.bandwidth_quantile must be in (0, 1], got {quantile}")
    if not np.all(np.isfinite(features)):
        raise ValueError("auto_bandwidth got non-finite features (NaN or inf)")
    projected = np.asarray(random_projection(features, proj_dim, seed), dtype=np.float64)
    distinct = np.unique(projected, axis=0)
    if distinct.shape[0] < 2:
        return 1.0
    value = 0.0
    for points in (projected, distinct):
        n = points.shape[0]
        value = float(estimate_bandwidth(points, quantile=max(float(quantile), min(1.0, 2.0 / n)), random_state=seed))
        if value > 0:
            break
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"auto_bandwidth: the estimated bandwidth is {value} (features too large or too close for float64); "
            f"rescale the features or set cluster.bandwidth to a number"
        )
    return value


def alpha_min_members(n_images: int, alpha: float) -> int:
    """Return the minimum cluster size ``int(alpha * n_images)``, at least 1 (the paper's alpha = 0.5).

    >>> alpha_min_members(351, 0.5), alpha_min_members(1, 0.5)
    (175, 1)
    """
    if n_images < 0 or alpha < 0:
        raise ValueError(f"alpha_min_members needs n_images >= 0 and alpha >= 0, got {n_images} and {alpha}")
    return max(1, int(alpha * n_images))


@dataclass(frozen=True)
class SteadyMerge:
    """One merge of :func:`merge_steady_clusters`: cluster ``merged`` joined cluster ``into`` (numbers of the
    clustering before any merge), at this ``std_ratio`` and ``copresence``."""

    into: int
    merged: int
    std_ratio: float
    copresence: float


def merge_steady_clusters(
    clustering: ClusterResult,
    image_index: np.ndarray,
    area: np.ndarray,
    n_images: int,
    max_std_ratio: float,
    min_copresence: float,
) -> tuple[ClusterResult, list[SteadyMerge]]:
    """Merge the clusters that are two looks of one part: their per-image areas trade off, so their sum is steadier
    across the normal train images than either alone.

    A part of a normal product covers about the same area in every good image (the premise of the Patch Histogram,
    docs/method.md 4). When the descriptors of one part fall into two clusters by how it was cut out (a pushpin head
    with or without its rim), each image holds some of the part in one cluster and the rest in the other, and the
    per-image areas of the two clusters are strongly anti-correlated. With ``A``, ``B`` the (n_images,) summed area
    of two kept clusters, the pair merges when ``std(A + B) <= max_std_ratio * min(std(A), std(B))`` and both are
    present in at least ``min_copresence`` of the train images (variants of a product, e.g. one of three juices, are
    rarely present together, so they are kept apart). Pairs are merged one at a time, the lowest ratio first (ties:
    the lower cluster numbers), and the areas recomputed, until no pair qualifies. A rule of this project, not of the
    paper.

    Args:
        clustering: the clustering of N components (:func:`cluster_components`: 0..K-1 kept, -1 dropped).
        image_index: (N,) int train image (0..n_images-1) of every component.
        area: (N,) float area of every component, in any unit shared by all images (e.g. fraction of the image).
        n_images: number of train images; images without components count as area 0.
        max_std_ratio: merge threshold on the ratio above; 0 turns the merge off.
        min_copresence: share of the train images, in [0, 1], in which both clusters must be present.

    Returns:
        The merged clustering, renumbered 0..n-1 by decreasing size (ties by the lowest original number), with its
        sizes and the ``dropped_sizes`` of ``clustering``, and the merges in the order made.

    Raises:
        ValueError: arrays of different lengths, an image index outside 0..n_images-1, a negative or
            non-finite area, ``max_std_ratio < 0`` or ``min_copresence`` outside [0, 1].

    >>> labels = np.array([0, 1, 0, 1, 0, 1, 2, 2, 2])
    >>> clustering = ClusterResult(labels, 3, np.array([3, 3, 3]), np.zeros(0, dtype=np.int64))
    >>> image = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2])
    >>> area = np.array([3.0, 1.0, 1.0, 3.0, 2.0, 2.0, 1.0, 2.0, 3.0])
    >>> result, merges = merge_steady_clusters(clustering, image, area, 3, max_std_ratio=0.8, min_copresence=0.75)
    >>> result.labels.tolist(), [(m.into, m.merged, m.std_ratio) for m in merges]
    ([0, 0, 0, 0, 0, 0, 1, 1, 1], [(0, 1, 0.0)])
    """
    labels = np.asarray(clustering.labels, dtype=np.int64)
    image_index = np.asarray(image_index, dtype=np.int64)
    area = np.asarray(area, dtype=np.float64)
    if not labels.shape == image_index.shape == area.shape or labels.ndim != 1:
        raise ValueError(
            f"merge_steady_clusters needs (N,) labels, image_index and area, got shapes {labels.shape}, "
            f"{image_index.shape} and {area.shape}"
        )
    if image_index.size and (image_index.min() < 0 or image_index.max() >= n_images):
        raise ValueError(f"merge_steady_clusters: image_index must be in 0..{n_images - 1}")
    if not np.all(np.isfinite(area)) or (area.size and area.min() < 0):
        raise ValueError("merge_steady_clusters: areas must be finite and >= 0")
    if max_std_ratio < 0 or not 0 <= min_copresence <= 1:
        raise ValueError(
            f"merge_steady_clusters needs max_std_ratio >= 0 and min_copresence in [0, 1], got {max_std_ratio} "
            f"and {min_copresence}"
        )
    n_clusters = int(labels.max(initial=-1)) + 1
    table = np.zeros((n_images, n_clusters))
    kept = labels >= 0
    np.add.at(table, (image_index[kept], labels[kept]), area[kept])
    group = np.arange(n_clusters)  # original cluster -> the original cluster it was merged into
    alive = list(range(n_clusters))
    merges: list[SteadyMerge] = []
    while max_std_ratio > 0 and len(alive) > 1:
        best: tuple[float, int, int, float] | None = None
        for i, a in enumerate(alive):
            for b in alive[i + 1 :]:
                low = min(table[:, a].std(), table[:, b].std())
                copresence = float(np.mean((table[:, a] > 0) & (table[:, b] > 0)))
                if low <= 0 or copresence < min_copresence:
                    continue
                ratio = float((table[:, a] + table[:, b]).std() / low)
                if ratio <= max_std_ratio and (best is None or ratio < best[0]):
                    best = (ratio, a, b, copresence)
        if best is None:
            break
        ratio, a, b, copresence = best
        table[:, a] += table[:, b]
        alive.remove(b)
        group[group == b] = a
        merges.append(SteadyMerge(into=a, merged=b, std_ratio=round(ratio, 6), copresence=round(copresence, 6)))
    lut = np.full(n_clusters + 1, -1, dtype=np.int64)  # original cluster (and -1, the last entry) -> new number
    sizes = np.bincount(group[labels[kept]], minlength=n_clusters)
    order = sorted(alive, key=lambda c: (-sizes[c], c))
    lut[order] = np.arange(len(order))
    lut[:n_clusters] = lut[group]
    new_labels = lut[labels]
    result = ClusterResult(
        labels=new_labels.astype(np.int64),
        n_clusters=len(order),
        sizes=sizes[order].astype(np.int64),
        dropped_sizes=np.asarray(clustering.dropped_sizes, dtype=np.int64),
    )
    return result, merges
