"""Logical Synthetic Anomalies (docs/method.md 3.4): paste rotated copies of an image's own components elsewhere in it,
updating the image and its label map consistently.

Fixes over the released ``labeled_lsa`` (docs/method.md 9.19 and 9.24):

* a paste happens only at a valid position: the warped mask stays inside the image and overlaps the background by
  less than the phase's threshold; if no attempt of ``max_attempts`` is valid the component is skipped;
* labels are warped with nearest-neighbour interpolation (never bilinear), so pasted pixels keep exact class ids;
* the component pool may empty (no crash): pasting simply stops;
* every random choice comes from the given ``numpy.random.Generator``.

>>> image = np.zeros((64, 64, 3), np.uint8); image[8:20, 8:20] = 200
>>> label = np.zeros((64, 64), np.int64); label[8:20, 8:20] = 3
>>> out_image, out_label, info = logical_synthetic_anomaly(
...     image, label, label.copy(), np.zeros((64, 64), bool), LSAConfig(), np.random.default_rng(0))
>>> info["pastes"] >= 1, int((out_label == 3).sum()) > int((label == 3).sum())
(True, True)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from csad.pseudo.masks import intersect_ratio
from csad.seg.config import LSAConfig


def candidate_components(label: np.ndarray, instances: np.ndarray, config: LSAConfig) -> list[tuple[int, np.ndarray]]:
    """Return ``(instance value, bool mask)`` of the instances eligible as paste sources, by increasing value.

    Eligible: area > ``min_area_fraction`` of the image, intersect_ratio(mask, label != 0) > ``min_labeled_ratio``
    and at most ``max_unlabeled_pixels`` pixels with label 0.
    """
    labeled = label != 0
    out: list[tuple[int, np.ndarray]] = []
    for value in np.unique(instances):
        if value == 0:
            continue
        mask = instances == value
        area = int(np.count_nonzero(mask))
        if area <= config.min_area_fraction * mask.size:
            continue
        if intersect_ratio(mask, labeled) <= config.min_labeled_ratio:
            continue
        if area - int(np.count_nonzero(mask & labeled)) > config.max_unlabeled_pixels:
            continue
        out.append((int(value), mask))
    return out


def _target_sampler(
    source: np.ndarray, config: LSAConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (candidate centres (n, 2) normalised xy, cumulative weights) or None if none is far enough.

    Candidates are uniform in [boundary, 1 - boundary]^2; the weight is 0 closer than ``min_distance`` to the
    normalised source centre, otherwise the squared distance (as released).
    """
    lo, hi = config.boundary, 1.0 - config.boundary
    points = rng.uniform(lo, hi, size=(config.n_candidates, 2))
    dist2 = ((points - source[None, :]) ** 2).sum(axis=1)
    weights = np.where(dist2 < config.min_distance**2, 0.0, dist2)
    total = weights.sum()
    if total <= 0.0:
        return None
    return points, np.cumsum(weights) / total


