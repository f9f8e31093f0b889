"""AU-sPRO (area under the saturated-PRO / FPR curve) as defined by the MVTec LOCO AD evaluation v2.0.

Definitions (official ``src/metrics.py``, ``src/image.py``, ``src/util.py``; see ``docs/evaluation.md`` 1.4):

- A ground-truth *channel* is one defect region (boolean mask) with a saturation definition from
  ``defects_config.json``. Its saturation area is ``min(threshold, defect_area)`` for an absolute threshold and
  ``int(threshold * defect_area)`` for a relative one.
- At an anomaly threshold ``t`` a pixel is positive when ``score >= t``. The sPRO of a channel is
  ``min(TP_area / saturation_area, 1)``; the curve's sPRO value is the mean over *all* channels of all images.
- A pixel is a false positive only if it is defect-free in all channels of its image. FPR = FP pixels / all
  defect-free pixels of all images (global, not averaged per image). Good images have no channels, so every positive
  pixel is a false positive.
- AU-sPRO at ``max_fpr`` is the trapezoid integral of sPRO over FPR from 0 to ``max_fpr`` (the curve is linearly
  interpolated at exactly ``max_fpr``), divided by ``max_fpr``.

Deviation from the official code, by necessity: a channel whose saturation area is 0 (an empty mask, or a relative
threshold with ``int(threshold * area) == 0``) makes the official code divide by zero (NaN/inf). Here such a channel
counts as fully saturated (sPRO = 1) at every threshold, including the curve's first point, so the curve then starts
at ``(0, fraction of such channels)`` instead of ``(0, 0)``.

The official evaluator picks ~50 thresholds and refines them until consecutive curve points are at most 0.001 apart.
This module instead evaluates the curve at every distinct score (exact curve) when the input is small, and at
~100,000 quantile edges otherwise. Counts at each threshold are exact in both cases; only the curve's sampling differs.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((2, 2), dtype=bool)
    >>> mask[0, 0] = True
    >>> amap = np.array([[0.9, 0.1], [0.2, 0.3]], dtype=np.float32)
    >>> channels = [[GtChannel(mask, saturation_threshold=1, relative=False)]]
    >>> compute_au_spro([amap], channels, limits=(0.05, 1.0))
    {0.05: 1.0, 1.0: 1.0}
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LIMITS",
    "GtChannel",
    "SproCurve",
    "au_spro",
    "compute_au_spro",
    "saturation_area",
    "spro_curve",
]

logger = logging.getLogger(__name__)

DEFAULT_LIMITS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.3, 1.0)
"""Integration limits (maximum FPR) of the official evaluation; 0.05 is the headline one."""

_DEFAULT_MAX_EXACT_PIXELS = 250_000
_DEFAULT_NUM_QUANTILES = 50_000
_DEFAULT_SAMPLE_SIZE = 2_000_000


def saturation_area(defect_area: int, threshold: float, relative: bool) -> int | float:
    """Returns the saturation area of one defect, as the official ``GroundTruthChannel.get_saturation_area``.

    Args:
        defect_area: Number of pixels of the defect mask.
        threshold: ``saturation_threshold`` from ``defects_config.json``: a pixel count (absolute) or a fraction of
            the defect area in (0, 1] (relative).
        relative: ``relative_saturation`` from ``defects_config.json``.

    Returns:
        ``int(threshold * defect_area)`` if relative, else ``min(threshold, defect_area)``.

    Example:
        >>> saturation_area(1000, 0.5, relative=True), saturation_area(1000, 6300, relative=False)
        (500, 1000)
    """
    if relative:
        return int(threshold * defect_area)
    return min(threshold, defect_area)


@dataclass(frozen=True, eq=False)
class GtChannel:
    """One ground-truth channel: a single defect region and its saturation definition.

    Attributes:
        mask: Boolean HxW mask of the defect (non-boolean input is converted with ``!= 0``).
        saturation_threshold: Absolute pixel count (``relative=False``) or fraction in (0, 1] (``relative=True``).
        relative: Whether ``saturation_threshold`` is relative to the defect area.
    """

    mask: np.ndarray
    saturation_threshold: float | int
    relative: bool

    def __post_init__(self) -> None:
        """Validates the fields and stores the mask as a boolean array."""
        mask = np.asarray(self.mask)
        if mask.ndim != 2:
            raise ValueError(f"GtChannel mask must be 2-D (H, W), got shape {mask.shape}")
        if mask.dtype != np.bool_:
            mask = mask != 0
        object.__setattr__(self, "mask", mask)
        thr = self.saturation_threshold
        if isinstance(thr, bool) or not isinstance(thr, int | float | np.integer | np.floating):
            raise ValueError(f"saturation_threshold must be a number, got {thr!r}")
        if not math.isfinite(float(thr)):
            raise ValueError(f"saturation_threshold must be finite, got {thr!r}")
        if self.relative and not 0.0 < float(thr) <= 1.0:
            raise ValueError(f"a relative saturation_threshold must lie in (0, 1], got {thr!r}")
        if not self.relative and float(thr) < 0:
            raise ValueError(f"an absolute saturation_threshold must be >= 0, got {thr!r}")

    @classmethod
    def from_config(cls, mask: np.ndarray, defect_config: Mapping[str, Any]) -> GtChannel:
        """Returns a channel built from a mask and one ``defects_config.json`` entry.

        Args:
            mask: HxW defect mask (nonzero = defect).
            defect_config: Mapping with keys ``saturation_threshold`` and ``relative_saturation``.
        """
        return cls(
            mask=mask,
            saturation_threshold=defect_config["saturation_threshold"],
            relative=bool(defect_config["relative_saturation"]),
        )

    @property
    def area(self) -> int:
        """Returns the number of defect pixels."""
        return int(np.count_nonzero(self.mask))

    @property
    def saturation_area(self) -> float:
        """Returns this channel's saturation area (see :func:`saturation_area`)."""
        return saturation_area(self.area, self.saturation_threshold, self.relative)


