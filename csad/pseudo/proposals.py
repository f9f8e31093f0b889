"""SAM automatic-mask proposals (X_seg, docs/method.md 2.3 steps 1, 3, the first half of 4, and the cut of 5).

Per image: SAM's automatic masks, split into connected components; the corner-point background (SAM prompted with
the 8 corner points); the components mostly inside that background removed; at most 255 components kept by
descending area; merged into an instance map. The grounding filter and the removal of the grounding background
are left to the later refine step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from csad.errors import ParamsError
from csad.pseudo.masks import empty_instances, merge_masks, remove_background, split_connected_components
from csad.pseudo.regions import corner_points
from csad.pseudo.types import ProposalResult

log = logging.getLogger(__name__)

PARAM_PREFIX = "propose.sam"

#: SamAutomaticMaskGenerator settings hard-coded in the released pseudo_label.py ``segmentation()``.
AMG_DEFAULTS: dict[str, int | float] = {
    "points_per_side": 32,
    "points_per_batch": 16,
    "pred_iou_thresh": 0.88,
    "stability_score_thresh": 0.96,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 0.7,
    "crop_n_layers": 1,
    "crop_nms_thresh": 0.7,
    "crop_overlap_ratio": 512 / 1500,
    "crop_n_points_downscale_factor": 1,
    "min_mask_region_area": 500,
}
_INT_KEYS = {"points_per_side", "points_per_batch", "crop_n_layers", "crop_n_points_downscale_factor"}
MAX_MASKS = 255


def amg_settings(overrides: Mapping[str, Any] | None = None, prefix: str = PARAM_PREFIX) -> dict[str, int | float]:
    """Return :data:`AMG_DEFAULTS` updated with ``overrides``, ints and floats checked.

    Raises:
        ParamsError: an unknown key or a value of the wrong type (named as ``prefix.key``).
    """
    out: dict[str, int | float] = dict(AMG_DEFAULTS)
    for key, value in (overrides or {}).items():
        if key not in AMG_DEFAULTS:
            raise ParamsError(f"params.yaml: unknown key {prefix}.{key} (known: {', '.join(AMG_DEFAULTS)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"params.yaml: {prefix}.{key} must be a number, got {value!r}")
        if key in _INT_KEYS:
            if int(value) != value:
                raise ParamsError(f"params.yaml: {prefix}.{key} must be an integer, got {value!r}")
            value = int(value)
        out[key] = value if key in _INT_KEYS else float(value)
    return out


class SamProposals:
    """Proposal backend: SAM automatic masks split into components, minus SAM's corner-point background."""

    def __init__(self, sam_model: Any, amg: Mapping[str, Any] | None = None, max_masks: int = MAX_MASKS) -> None:
        """Build the automatic mask generator of ``sam_model`` with :data:`AMG_DEFAULTS` updated by ``amg``."""
        from csad.foundation.sam import import_segment_anything

        import_segment_anything()
        from segment_anything import SamAutomaticMaskGenerator

        self.settings = amg_settings(amg)
        self.generator = SamAutomaticMaskGenerator(sam_model, output_mode="binary_mask", **self.settings)
        self.predictor = self.generator.predictor
        self.max_masks = int(max_masks)

    def background(self, image: np.ndarray) -> np.ndarray:
        """Return the (H, W) bool SAM mask of the 8 positive corner points (multimask_output=False)."""
        h, w = image.shape[:2]
        self.predictor.set_image(image)
        masks, _, _ = self.predictor.predict(
            point_coords=corner_points(h, w), point_labels=np.ones(8, dtype=np.int64), multimask_output=False
        )
        self.predictor.reset_image()
        return np.asarray(masks[0], dtype=bool)

    def masks(self, image: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Return (proposals, background): the bool component masks kept (descending area, at most ``max_masks``)
        and the corner-point background of the RGB uint8 ``image``."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
        try:
            records = self.generator.generate(image)
        except IndexError:
            # segment-anything 1.0 crashes in its cross-crop NMS (box_area of an empty tensor) when crop_n_layers > 0
            # and no crop kept a mask: that is "no masks", not an error.
            if self.generator.crop_n_layers == 0:
                raise
            log.debug("SAM automatic masks: no mask in any crop")
            records = []
        raw = [np.asarray(r["segmentation"], dtype=bool) for r in records]
        components = split_connected_components(raw)
        background = self.background(image)
        kept = remove_background(background, components)
        kept = sorted(kept, key=lambda m: -int(np.count_nonzero(m)))[: self.max_masks]
        log.debug("SAM: %d raw masks, %d components, %d kept", len(raw), len(components), len(kept))
        return kept, background

    def __call__(self, image: np.ndarray) -> ProposalResult:
        """Return the proposals of the RGB uint8 ``image`` as an instance map plus the corner background."""
        kept, background = self.masks(image)
        shape = image.shape[:2]
        if not kept:
            return ProposalResult(empty_instances(shape), background, ["no SAM proposals left after filtering"])
        instances = merge_masks(kept)
        warnings = [] if instances.any() else ["every SAM proposal covers <= 0.1% of the image"]
        return ProposalResult(instances, background, warnings)


def build_sam_proposals(cfg: Mapping[str, Any], device: str = "cpu") -> SamProposals:
    """Return the SAM proposal backend of the ``propose.sam`` params: model_type (default vit_h), checkpoint and
    any of the :data:`AMG_DEFAULTS` keys.

    Raises:
        ParamsError: an unknown key or a value of the wrong type.
        CheckpointError: the checkpoint is missing or unusable (the message names ``propose.sam.checkpoint``).
    """
    amg = {k: v for k, v in cfg.items() if k not in ("model_type", "checkpoint")}
    settings = amg_settings(amg)
    from csad.foundation.sam import build_sam

    sam = build_sam(cfg.get("model_type", "vit_h"), cfg.get("checkpoint"), f"{PARAM_PREFIX}.checkpoint", device)
    return SamProposals(sam, settings)