def _find_position(
    mask: np.ndarray,
    background: np.ndarray,
    threshold: float,
    config: LSAConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float], int] | None:
    """Return (affine 2x3, warped mask, normalised target centre, angle) of a valid paste of ``mask``, or None."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bw, bh = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
    centre = (float(x0 + bw // 2), float(y0 + bh // 2))
    sampler = _target_sampler(np.array([centre[0] / w, centre[1] / h]), config, rng)
    if sampler is None:
        return None
    points, cum = sampler
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.float32)).reshape(-1, 2).astype(np.float64)
    hull_h = np.concatenate([hull, np.ones((len(hull), 1))], axis=1)
    mask_u8 = mask.astype(np.uint8)
    for _ in range(config.max_attempts):
        k = min(int(np.searchsorted(cum, rng.random(), side="right")), len(cum) - 1)
        target = points[k]
        angle = int(rng.integers(0, 360))
        affine = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
        affine[0, 2] += target[0] * w - centre[0]
        affine[1, 2] += target[1] * h - centre[1]
        corners = hull_h @ affine.T  # the mask is inside the image iff its convex hull is
        if corners.min() < -0.5 or corners[:, 0].max() > w - 0.5 or corners[:, 1].max() > h - 0.5:
            continue
        warped = cv2.warpAffine(mask_u8, affine, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
        if not warped.any() or intersect_ratio(warped, background) >= threshold:
            continue
        return affine, warped, (float(target[0]), float(target[1])), angle
    return None


def logical_synthetic_anomaly(
    image: np.ndarray,
    label: np.ndarray,
    instances: np.ndarray,
    background: np.ndarray,
    config: LSAConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (image, label, info) with rotated copies of the image's own components pasted at new positions.

    Args:
        image: (H, W, 3) uint8 RGB; it is also the paste source (released: source = target image).
        label: (H, W) integer class map (0 = background).
        instances: (H, W) integer instance map (refined part-level components, 0 = nothing).
        background: (H, W) bool, True = background (pastes must avoid it).
        config: see :class:`LSAConfig`.
        rng: the only source of randomness.

    Phase 1 draws components from the pool (without replacement, probability ~ area^weight_power) until
    ``min_aug_num`` pastes succeeded with background overlap < ``accept_overlap[0]``; phase 2 draws one component
    per optional paste (``max_aug_num - min_aug_num``) with threshold ``accept_overlap[1]``. A component without a
    valid position in ``max_attempts`` tries is skipped; an empty pool ends pasting. Each paste rotates the
    component by a random integer angle about its bbox centre and moves that centre to the drawn target; pixels
    and labels are read from the unmodified inputs (image bilinear, labels and mask nearest) and overwrite the
    output where the warped mask is set.

    ``info``: ``pastes`` (count), ``skipped`` (components without a valid position), ``sources`` (instance
    values pasted), ``targets`` (normalised (x, y) centres), ``angles``, ``pasted_mask`` ((H, W) bool union).
    """
    if image.shape[:2] != label.shape or label.shape != instances.shape or background.shape != label.shape:
        raise ValueError(
            f"shape mismatch: image {image.shape}, label {label.shape}, instances {instances.shape}, "
            f"background {background.shape}"
        )
    h, w = label.shape
    background = background.astype(bool)
    out_image = image.copy()
    out_label = label.copy()
    info: dict[str, Any] = {
        "pastes": 0,
        "skipped": 0,
        "sources": [],
        "targets": [],
        "angles": [],
        "pasted_mask": np.zeros((h, w), dtype=bool),
    }
    pool = candidate_components(label, instances, config)

    def draw() -> tuple[int, np.ndarray]:
        areas = np.array([np.count_nonzero(m) for _, m in pool], dtype=np.float64)
        p = areas**config.weight_power
        idx = int(rng.choice(len(pool), p=p / p.sum()))
        return pool.pop(idx)

    def try_paste(value: int, mask: np.ndarray, threshold: float) -> bool:
        found = _find_position(mask, background, threshold, config, rng)
        if found is None:
            info["skipped"] += 1
            return False
        affine, warped, target, angle = found
        moved = cv2.warpAffine(image, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        moved_label = cv2.warpAffine(
            label.astype(np.float32), affine, (w, h), flags=cv2.INTER_NEAREST, borderValue=0
        ).astype(label.dtype)
        out_image[warped] = moved[warped]
        out_label[warped] = moved_label[warped]
        info["pastes"] += 1
        info["sources"].append(value)
        info["targets"].append(target)
        info["angles"].append(angle)
        info["pasted_mask"] |= warped
        return True

    while info["pastes"] < config.min_aug_num and pool:
        try_paste(*draw(), config.accept_overlap[0])
    for _ in range(config.max_aug_num - config.min_aug_num):
        if not pool:
            break
        try_paste(*draw(), config.accept_overlap[1])
    return out_image, out_label, info
