"""Patch Histogram scores of segmentation maps (docs/method.md 4): class-area histograms of the whole map and of a grid
of patches, Mahalanobis distance to the train distribution, trimmed z-normalisation on validation, summed.

Grids are given as (rows, cols): the released patch sizes 256 and 128 on 256 px maps are the grids (1, 1) and
(2, 2). Cells are concatenated column-major (TL, BL, TR, BR for 2 x 2, as EMPatches iterates x outer, y inner).

>>> maps = np.zeros((1, 4, 4), np.int64); maps[0, :2, :2] = 1; maps[0, 2:, 2:] = 2
>>> h = class_histograms(maps, 3)
>>> h[(1, 1)].tolist()
[[0.0, 0.25, 0.25]]
>>> h[(2, 2)].tolist()  # TL, BL, TR, BR
[[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from csad.normalize import safe_spread

log = logging.getLogger(__name__)

Grid = tuple[int, int]
#: The released grids: patch size 256 (whole map) and 128 (2 x 2) on 256 px maps.
DEFAULT_GRIDS: tuple[Grid, ...] = ((1, 1), (2, 2))
_CHUNK = 32  # maps per one-hot batch (32 x C x 256 x 256 float32)


def _as_numpy_maps(label_maps: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> np.ndarray:
    """Return the (B, H, W) int64 numpy array of ``label_maps``."""
    if isinstance(label_maps, torch.Tensor):
        label_maps = label_maps.detach().cpu().numpy()
    maps = np.asarray(label_maps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"label maps must be (B, H, W), got shape {maps.shape}")
    return maps.astype(np.int64, copy=False)


def _cell_edges(size: int, parts: int) -> np.ndarray:
    """Return the ``parts + 1`` cell edges splitting ``size`` pixels as evenly as possible (np.array_split)."""
    if not 1 <= parts <= size:
        raise ValueError(f"cannot split {size} pixels into {parts} cells")
    sizes = [len(c) for c in np.array_split(np.arange(size), parts)]
    return np.concatenate([[0], np.cumsum(sizes)])


def grid_key(grid: Grid) -> str:
    """Return the string key of a grid, e.g. ``"2x2"``."""
    return f"{grid[0]}x{grid[1]}"


def cell_matrices(size: tuple[int, int], grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the float32 membership matrices (rows (R, H), cols (K, W)) of a (R, K) grid over an (H, W) map.

    Entry [r, y] is 1 when pixel row y falls in cell row r (cells split as ``np.array_split`` does); so for a
    one-hot map ``O`` (..., H, W), ``rows @ O @ cols.T`` is the (..., R, K) pixel count per cell.
    """
    h, w = int(size[0]), int(size[1])
    rows, cols = int(grid[0]), int(grid[1])
    ry, cx = _cell_edges(h, rows), _cell_edges(w, cols)
    row_of = torch.from_numpy(np.repeat(np.arange(rows), np.diff(ry)))
    col_of = torch.from_numpy(np.repeat(np.arange(cols), np.diff(cx)))
    return (
        (row_of[None, :] == torch.arange(rows)[:, None]).float(),
        (col_of[None, :] == torch.arange(cols)[:, None]).float(),
    )


