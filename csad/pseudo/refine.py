"""Refinement of the part-level proposals into the instance map used for clustering (docs/method.md 2.3).

Two modes, chosen per category:

- ``"fine"``: the proposals (SAM automatic masks, already split into connected components), optionally restricted
  to the grounding foreground, minus the proposal (corner-point) background and the grounding background, at most
  ``max_masks`` of them by decreasing area, then "Combine & Filter" (:func:`csad.pseudo.masks.filter_by_combine`).
- ``"coarse"``: the grounding instances, each split into its connected components, then "Combine & Filter".

Both return an instance map ranked by decreasing area (1 = largest); nothing left gives an all-zero map.

"Combine & Filter" only drops a mask that other masks overlap. The masks of an instance map never overlap, so on an
instance map it only removes small masks; to let it drop a large proposal mostly covered by its parts (as the
released code does on SAM's raw, overlapping masks) pass the proposals as an (M, H, W) stack of masks instead.

>>> import numpy as np
>>> grounding = np.zeros((32, 32), np.uint16); grounding[4:20, 4:20] = 1
>>> empty = np.zeros((32, 32), bool)
>>> refined = refine_instances(np.zeros_like(grounding), empty, grounding, empty, "coarse", False)
>>> refined.dtype, int(refined.max()), int((refined == 1).sum())
(dtype('uint16'), 1, 256)
"""

from __future__ import annotations

import numpy as np

from csad.pseudo.masks import (
    empty_instances,
    filter_by_combine,
    intersect_ratio,
    masks_from_instances,
    merge_masks,
    remove_background,
    split_connected_components,
)
from csad.pseudo.refine_config import REFINE_MODES
from csad.pseudo.refine_config import RefineConfig as RefineConfig  # re-export


def refine_instances(
    proposals: np.ndarray,
    proposal_background: np.ndarray,
    grounding: np.ndarray,
    grounding_background: np.ndarray,
    mode: str,
    use_grounding_filter: bool,
    grounding_filter_ratio: float = 0.9,
    background_ratio: float = 0.95,
    min_fraction: float = 0.001,
    combine_overlap: float = 0.9,
    max_masks: int = 255,
) -> np.ndarray:
    """Return the refined (H, W) uint16 instance map of one image (0 = nothing, 1..n by decreasing area).

    Args:
        proposals: (H, W) integer instance map of the part-level proposals (0 = none), or an (M, H, W) stack of
            possibly overlapping proposal masks (non-zero = inside); ignored in coarse mode except for its shape.
        proposal_background: (H, W) mask of the proposal (corner-point) background; any non-zero pixel counts.
        grounding: (H, W) integer instance map of the grounding foreground detections (0 = none).
        grounding_background: (H, W) mask of the grounding background-phrase detections; any non-zero pixel counts.
        mode: ``"fine"`` (refine the proposals) or ``"coarse"`` (refine the grounding instances).
        use_grounding_filter: fine mode only: keep only proposals lying mostly inside the grounding foreground.
        grounding_filter_ratio: a proposal passes the grounding filter when its intersect ratio with the grounding
            foreground is above this.
        background_ratio: a proposal is dropped when its intersect ratio with a background reaches this.
        min_fraction: masks covering at most this fraction of the image are dropped.
        combine_overlap: "Combine & Filter" overlap threshold (a mask is kept while less than this is covered).
        max_masks: fine mode only: at most this many proposals (the largest) enter "Combine & Filter".

    Raises:
        ValueError: ``mode`` is not one of ``"fine"``/``"coarse"``, or the maps do not all have one 2-D shape.
    """
    if mode not in REFINE_MODES:
        raise ValueError(f"refine mode must be one of {', '.join(map(repr, REFINE_MODES))}, got {mode!r}")
    proposals = np.asarray(proposals)
    if proposals.ndim not in (2, 3):
        raise ValueError(f"proposals must be an (H, W) instance map or an (M, H, W) mask stack, got {proposals.shape}")
    shape = _common_shape(proposals.shape[-2:], proposal_background, grounding, grounding_background)
    if mode == "fine":
        refined = _refine_fine(
            proposals,
            np.asarray(proposal_background) != 0,
            np.asarray(grounding),
            np.asarray(grounding_background) != 0,
            use_grounding_filter,
            grounding_filter_ratio,
            background_ratio,
            min_fraction,
            combine_overlap,
            max_masks,
        )
    else:
        masks = split_connected_components(masks_from_instances(grounding, min_fraction))
        refined = filter_by_combine(masks, min_fraction, combine_overlap)
    if not refined:
        return empty_instances(shape)
    return merge_masks(refined, min_fraction)


def _refine_fine(
    proposals: np.ndarray,
    proposal_background: np.ndarray,
    grounding: np.ndarray,
    grounding_background: np.ndarray,
    use_grounding_filter: bool,
    grounding_filter_ratio: float,
    background_ratio: float,
    min_fraction: float,
    combine_overlap: float,
    max_masks: int,
) -> list[np.ndarray]:
    """Return the "Combine & Filter"-ed proposal masks of fine mode (ascending area)."""
    if proposals.ndim == 3:
        masks = [np.asarray(m) != 0 for m in proposals]
    else:
        masks = masks_from_instances(proposals)
    if use_grounding_filter:
        foreground = grounding != 0
        masks = [m for m in masks if intersect_ratio(foreground, m) > grounding_filter_ratio]
    masks = remove_background(proposal_background, masks, background_ratio)
    masks = remove_background(grounding_background, masks, background_ratio)
    # Stable sort: equal areas keep the ascending proposal-value order, so the cut at max_masks is deterministic.
    masks = sorted(masks, key=lambda m: -int(np.count_nonzero(m)))[: max(0, max_masks)]
    return filter_by_combine(masks, min_fraction, combine_overlap)


def _common_shape(proposal_shape: tuple[int, ...], *maps: np.ndarray) -> tuple[int, int]:
    """Return the one 2-D shape shared by the proposals' last two axes and ``maps``; raise ValueError if they
    differ."""
    shapes = {tuple(proposal_shape), *(np.shape(m) for m in maps)}
    if len(shapes) != 1:
        raise ValueError(f"refine_instances needs maps of one shape, got {sorted(shapes)}")
    (shape,) = shapes
    if len(shape) != 2:
        raise ValueError(f"refine_instances needs 2-D (H, W) maps, got shape {shape}")
    return shape[0], shape[1]