@dataclass(frozen=True, eq=False)
class SproCurve:
    """The sPRO-vs-FPR curve, ordered by decreasing threshold (so ``fpr`` is non-decreasing).

    Attributes:
        fpr: False positive rate per point; starts at 0 and ends at 1.
        spro: Mean sPRO over all channels per point; ends at 1.
        thresholds: Score threshold per point (``score >= threshold`` is positive); the first is ``+inf``.
    """

    fpr: np.ndarray
    spro: np.ndarray
    thresholds: np.ndarray | None = None


def _validate(
    maps: Sequence[np.ndarray], channels: Sequence[Sequence[GtChannel] | None]
) -> tuple[list[np.ndarray], list[list[GtChannel]], np.dtype]:
    """Returns the maps as 2-D arrays, the channel lists and the common float dtype, after checking the inputs."""
    if len(maps) != len(channels):
        raise ValueError(f"got {len(maps)} anomaly maps but {len(channels)} ground-truth channel lists")
    if len(maps) == 0:
        raise ValueError("no anomaly maps given")
    arrays: list[np.ndarray] = []
    chans: list[list[GtChannel]] = []
    for i, (amap, image_channels) in enumerate(zip(maps, channels, strict=True)):
        arr = np.asarray(amap)
        if arr.ndim != 2:
            raise ValueError(f"anomaly map {i} must be 2-D (H, W), got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"anomaly map {i} must hold real numbers, got dtype {arr.dtype}")
        image_chans = list(image_channels or [])
        for j, ch in enumerate(image_chans):
            if not isinstance(ch, GtChannel):
                raise ValueError(f"channel {j} of image {i} must be a GtChannel, got {type(ch).__name__}")
            if ch.mask.shape != arr.shape:
                raise ValueError(
                    f"anomaly map {i} has shape {arr.shape} but its ground-truth channel {j} has shape {ch.mask.shape}"
                )
        arrays.append(arr)
        chans.append(image_chans)
    if not any(chans):
        raise ValueError(
            f"no ground-truth channels in the {len(maps)} images given: sPRO needs at least one defect channel"
        )
    dtype = np.result_type(np.float32, *(a.dtype for a in arrays))
    return arrays, chans, dtype


def _counts_ge(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Returns, for each edge, how many of ``values`` are ``>= edge`` (``edges`` ascending, unique).

    Uses whichever of two equivalent computations is cheaper: binary-searching the edges in the sorted values
    (large groups) or binning the values into the edges and taking a reverse cumulative sum (small groups).
    """
    n = values.size
    if n == 0:
        return np.zeros(edges.size, dtype=np.int64)
    vals = np.sort(values)
    if n >= edges.size:
        return n - np.searchsorted(vals, edges, side="left").astype(np.int64)
    # Index of the largest edge <= value; values below every edge land in bin -1 and are never counted.
    idx = np.searchsorted(edges, vals, side="right") - 1
    idx = idx[idx >= 0]
    bins = np.bincount(idx, minlength=edges.size)
    return np.cumsum(bins[::-1])[::-1].astype(np.int64)


def _quantile_edges(sorted_sample: np.ndarray, num: int) -> np.ndarray:
    """Returns up to ``num`` values of a sorted sample at equidistant ranks (all of it if it is smaller)."""
    if sorted_sample.size <= num:
        return sorted_sample
    return sorted_sample[np.linspace(0, sorted_sample.size - 1, num=num).astype(np.int64)]


def _union_mask(shape: tuple[int, ...], image_chans: Sequence[GtChannel]) -> np.ndarray:
    """Returns the OR of the channel masks of one image (all False for a good image)."""
    union = np.zeros(shape, dtype=bool)
    for ch in image_chans:
        union |= ch.mask
    return union


def _choose_edges(
    arrays: Sequence[np.ndarray],
    chans: Sequence[Sequence[GtChannel]],
    dtype: np.dtype,
    max_exact_pixels: int,
    num_quantiles: int,
    sample_size: int,
    seed: int,
) -> np.ndarray:
    """Returns the ascending unique thresholds (curve points other than the ``+inf`` start), validating finiteness."""
    total = sum(a.size for a in arrays)
    exact = total <= max_exact_pixels
    per_image = math.ceil(sample_size / len(arrays))
    rng = np.random.default_rng(seed)
    uniques: list[np.ndarray] = []
    free_samples: list[np.ndarray] = []
    defect_samples: list[np.ndarray] = []
    lo, hi = math.inf, -math.inf
    for i, (arr, image_chans) in enumerate(zip(arrays, chans, strict=True)):
        if not np.isfinite(arr).all():
            raise ValueError(f"anomaly map {i} contains NaN or inf values")
        if arr.size == 0:
            continue
        lo = min(lo, float(arr.min()))
        hi = max(hi, float(arr.max()))
        if exact:
            uniques.append(np.unique(arr.astype(dtype, copy=False)))
            continue
        union = _union_mask(arr.shape, image_chans)
        for group, out in ((arr[~union], free_samples), (arr[union], defect_samples)):
            if group.size == 0:
                continue
            if group.size > per_image:
                group = group[rng.integers(0, group.size, size=per_image)]
            out.append(group.astype(dtype, copy=False))
    if exact:
        if not uniques:
            raise ValueError("all anomaly maps are empty")
        return np.unique(np.concatenate(uniques))
    parts = [np.array([lo, hi], dtype=dtype)]
    for samples in (free_samples, defect_samples):
        if samples:
            parts.append(_quantile_edges(np.sort(np.concatenate(samples)), num_quantiles))
    return np.unique(np.concatenate(parts).astype(dtype, copy=False))


def spro_curve(
    maps: Sequence[np.ndarray],
    channels: Sequence[Sequence[GtChannel] | None],
    *,
    max_exact_pixels: int = _DEFAULT_MAX_EXACT_PIXELS,
    num_quantiles: int = _DEFAULT_NUM_QUANTILES,
    sample_size: int = _DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> SproCurve:
    """Returns the sPRO-vs-FPR curve of a subset of test images.

    Thresholds: if the subset has at most ``max_exact_pixels`` pixels in total, every distinct score is a threshold
    (the exact curve). Otherwise the thresholds are the global minimum and maximum score plus up to
    ``num_quantiles`` quantiles of defect-free pixel scores and up to ``num_quantiles`` of defect pixel scores, taken
    from a seeded random subsample of about ``sample_size`` pixels of each kind. FP and TP counts at every
    threshold are exact either way. The images are processed one at a time (two passes in the quantile case), so
    memory stays at a few copies of one map plus O(number of thresholds).

    Args:
        maps: One real-valued HxW anomaly map per image (higher = more anomalous).
        channels: Per image, its ground-truth channels; an empty list (or None) for a good image.
        max_exact_pixels: Largest total pixel count for which the exact curve is computed.
        num_quantiles: Quantile thresholds per pixel kind (defect-free / defect) in the large-input case.
        sample_size: Approximate subsample size per pixel kind used to place the quantile thresholds.
        seed: Seed of the subsample.

    Returns:
        The curve, ordered by decreasing threshold: it starts at FPR 0 (threshold ``+inf``) and ends at FPR 1 and
        sPRO 1 (threshold = the smallest score).

    Raises:
        ValueError: On mismatched lengths or shapes (naming the image and both shapes), a non-2-D map, NaN/inf
            scores, a subset without any channel, or a subset without any defect-free pixel.
    """
    start = time.perf_counter()
    arrays, chans, dtype = _validate(maps, channels)
    edges = _choose_edges(arrays, chans, dtype, max_exact_pixels, num_quantiles, sample_size, seed)

    fp_counts = np.zeros(edges.size, dtype=np.int64)
    spro_sum = np.zeros(edges.size, dtype=np.float64)
    num_free = 0
    num_channels = 0
    num_zero_saturation = 0
    for arr, image_chans in zip(arrays, chans, strict=True):
        values = arr.astype(dtype, copy=False)
        union = _union_mask(arr.shape, image_chans)
        free = values[~union]
        num_free += free.size
        fp_counts += _counts_ge(free, edges)
        for ch in image_chans:
            num_channels += 1
            sat = ch.saturation_area
            if sat <= 0:
                # Official code divides by zero here; we count the channel as always saturated.
                num_zero_saturation += 1
                continue
            tp = _counts_ge(values[ch.mask], edges)
            spro_sum += np.minimum(tp / sat, 1.0)
    if num_free == 0:
        raise ValueError("no defect-free pixels in the subset: the false positive rate is undefined")
    if num_zero_saturation:
        logger.warning(
            "%d of %d channels have saturation area 0 and count as fully saturated", num_zero_saturation, num_channels
        )

    # Points in decreasing threshold order, preceded by the +inf threshold where nothing is positive.
    fpr = np.concatenate([[0.0], fp_counts[::-1] / num_free])
    spro = (np.concatenate([[0.0], spro_sum[::-1]]) + num_zero_saturation) / num_channels
    thresholds = np.concatenate([[np.inf], edges[::-1].astype(np.float64)])
    logger.debug(
        "sPRO curve: %d images, %d channels, %d thresholds (%s) in %.2fs",
        len(arrays),
        num_channels,
        edges.size,
        "exact" if sum(a.size for a in arrays) <= max_exact_pixels else "quantile",
        time.perf_counter() - start,
    )
    return SproCurve(fpr=fpr, spro=spro, thresholds=thresholds)


def au_spro(curve: SproCurve, max_fpr: float) -> float:
    """Returns the area under the sPRO curve from FPR 0 to ``max_fpr``, divided by ``max_fpr``.

    Same as the official ``get_auc_for_max_fpr(scale_to_one=True)``: trapezoid rule over the points with
    ``fpr <= max_fpr``, plus the trapezoid up to ``max_fpr`` with the sPRO value linearly interpolated between the
    last point below and the first point above ``max_fpr``.

    Args:
        curve: A curve whose FPR is non-decreasing, starts at 0 and ends at 1.
        max_fpr: Integration limit in (0, 1].

    Raises:
        ValueError: If ``max_fpr`` is outside (0, 1] or the curve is malformed.
    """
    if not 0.0 < max_fpr <= 1.0:
        raise ValueError(f"max_fpr must lie in (0, 1], got {max_fpr}")
    x = np.asarray(curve.fpr, dtype=np.float64)
    y = np.asarray(curve.spro, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"curve needs two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    if x[0] != 0.0 or x[-1] != 1.0:
        raise ValueError(f"curve FPR must start at 0 and end at 1, got {x[0]} and {x[-1]}")
    if np.any(np.diff(x) < 0) or not np.isfinite(y).all():
        raise ValueError("curve FPR must be non-decreasing and sPRO finite")
    ins = int(np.searchsorted(x, max_fpr, side="right"))  # first index with fpr > max_fpr
    xs, ys = x[:ins], y[:ins]
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))
    if xs[-1] < max_fpr:
        x0, x1, y0, y1 = x[ins - 1], x[ins], y[ins - 1], y[ins]
        y_at = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
        area += 0.5 * (y_at + y0) * (max_fpr - x0)
    return float(area / max_fpr)


def compute_au_spro(
    maps: Sequence[np.ndarray],
    channels: Sequence[Sequence[GtChannel] | None],
    limits: Sequence[float] = DEFAULT_LIMITS,
    **curve_kwargs: Any,
) -> dict[float, float]:
    """Returns ``{limit: AU-sPRO}`` for one subset (e.g. logical anomalies plus all good images).

    Args:
        maps: One HxW anomaly map per image.
        channels: Per image, its ground-truth channels (empty for good images).
        limits: Integration limits (maximum FPR), each in (0, 1].
        **curve_kwargs: Passed to :func:`spro_curve` (``max_exact_pixels``, ``num_quantiles``, ...).
    """
    for limit in limits:
        if not 0.0 < limit <= 1.0:
            raise ValueError(f"integration limits must lie in (0, 1], got {limit}")
    curve = spro_curve(maps, channels, **curve_kwargs)
    return {float(limit): au_spro(curve, limit) for limit in limits}