def histograms_torch(labels: torch.Tensor, num_classes: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Return the (B, R * K * C) float64 class-fraction histograms of (B, H, W) integer label maps on one grid.

    Per cell a C-vector: entry k = (pixels with label k) / (pixels in the cell), entry 0 (background) set to 0;
    cells concatenated column-major (for 2 x 2: TL, BL, TR, BR). ``rows``/``cols`` come from :func:`cell_matrices`.
    Batched, without a Python loop over images: a one-hot map and two matrix products (exact integer counts in
    float32 up to 2**24 pixels per cell), so it traces and exports to ONNX.
    """
    classes = torch.arange(num_classes, device=labels.device)
    classes = torch.where(classes == 0, -1, classes)  # label -1 never occurs: the background channel stays 0
    onehot = (labels[:, None] == classes[None, :, None, None]).to(rows.dtype)  # (B, C, H, W)
    counts = torch.matmul(torch.matmul(rows, onehot), cols.T)  # (B, C, R, K)
    pixels = rows.sum(dim=1, dtype=torch.float64)[:, None] * cols.sum(dim=1, dtype=torch.float64)[None, :]
    hist = counts.double() / pixels
    return hist.permute(0, 3, 2, 1).reshape(labels.shape[0], -1)  # (B, K, R, C): column-major cells


def mahalanobis_torch(x: torch.Tensor, mean: torch.Tensor, inv_cov: torch.Tensor) -> torch.Tensor:
    """Return (N,) ``sqrt((x - mean)^T inv_cov (x - mean))`` per row of ``x`` (N, D), in the dtype of ``x``; NaN
    results (a negative form, or an all-NaN ``inv_cov`` from a fit on one sample) fall back to the Euclidean
    distance ``||x - mean||`` (the released behaviour). Batched, traceable."""
    delta = x - mean[None, :]
    dist = torch.sqrt((torch.matmul(delta, inv_cov) * delta).sum(dim=1))
    return torch.where(torch.isnan(dist), torch.sqrt((delta * delta).sum(dim=1)), dist)


#: Rounds of the connected-component labelling in a traced graph (ONNX export), where a loop cannot stop at
#: convergence; an eager run stops as soon as nothing changes. With two pointer jumps per round, 7 rounds were the
#: most seen on 256 px maps (real segmentations, one-pixel spirals, serpentines filling the whole map and mazes;
#: tests/test_patch_hist.py), so 12 leave a margin.
TRACED_CC_ROUNDS = 12
#: Pointer jumps (parent <- parent of parent) after each hooking round: cheap gathers that shorten the trees, so
#: fewer of the costly neighbour rounds are needed (16 rounds on a 256 px spiral without them, 7 with two).
CC_JUMPS_PER_ROUND = 2
#: A component of fewer pixels is never counted (specks of the argmax map), whatever its class's typical size.
MIN_COUNTED_PIXELS = 4
#: Added to the variance of every component count: the variance of rounding a uniformly distributed real to an
#: integer. A count that is the same in every train image (exactly one label) thus keeps a finite scale: one
#: component more is sqrt(12) = 3.5 standard deviations away.
COUNT_VARIANCE_FLOOR = 1.0 / 12.0
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))  # 8-connectivity
_NO_NEIGHBOUR = torch.iinfo(torch.int32).max  # larger than any pixel index


def component_areas_torch(labels: torch.Tensor, rounds: int | None = None) -> torch.Tensor:
    """Return the (B, H * W) float32 pixel areas of the connected components of (B, H, W) integer label maps.

    A component is a maximal 8-connected set of pixels of one nonzero label (label 0, the background, forms none).
    Entry ``[b, i]`` is the area of the component whose smallest flat pixel index is ``i`` (its root), 0 at every
    other index; the label of that component is ``labels[b].flatten()[i]``.

    Algorithm: FastSV (Zhang, Azad and Hu, "FastSV: a distributed-memory connected component algorithm with fast
    convergence", SIAM PP 2020), a Shiloach-Vishkin variant: each round hooks every tree onto the smallest
    grandparent among its pixels' same-label neighbours (stochastic and aggressive hooking), then shortcuts with
    :data:`CC_JUMPS_PER_ROUND` pointer jumps. Tensor operations only (shifted slices, gather, scatter-min on the
    batch flattened to one vector), so it runs batched and exports to ONNX (GatherElements, ScatterElements with
    reduction min, opset 18; ONNX Gather copies element by element and is 10x slower there); the neighbour minima
    run in int32. Equal to OpenCV's 8-connected labelling (tests/test_patch_hist.py).

    Args:
        labels: (B, H, W) integer label maps (B * H * W < 2**31).
        rounds: hooking rounds; None = until nothing changes, or :data:`TRACED_CC_ROUNDS` when the graph is traced
            (a traced loop cannot stop on a value).
    """
    b, h, w = labels.shape
    labels = labels.long()
    foreground = labels > 0
    padded = torch.nn.functional.pad(labels, (1, 1, 1, 1), value=-1)
    # per neighbour direction: the neighbour is inside the map and has the pixel's (nonzero) label
    edges = [foreground & (padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == labels) for dy, dx in _NEIGHBOURS]
    parent = torch.arange(b * h * w, device=labels.device)  # flat over the batch: pixel i of image j is j * H * W + i
    if rounds is None:
        limit, stop = (TRACED_CC_ROUNDS, False) if torch.jit.is_tracing() else (b * h * w, True)
    else:
        limit, stop = int(rounds), False
    for _ in range(limit):
        grand = torch.gather(parent, 0, parent)
        g = torch.nn.functional.pad(grand.view(b, h, w).int(), (1, 1, 1, 1))
        low = torch.full_like(g[:, 1:-1, 1:-1], _NO_NEIGHBOUR)  # smallest grandparent of a same-label neighbour
        for (dy, dx), edge in zip(_NEIGHBOURS, edges, strict=True):
            low = torch.minimum(low, torch.where(edge, g[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], _NO_NEIGHBOUR))
        low = low.reshape(-1).long()
        hooked = parent.scatter_reduce(0, parent, low, "amin", include_self=True)  # stochastic hooking
        new = torch.minimum(torch.minimum(hooked, low), grand)  # aggressive hooking, shortcutting
        for _ in range(CC_JUMPS_PER_ROUND):
            new = torch.gather(new, 0, new)
        if stop and torch.equal(new, parent):
            break
        parent = new
    for _ in range(0 if stop else 2):  # every pixel points at its root (already so after convergence)
        parent = torch.gather(parent, 0, parent)
    areas = torch.zeros(b * h * w, device=labels.device).scatter_add_(0, parent, foreground.reshape(-1).float())
    return areas.view(b, h * w)


def component_counts_torch(
    labels: torch.Tensor, num_classes: int, min_area: torch.Tensor, rounds: int | None = None
) -> torch.Tensor:
    """Return the (B, C) float64 number of components of each class in (B, H, W) label maps in [0, C).

    Only components of at least ``min_area[k]`` pixels count for class k ((C,) tensor; entry 0 is ignored: the
    background is never counted). Components as in :func:`component_areas_torch`. Traceable.
    """
    return _counts_of_areas(component_areas_torch(labels, rounds), labels, num_classes, min_area)


def _counts_of_areas(
    areas: torch.Tensor, labels: torch.Tensor, num_classes: int, min_area: torch.Tensor
) -> torch.Tensor:
    """Return the (B, C) float64 counts of the components of (B, H * W) ``areas`` (:func:`component_areas_torch`
    of the (B, H, W) ``labels``) that reach ``min_area`` of their class."""
    flat = labels.reshape(labels.shape[0], -1).long()
    counted = (areas > 0) & (areas >= min_area.to(areas.dtype)[flat])
    counts = torch.zeros(flat.shape[0], num_classes, dtype=torch.float64, device=labels.device)
    counts = counts.scatter_add_(1, flat, counted.double())
    return counts * (torch.arange(num_classes, device=labels.device) > 0)


def _chunk_areas(maps: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return (areas (b, H * W), labels (b, H, W)) of the checked (B, H, W) maps, in chunks of :data:`_CHUNK`."""
    chunks = [torch.from_numpy(maps[start : start + _CHUNK]) for start in range(0, len(maps), _CHUNK)]
    return [(component_areas_torch(chunk), chunk) for chunk in chunks]


def _class_areas(chunks: list[tuple[torch.Tensor, torch.Tensor]], num_classes: int) -> list[np.ndarray]:
    """Return, per class, the sorted areas of the components of :func:`_chunk_areas` (class 0: empty)."""
    found: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    for areas, chunk in chunks:
        a, flat = areas.numpy(), chunk.reshape(len(chunk), -1).numpy()
        for k in range(1, num_classes):
            found[k].append(a[(a > 0) & (flat == k)])
    return [np.sort(np.concatenate(a)) if a else np.zeros(0, np.float32) for a in found]


def _chunk_counts(
    chunks: list[tuple[torch.Tensor, torch.Tensor]], num_classes: int, min_area: np.ndarray
) -> np.ndarray:
    """Return the (B, C) float64 counts of the components of :func:`_chunk_areas` that reach ``min_area``."""
    floor = torch.from_numpy(np.asarray(min_area, dtype=np.float64))
    parts = [_counts_of_areas(areas, chunk, num_classes, floor).numpy() for areas, chunk in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, num_classes), np.float64)


def component_areas(label_maps: np.ndarray | torch.Tensor | Sequence[np.ndarray], num_classes: int) -> list[np.ndarray]:
    """Return, per class 0..C-1, the sorted pixel areas of all its components in the label maps (class 0: empty).
    Components as in :func:`component_areas_torch`."""
    return _class_areas(_chunk_areas(_checked_maps(label_maps, num_classes)), num_classes)


def component_counts(
    label_maps: np.ndarray | torch.Tensor | Sequence[np.ndarray], num_classes: int, min_area: np.ndarray
) -> np.ndarray:
    """Return the (B, C) float64 component counts of the label maps (:func:`component_counts_torch`)."""
    return _chunk_counts(_chunk_areas(_checked_maps(label_maps, num_classes)), num_classes, min_area)


def count_min_areas(areas: Sequence[np.ndarray], fraction: float) -> np.ndarray:
    """Return the (C,) float64 smallest counted component area of each class, in pixels, from the component areas
    of the train maps (:func:`component_areas`): ``fraction`` x the class's area-weighted median component area
    (the size of the component that holds the median pixel of that class), at least :data:`MIN_COUNTED_PIXELS`.
    Entry 0 (background) and classes without any component get :data:`MIN_COUNTED_PIXELS`. A rule of this
    project: it keeps every part the size of a real one and drops the specks of the argmax map, per class, with no
    pixel size to set.

    >>> count_min_areas([np.zeros(0), np.array([2.0, 100.0, 120.0])], 0.1).tolist()
    [4.0, 12.0]
    """
    out = np.full(len(areas), float(MIN_COUNTED_PIXELS))
    for k, a in enumerate(areas):
        a = np.sort(np.asarray(a, dtype=np.float64))
        if k == 0 or a.size == 0:
            continue
        median = a[int(np.searchsorted(np.cumsum(a) / a.sum(), 0.5))]
        out[k] = max(float(MIN_COUNTED_PIXELS), fraction * median)
    return out


def fit_count_mahalanobis(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean (C,), inverse of (covariance + :data:`COUNT_VARIANCE_FLOOR` x I) (C, C)) of (N, C) counts.

    Unlike the area histograms (pseudo-inverse, as released), a count is often the same in every train image; the
    floor keeps those directions, where one component more or less is what a logical anomaly looks like.
    """
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected (N, C) counts, got shape {x.shape}")
    cov = np.atleast_2d(np.cov(x.T)) if len(x) >= 2 else np.zeros((x.shape[1], x.shape[1]))
    return x.mean(axis=0), np.linalg.inv(cov + COUNT_VARIANCE_FLOOR * np.eye(x.shape[1]))


def _checked_maps(label_maps: np.ndarray | torch.Tensor | Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Return the (B, H, W) int64 maps, checked to hold labels in [0, num_classes)."""
    maps = _as_numpy_maps(label_maps)
    if maps.size and (maps.min() < 0 or maps.max() >= num_classes):
        raise ValueError(f"label values must be in [0, {num_classes}), got [{maps.min()}, {maps.max()}]")
    return maps


def class_histograms(
    label_maps: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    num_classes: int,
    grids: Sequence[Grid] = DEFAULT_GRIDS,
) -> dict[Grid, np.ndarray]:
    """Return {grid: (B, rows * cols * C) float64} class-fraction histograms of the label maps, background 0.

    Each cell contributes a C-vector: entry k = (pixels with label k) / (pixels in the cell), entry 0 forced to 0;
    cells are concatenated column-major (for 2 x 2: TL, BL, TR, BR). A size not divisible by the grid is split as
    ``np.array_split`` does. Labels must be in [0, num_classes). Computed by :func:`histograms_torch` (the
    detector's own code), in chunks of maps.
    """
    maps = _checked_maps(label_maps, num_classes)
    b, h, w = maps.shape
    out: dict[Grid, np.ndarray] = {}
    for grid in grids:
        rows, cols = cell_matrices((h, w), grid)
        parts = [
            histograms_torch(torch.from_numpy(maps[start : start + _CHUNK]), num_classes, rows, cols).numpy()
            for start in range(0, b, _CHUNK)
        ]
        cells = int(grid[0]) * int(grid[1])
        out[(int(grid[0]), int(grid[1]))] = (
            np.concatenate(parts) if parts else np.zeros((0, cells * num_classes), np.float64)
        )
    return out


def fit_mahalanobis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean (D,), pinv(np.cov(x.T)) (D, D)) of the rows of ``x`` (N, D), as released.

    Unbiased sample covariance (N - 1) and the Moore-Penrose pseudo-inverse at numpy's default rcond. With fewer
    than 2 rows the covariance is undefined: the inverse is all NaN, so distances fall back to Euclidean.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected (N, D) features, got shape {x.shape}")
    mean = x.mean(axis=0)
    if len(x) < 2:
        log.warning("Mahalanobis fit on %d sample(s): covariance undefined, distances are Euclidean", len(x))
        return mean, np.full((x.shape[1], x.shape[1]), np.nan)
    cov = np.atleast_2d(np.cov(x.T))
    return mean, np.linalg.pinv(cov)


