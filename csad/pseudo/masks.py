"""Binary-mask operations of CSAD's pseudo-label refinement (docs/method.md 2.2-2.3), with the released code's bugs
fixed.

Masks are boolean (H, W) arrays; an instance map is an integer (H, W) array, 0 = nothing.

>>> import numpy as np
>>> a = np.zeros((4, 4), bool); a[:2, :2] = True
>>> b = np.zeros((4, 4), bool); b[:2, :] = True
>>> intersect_ratio(a, b)
1.0
>>> merge_masks([b, a]).tolist()[0]
[2, 2, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def area_fraction(mask: np.ndarray) -> float:
    """Return the fraction of the image covered by ``mask``."""
    return float(np.count_nonzero(mask)) / float(mask.size)


def intersect_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Return |A and B| / min(|A|, |B|), 0 when the intersection (or either mask) is empty."""
    inter = np.count_nonzero(np.logical_and(a, b))
    if inter == 0:
        return 0.0
    return float(inter) / float(min(np.count_nonzero(a), np.count_nonzero(b)))


def split_connected_components(
    masks: Sequence[np.ndarray], max_bbox_fraction: float = 0.95, min_area: int = 50
) -> list[np.ndarray]:
    """Return the 4-connected components of every mask whose bbox covers < ``max_bbox_fraction`` of the image and
    whose area exceeds ``min_area`` pixels.

    Unlike the released code, only the foreground components of each mask are considered: its zero (hole/outside)
    component is never returned as a mask.
    """
    out: list[np.ndarray] = []
    for mask in masks:
        h, w = mask.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
        for k in range(1, n):
            bw, bh, area = stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT], stats[k, cv2.CC_STAT_AREA]
            if bw * bh < max_bbox_fraction * h * w and area > min_area:
                out.append(labels == k)
    return out


def remove_background(background: np.ndarray, masks: Sequence[np.ndarray], max_ratio: float = 0.95) -> list[np.ndarray]:
    """Return the masks whose intersect_ratio with ``background`` is below ``max_ratio``."""
    if not np.any(background):
        return list(masks)
    return [m for m in masks if intersect_ratio(m, background) < max_ratio]


def filter_small(masks: Sequence[np.ndarray], min_fraction: float = 0.001) -> list[np.ndarray]:
    """Return the masks covering more than ``min_fraction`` of the image."""
    return [m for m in masks if area_fraction(m) > min_fraction]


def filter_by_combine(
    masks: Sequence[np.ndarray], min_fraction: float = 0.001, overlap: float = 0.9
) -> list[np.ndarray]:
    """Return the "Combine & Filter" refinement: small part-level masks first, a larger mask kept only if at least
    ``1 - overlap`` of it is not yet covered by the kept ones (docs/method.md 2.3).

    Masks are visited by ascending area; one is kept when it is the first or intersect_ratio(union, mask) is below
    ``overlap``, otherwise it waits; each waiting mask (ascending) is then kept if |union and mask| / |mask| is below
    ``overlap``. The kept masks are returned in ascending-area order.
    """
    kept_masks = sorted(filter_small(masks, min_fraction), key=lambda m: int(np.count_nonzero(m)))
    if not kept_masks:
        return []
    union = np.zeros_like(kept_masks[0], dtype=bool)
    kept: list[np.ndarray] = []
    waiting: list[np.ndarray] = []
    for i, mask in enumerate(kept_masks):
        if i == 0 or intersect_ratio(union, mask) < overlap:
            union |= mask
            kept.append(mask)
        else:
            waiting.append(mask)
    for mask in waiting:
        covered = np.count_nonzero(union & mask) / max(1, np.count_nonzero(mask))
        if covered < overlap:
            union |= mask
            kept.append(mask)
    return kept


def merge_masks(masks: Sequence[np.ndarray], min_fraction: float = 0.001) -> np.ndarray:
    """Return an instance map: masks above ``min_fraction`` ranked by decreasing area get 1..n, painted in that
    order so smaller masks overwrite larger ones. An empty list gives an all-zero map only if a shape is known, so
    callers pass at least one mask or use :func:`empty_instances`."""
    if not masks:
        raise ValueError("merge_masks needs at least one mask to know the image size; use empty_instances()")
    shape = masks[0].shape
    big = sorted((m for m in masks if area_fraction(m) > min_fraction), key=lambda m: -int(np.count_nonzero(m)))
    out = np.zeros(shape, dtype=np.uint16)
    for k, mask in enumerate(big, start=1):
        out[mask] = k
    return out


def empty_instances(shape: tuple[int, int]) -> np.ndarray:
    """Return an all-zero uint16 instance map of ``shape``."""
    return np.zeros(shape, dtype=np.uint16)


def masks_from_instances(instances: np.ndarray, min_fraction: float = 0.0) -> list[np.ndarray]:
    """Return one boolean mask per non-zero value of ``instances`` (ascending value) above ``min_fraction``."""
    values = np.unique(instances)
    masks = [instances == v for v in values if v != 0]
    return [m for m in masks if area_fraction(m) > min_fraction]


def relabel_sequential(instances: np.ndarray) -> np.ndarray:
    """Return ``instances`` with its non-zero values renumbered 1..n by decreasing area (ties: by old value)."""
    values, counts = np.unique(instances[instances != 0], return_counts=True)
    order = sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda vc: (-vc[1], vc[0]))
    lut = np.zeros(int(instances.max()) + 1, dtype=np.uint16)
    for new, (old, _) in enumerate(order, start=1):
        lut[old] = new
    return lut[instances]
