"""Grounded-SAM open-vocabulary segmentation (X_sem, docs/method.md 2.2): Grounding DINO boxes prompt SAM.

Fixes over the released code (docs/method.md 9.11 and 9.24):

- The background pieces of ``background_prompt.split('.')`` are stripped before matching, so the pushpins prompt
  ``" container ."`` matches the phrase "container" (the released code compares " container " with its spaces,
  which no phrase can contain, making it a no-op).
- No boxes, or only background boxes, give an empty instance map and a warning in the result instead of the
  released code's ``torch.stack([])`` crash.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from csad.errors import ParamsError
from csad.pseudo.masks import area_fraction, empty_instances, merge_masks
from csad.pseudo.types import GroundingResult

log = logging.getLogger(__name__)

PARAM_PREFIX = "ground.grounded_sam"
MIN_FRACTION = 0.001  # masks covering <= 0.1% of the image are dropped by merge_masks


def background_pieces(background_prompt: str) -> list[str]:
    """Return the non-empty stripped pieces of ``background_prompt.split('.')``."""
    return [piece.strip() for piece in background_prompt.split(".") if piece.strip()]


def is_background_phrase(phrase: str, background_prompt: str) -> bool:
    """Return whether ``phrase`` (with " - " replaced by "-") contains a stripped piece of ``background_prompt``.

    >>> is_background_phrase("zip - lock bag", "zip-lock bag")
    True
    >>> is_background_phrase("container", " container .")
    True
    >>> is_background_phrase("pushpin", " container .")
    False
    """
    joined = phrase.replace(" - ", "-")
    return any(piece in joined for piece in background_pieces(background_prompt))


class GroundedSamGrounding:
    """Grounding backend: Grounding DINO boxes of the prompt's tags, one SAM mask per box (boxes as prompts)."""

    def __init__(
        self,
        gdino: Any,
        sam_predictor: Any,
        box_threshold: float,
        text_threshold: float,
        background_prompt: str = "",
        short_side: int = 800,
        max_size: int | None = 1333,
        box_batch: int = 32,
    ) -> None:
        """Keep the models and thresholds; ``box_batch`` boxes go through SAM at once (results do not depend on
        it: SAM decodes every box prompt independently)."""
        self.gdino = gdino
        self.predictor = sam_predictor
        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        self.background_prompt = background_prompt
        self.short_side = int(short_side)
        self.max_size = max_size
        self.box_batch = max(1, int(box_batch))

    def _box_masks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Return the (n, H, W) bool SAM masks of the xyxy pixel ``boxes`` (multimask_output=False)."""
        import torch

        self.predictor.set_image(image)
        device = self.predictor.device
        out = []
        for start in range(0, len(boxes), self.box_batch):
            chunk = torch.as_tensor(boxes[start : start + self.box_batch], dtype=torch.float32, device=device)
            transformed = self.predictor.transform.apply_boxes_torch(chunk, image.shape[:2])
            masks, _, _ = self.predictor.predict_torch(
                point_coords=None, point_labels=None, boxes=transformed, multimask_output=False
            )
            out.append(masks[:, 0].cpu().numpy().astype(bool))
        self.predictor.reset_image()
        return np.concatenate(out, axis=0)

    def __call__(self, image: np.ndarray, prompt: str) -> GroundingResult:
        """Return the grounding of ``prompt`` ("tag1 . tag2 .") in the RGB uint8 ``image``."""
        from csad.foundation.groundingdino import predict_boxes

        shape = image.shape[:2]
        boxes, phrases, _scores = predict_boxes(
            self.gdino, image, prompt, self.box_threshold, self.text_threshold, self.short_side, self.max_size
        )
        background = np.zeros(shape, dtype=bool)
        if len(boxes) == 0:
            return GroundingResult(
                empty_instances(shape), background, [], [f"no Grounding DINO detections for {prompt!r}"]
            )
        is_bg = [is_background_phrase(p, self.background_prompt) for p in phrases]
        masks = self._box_masks(image, boxes)
        for mask, bg in zip(masks, is_bg, strict=True):
            if bg:
                background |= mask
        fg = [(mask, phrase) for mask, phrase, bg in zip(masks, phrases, is_bg, strict=True) if not bg]
        if not fg:
            return GroundingResult(
                empty_instances(shape), background, [], [f"only background detections for {prompt!r}"]
            )
        # merge_masks' own order (area > 0.1%, descending area, stable) so phrases follow the instance values.
        kept = sorted(
            (pair for pair in fg if area_fraction(pair[0]) > MIN_FRACTION),
            key=lambda pair: -int(np.count_nonzero(pair[0])),
        )
        if not kept:
            return GroundingResult(
                empty_instances(shape), background, [], ["every foreground mask covers <= 0.1% of the image"]
            )
        instances = merge_masks([m for m, _ in kept], min_fraction=MIN_FRACTION)
        return GroundingResult(instances, background, [p for _, p in kept], [])


_KEYS = {
    "config": None,
    "checkpoint": None,
    "bert_path": None,
    "sam_model_type": "vit_h",
    "sam_checkpoint": None,
    "box_threshold": None,
    "text_threshold": None,
    "background_prompt": "",
    "short_side": 800,
}


def build_grounded_sam(cfg: Mapping[str, Any], device: str = "cpu") -> GroundedSamGrounding:
    """Return the Grounded-SAM backend of the ``ground.grounded_sam`` params (one category's values).

    Keys: config (empty: the stock SwinT_OGC config), checkpoint, bert_path, sam_model_type (default vit_h),
    sam_checkpoint, box_threshold, text_threshold, background_prompt (default ""), short_side (default 800).

    Raises:
        ParamsError: an unknown or missing key.
        CheckpointError: a model file or folder is missing or unusable (the message names the param).
    """
    unknown = sorted(set(cfg) - set(_KEYS))
    if unknown:
        raise ParamsError(f"params.yaml: unknown key {PARAM_PREFIX}.{unknown[0]} (known: {', '.join(_KEYS)})")
    values = {k: cfg.get(k, default) for k, default in _KEYS.items()}
    for key in ("box_threshold", "text_threshold"):
        if not isinstance(values[key], int | float) or isinstance(values[key], bool):
            raise ParamsError(f"params.yaml: {PARAM_PREFIX}.{key} must be a number, got {values[key]!r}")
    from csad.foundation.groundingdino import build_groundingdino, check_groundingdino_files
    from csad.foundation.sam import build_sam, check_sam_checkpoint, sam_predictor

    names = {k: f"{PARAM_PREFIX}.{k}" for k in ("config", "checkpoint", "bert_path")}
    # Check every file before building anything, so a typo fails in seconds, not after loading ViT-H.
    check_groundingdino_files(values["config"] or None, values["checkpoint"], values["bert_path"], names)
    sam_param = f"{PARAM_PREFIX}.sam_checkpoint"
    check_sam_checkpoint(values["sam_model_type"], values["sam_checkpoint"], sam_param)
    gdino = build_groundingdino(values["config"] or None, values["checkpoint"], values["bert_path"], names, device)
    sam = build_sam(values["sam_model_type"], values["sam_checkpoint"], sam_param, device)
    return GroundedSamGrounding(
        gdino,
        sam_predictor(sam),
        values["box_threshold"],
        values["text_threshold"],
        values["background_prompt"] or "",
        int(values["short_side"]),
    )