def mahalanobis(x: np.ndarray, mean: np.ndarray, inv_cov: np.ndarray) -> np.ndarray:
    """Return (N,) sqrt((x - mean)^T inv_cov (x - mean)) per row in float64; NaN results (negative or undefined
    forms) fall back to the Euclidean distance ||x - mean|| (released behaviour). Computed by
    :func:`mahalanobis_torch` (the detector's own code)."""
    x64 = torch.from_numpy(np.atleast_2d(np.asarray(x, dtype=np.float64)))
    mean64 = torch.from_numpy(np.asarray(mean, dtype=np.float64))
    inv64 = torch.from_numpy(np.asarray(inv_cov, dtype=np.float64))
    return mahalanobis_torch(x64, mean64, inv64).numpy()


class TrimmedNormalizer:
    """Trimmed z-normalisation: mean and population std of the validation scores strictly between their
    ``lower``/``upper`` quantiles (np.quantile, linear); transform returns (s - mean) / std, where a std at or
    below 1e-3 counts as 1 (:func:`csad.normalize.safe_spread`, as the released code does): validation scores
    [0.1, 0.1, 0.1] have a rounding-error std of 1e-17 that would turn a test score 1e-6 higher into 1e11.

    If no score lies strictly between the quantiles (e.g. ties or fewer than 3 scores; the released code then
    returns NaN), the scores in the closed interval are used, and if there are none either, all scores.
    """

    def __init__(self, lower: float = 0.2, upper: float = 0.8) -> None:
        if not 0.0 <= lower < upper <= 1.0:
            raise ValueError(f"need 0 <= lower < upper <= 1, got {lower}, {upper}")
        self.lower = lower
        self.upper = upper
        self.mean = 0.0
        self.std = 1.0

    def fit(self, scores: np.ndarray) -> TrimmedNormalizer:
        """Return self with mean/std fitted on ``scores`` (1-D, at least one value)."""
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.size == 0:
            raise ValueError("TrimmedNormalizer.fit needs at least one score")
        q_lo, q_hi = np.quantile(scores, [self.lower, self.upper])
        kept = scores[(scores > q_lo) & (scores < q_hi)]
        if kept.size == 0:
            kept = scores[(scores >= q_lo) & (scores <= q_hi)]
        if kept.size == 0:
            kept = scores
        self.mean = float(kept.mean())
        self.std = float(kept.std())
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Return (scores - mean) / std as float64 (only the shift when std <= 1e-3, see the class docstring)."""
        return (np.asarray(scores, dtype=np.float64) - self.mean) / safe_spread(self.std)


class PatchHistogramScorer:
    """Patch-Histogram image scores: the sum over grids of trimmed-normalised Mahalanobis distances, plus, with
    ``count_min_fraction > 0``, the trimmed-normalised Mahalanobis distance of the component counts.

    ``fit(train_maps, val_maps)`` stores per grid the train mean and pinv covariance and the normalisation stats
    of the validation distances; ``score(maps)`` returns (N,) scores.

    **Component counts** (a term of this project, not of the paper; ``count_min_fraction`` 0 = off, the paper):
    logical anomalies are often one part more or less (a missing pushpin, an extra nut), which moves a class's area
    by one part among many and is lost in its image-to-image spread. The count term counts the 8-connected
    components of each class (:func:`component_counts_torch`) that reach :func:`count_min_areas` of that class
    (``count_min_fraction`` x its area-weighted median component area on the train maps), and scores the count
    vector by Mahalanobis with :func:`fit_count_mahalanobis`.

    Args:
        num_classes: C, background 0 included.
        grids: (rows, cols) grids of the area histograms.
        lower, upper: quantiles of the trimmed z-normalisation on the validation distances.
        count_min_fraction: in [0, 1]; 0 = no count term.

    Raises:
        ValueError: ``count_min_fraction`` outside [0, 1].
    """

    def __init__(
        self,
        num_classes: int,
        grids: Sequence[Grid] = DEFAULT_GRIDS,
        lower: float = 0.2,
        upper: float = 0.8,
        count_min_fraction: float = 0.0,
    ) -> None:
        if not 0.0 <= count_min_fraction <= 1.0:
            raise ValueError(
                f"segment.patch_hist.count_min_fraction must be in [0, 1] (0 = no component counts), "
                f"got {count_min_fraction}"
            )
        self.num_classes = int(num_classes)
        self.grids: tuple[Grid, ...] = tuple((int(g[0]), int(g[1])) for g in grids)
        self.lower = float(lower)
        self.upper = float(upper)
        self.count_min_fraction = float(count_min_fraction)
        self.means: dict[Grid, np.ndarray] = {}
        self.inv_covs: dict[Grid, np.ndarray] = {}
        self.val_distances: dict[Grid, np.ndarray] = {}
        self.normalizers: dict[Grid, TrimmedNormalizer] = {}
        self.count_min_area: np.ndarray | None = None
        self.count_mean: np.ndarray | None = None
        self.count_inv_cov: np.ndarray | None = None
        self.count_val_distances: np.ndarray | None = None
        self.count_normalizer: TrimmedNormalizer | None = None

    @property
    def counts(self) -> bool:
        """Return whether the scorer has the component-count term."""
        return self.count_min_fraction > 0

    @property
    def fitted(self) -> bool:
        """Return whether :meth:`fit` (or :meth:`from_state`) has set every grid's statistics."""
        return all(g in self.normalizers for g in self.grids) and (not self.counts or self.count_normalizer is not None)

    def fit(self, train_maps: Any, val_maps: Any) -> PatchHistogramScorer:
        """Return self fitted: per grid (and for the counts), Mahalanobis on the train maps, normalisation on the
        val distances."""
        train = class_histograms(train_maps, self.num_classes, self.grids)
        for grid in self.grids:
            self.means[grid], self.inv_covs[grid] = fit_mahalanobis(train[grid])
        val = self.distances(val_maps, require_fit=False)
        for grid in self.grids:
            self.val_distances[grid] = val[grid]
            self.normalizers[grid] = TrimmedNormalizer(self.lower, self.upper).fit(val[grid])
        if self.counts:
            chunks = _chunk_areas(_checked_maps(train_maps, self.num_classes))  # one labelling for both
            self.count_min_area = count_min_areas(_class_areas(chunks, self.num_classes), self.count_min_fraction)
            self.count_mean, self.count_inv_cov = fit_count_mahalanobis(
                _chunk_counts(chunks, self.num_classes, self.count_min_area)
            )
            self.count_val_distances = self.count_distances(val_maps)
            self.count_normalizer = TrimmedNormalizer(self.lower, self.upper).fit(self.count_val_distances)
        return self

    def distances(self, label_maps: Any, require_fit: bool = True) -> dict[Grid, np.ndarray]:
        """Return {grid: (N,) raw Mahalanobis distances} of the label maps."""
        if require_fit and not self.fitted:
            raise RuntimeError("PatchHistogramScorer is not fitted")
        hists = class_histograms(label_maps, self.num_classes, self.grids)
        return {g: mahalanobis(hists[g], self.means[g], self.inv_covs[g]) for g in self.grids}

    def count_distances(self, label_maps: Any) -> np.ndarray:
        """Return the (N,) raw Mahalanobis distances of the component counts of the label maps."""
        if self.count_min_area is None or self.count_mean is None or self.count_inv_cov is None:
            raise RuntimeError("PatchHistogramScorer has no fitted component-count term")
        counts = component_counts(label_maps, self.num_classes, self.count_min_area)
        return mahalanobis(counts, self.count_mean, self.count_inv_cov)

    def score(self, label_maps: Any) -> np.ndarray:
        """Return (N,) image scores: the sum over grids (and the counts) of the normalised distances."""
        dists = self.distances(label_maps)
        total = np.zeros(len(next(iter(dists.values()))), dtype=np.float64)
        for grid in self.grids:
            total += self.normalizers[grid].transform(dists[grid])
        if self.counts and self.count_normalizer is not None:
            total += self.count_normalizer.transform(self.count_distances(label_maps))
        return total

    def state(self) -> dict[str, np.ndarray]:
        """Return the fitted state as a flat dict of numpy arrays (``np.savez``-able), config included."""
        if not self.fitted:
            raise RuntimeError("PatchHistogramScorer is not fitted")
        out: dict[str, np.ndarray] = {
            "num_classes": np.array(self.num_classes),
            "grids": np.array(self.grids, dtype=np.int64).reshape(-1, 2),
            "quantiles": np.array([self.lower, self.upper]),
        }
        for grid in self.grids:
            key = grid_key(grid)
            out[f"mean_{key}"] = self.means[grid]
            out[f"invcov_{key}"] = self.inv_covs[grid]
            out[f"val_distances_{key}"] = self.val_distances[grid]
            out[f"val_stats_{key}"] = np.array([self.normalizers[grid].mean, self.normalizers[grid].std])
        if self.counts:
            assert self.count_normalizer is not None and self.count_val_distances is not None
            out["count_min_fraction"] = np.array(self.count_min_fraction)
            out["count_min_area"] = np.asarray(self.count_min_area)
            out["count_mean"] = np.asarray(self.count_mean)
            out["count_invcov"] = np.asarray(self.count_inv_cov)
            out["count_val_distances"] = self.count_val_distances
            out["count_val_stats"] = np.array([self.count_normalizer.mean, self.count_normalizer.std])
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> PatchHistogramScorer:
        """Return a fitted scorer from :meth:`state` (or the ``np.load`` of its ``np.savez``); a state without the
        ``count_*`` entries (older checkpoints) has no count term."""
        lower, upper = (float(v) for v in np.asarray(state["quantiles"]))
        grids = [(int(r), int(c)) for r, c in np.asarray(state["grids"]).reshape(-1, 2)]
        fraction = float(np.asarray(state["count_min_fraction"])) if "count_min_fraction" in state else 0.0
        scorer = cls(int(np.asarray(state["num_classes"])), grids, lower, upper, fraction)
        for grid in scorer.grids:
            key = grid_key(grid)
            scorer.means[grid] = np.asarray(state[f"mean_{key}"], dtype=np.float64)
            scorer.inv_covs[grid] = np.asarray(state[f"invcov_{key}"], dtype=np.float64)
            scorer.val_distances[grid] = np.asarray(state[f"val_distances_{key}"], dtype=np.float64)
            normalizer = TrimmedNormalizer(lower, upper)
            normalizer.mean, normalizer.std = (float(v) for v in np.asarray(state[f"val_stats_{key}"]))
            scorer.normalizers[grid] = normalizer
        if scorer.counts:
            scorer.count_min_area = np.asarray(state["count_min_area"], dtype=np.float64)
            scorer.count_mean = np.asarray(state["count_mean"], dtype=np.float64)
            scorer.count_inv_cov = np.asarray(state["count_invcov"], dtype=np.float64)
            scorer.count_val_distances = np.asarray(state["count_val_distances"], dtype=np.float64)
            normalizer = TrimmedNormalizer(lower, upper)
            normalizer.mean, normalizer.std = (float(v) for v in np.asarray(state["count_val_stats"]))
            scorer.count_normalizer = normalizer
        return scorer
