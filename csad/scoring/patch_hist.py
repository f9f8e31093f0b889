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
    maps = _as_numpy_maps(label_maps)
    b, h, w = maps.shape
    if maps.size and (maps.min() < 0 or maps.max() >= num_classes):
        raise ValueError(f"label values must be in [0, {num_classes}), got [{maps.min()}, {maps.max()}]")
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
    """Patch-Histogram image scores: the sum over grids of trimmed-normalised Mahalanobis distances.

    ``fit(train_maps, val_maps)`` stores per grid the train mean and pinv covariance and the normalisation stats
    of the validation distances; ``score(maps)`` returns (N,) scores.
    """

    def __init__(
        self, num_classes: int, grids: Sequence[Grid] = DEFAULT_GRIDS, lower: float = 0.2, upper: float = 0.8
    ) -> None:
        self.num_classes = int(num_classes)
        self.grids: tuple[Grid, ...] = tuple((int(g[0]), int(g[1])) for g in grids)
        self.lower = float(lower)
        self.upper = float(upper)
        self.means: dict[Grid, np.ndarray] = {}
        self.inv_covs: dict[Grid, np.ndarray] = {}
        self.val_distances: dict[Grid, np.ndarray] = {}
        self.normalizers: dict[Grid, TrimmedNormalizer] = {}

    @property
    def fitted(self) -> bool:
        """Return whether :meth:`fit` (or :meth:`from_state`) has set every grid's statistics."""
        return all(g in self.normalizers for g in self.grids)

    def fit(self, train_maps: Any, val_maps: Any) -> PatchHistogramScorer:
        """Return self fitted: per grid, Mahalanobis on the train maps, normalisation on the val distances."""
        train = class_histograms(train_maps, self.num_classes, self.grids)
        for grid in self.grids:
            self.means[grid], self.inv_covs[grid] = fit_mahalanobis(train[grid])
        val = self.distances(val_maps, require_fit=False)
        for grid in self.grids:
            self.val_distances[grid] = val[grid]
            self.normalizers[grid] = TrimmedNormalizer(self.lower, self.upper).fit(val[grid])
        return self

    def distances(self, label_maps: Any, require_fit: bool = True) -> dict[Grid, np.ndarray]:
        """Return {grid: (N,) raw Mahalanobis distances} of the label maps."""
        if require_fit and not self.fitted:
            raise RuntimeError("PatchHistogramScorer is not fitted")
        hists = class_histograms(label_maps, self.num_classes, self.grids)
        return {g: mahalanobis(hists[g], self.means[g], self.inv_covs[g]) for g in self.grids}

    def score(self, label_maps: Any) -> np.ndarray:
        """Return (N,) image scores: the sum over grids of the normalised distances."""
        dists = self.distances(label_maps)
        total = np.zeros(len(next(iter(dists.values()))), dtype=np.float64)
        for grid in self.grids:
            total += self.normalizers[grid].transform(dists[grid])
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
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> PatchHistogramScorer:
        """Return a fitted scorer from :meth:`state` (or the ``np.load`` of its ``np.savez``)."""
        lower, upper = (float(v) for v in np.asarray(state["quantiles"]))
        grids = [(int(r), int(c)) for r, c in np.asarray(state["grids"]).reshape(-1, 2)]
        scorer = cls(int(np.asarray(state["num_classes"])), grids, lower, upper)
        for grid in scorer.grids:
            key = grid_key(grid)
            scorer.means[grid] = np.asarray(state[f"mean_{key}"], dtype=np.float64)
            scorer.inv_covs[grid] = np.asarray(state[f"invcov_{key}"], dtype=np.float64)
            scorer.val_distances[grid] = np.asarray(state[f"val_distances_{key}"], dtype=np.float64)
            normalizer = TrimmedNormalizer(lower, upper)
            normalizer.mean, normalizer.std = (float(v) for v in np.asarray(state[f"val_stats_{key}"]))
            scorer.normalizers[grid] = normalizer
        return scorer
