"""Rotation-invariant descriptors of the components of an instance map (docs/method.md 2.4).

Each component (an instance value covering more than ``min_fraction`` of the image, in increasing value order) is
described by a concatenation of *blocks*, chosen by name in :class:`ComponentFeatureConfig`:

``cnn``
    The paper's descriptor: the component is cropped onto a ``canvas`` x ``canvas`` black square with the diagonal
    of its minimum-area rectangle scaled to the canvas (:func:`align_component`), rotated to every angle of
    :func:`rotation_angles`, passed through a frozen backbone; its feature map at ``stride`` is averaged over H, W
    and then over the rotations (:func:`cnn_descriptors`). With ``cnn_normalize`` (the embedded default) the vector is
    then L2-normalised, so the block has length 1; without it the raw mean features are kept, as the released code
    does (its MeanShift bandwidths of 3.0-4.0 after the 512-d random projection are on the scale of raw WRN50-2
    layer4 features; normalised vectors are at most ~0.45 apart after that projection, so those bandwidths would
    put every component into one cluster).
``color``
    Mean and standard deviation of CIE Lab inside the mask (L 0..100, a and b about -100..100), divided by
    :data:`COLOR_SCALE` and :data:`COLOR_STD_SCALE` (6 values).
``shape``
    The first ``n_hu`` log-transformed Hu moments ``-sign(h) log10 |h|`` of the filled largest contour, clipped to
    +-:data:`HU_CLIP` and divided by :data:`HU_SCALE`. Noisy for small or near-circular components (the high-order
    moments are ~0), hence off by default.
``area``
    ``log2`` of the component's area fraction of the image (1.0 = twice as large).
``elongation``
    ``log2`` of long / short side of the minimum-area rectangle of the largest contour (+1 pixel each).
``solidity``
    Filled-contour area over its convex hull area, and the hole fraction 1 - area / filled area, each divided by
    :data:`SOLIDITY_SCALE` (2 values).

**Scale.** Every block is divided by a FIXED constant, never by statistics of the data set, chosen so that one unit
is about "clearly a different component" (a Lab difference of 10, twice the area, a 2x longer rectangle, a solidity
change of 0.2), then multiplied by its weight in ``ComponentFeatureConfig.block_weights``. Euclidean distances are
therefore comparable across categories and data sets: with the default blocks and weights (colour 1, area 1,
elongation 0.5, solidity 0.5) two components of one class lie about 0.3-1 apart and two classes 1.5-6 apart, so
the MeanShift bandwidth of the cluster step (identity projection) is about 1-2 (per category). The L2-normalised
``cnn`` block contributes at most ``2 * weight`` (``cnn_normalize: false``: raw feature units); with random backbone
weights its vectors are nearly parallel (distances < 0.05), i.e. it carries no information. With the bundled
ImageNet EfficientNet-Lite0 it does, but on the synthetic benchmark it did not raise the pseudo-label mIoU
(``benchmarks/pseudo_labels.py``: 0.830 with ``cnn`` added to the hand-crafted blocks, 0.620 with ``cnn`` alone,
0.838 without) while adding about 30 s per category on a 2-core CPU, so the embedded default leaves it out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as tvf
from tqdm import tqdm

from csad.models.backbone import FeatureExtractor
from csad.pseudo.features_config import DESCRIPTORS as DESCRIPTORS  # re-export
from csad.pseudo.features_config import ComponentFeatureConfig

log = logging.getLogger(__name__)

#: Lab units per feature unit of the colour mean / colour standard deviation.
COLOR_SCALE = 10.0
COLOR_STD_SCALE = 10.0
#: Log-Hu moments are clipped to +-HU_CLIP, then divided by HU_SCALE.
HU_CLIP = 12.0
HU_SCALE = 1.0
#: Solidity / hole fraction per feature unit.
SOLIDITY_SCALE = 0.2
#: Smallest area fraction used by the log of the ``area`` block.
_MIN_LOG_AREA = 2.0**-20

RECORD_KEYS: tuple[str, ...] = ("component", "area", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "cx", "cy")


def _largest_contour(mask: np.ndarray) -> np.ndarray | None:
    """Return the largest external contour (by area, then by point count) of ``mask``, or None if it is empty."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    return max(contours, key=lambda c: (cv2.contourArea(c), len(c)))


def align_component(image: np.ndarray, mask: np.ndarray, canvas: int = 65) -> tuple[np.ndarray, np.ndarray]:
    """Return (RGB uint8 canvas, bool mask canvas): the masked component scaled so the diagonal of its min-area
    rectangle is about ``canvas`` pixels, centred on a ``canvas`` x ``canvas`` black square (docs/method.md 2.4).

    The image is zeroed outside ``mask``; the bbox of the largest external contour is cropped and resized by
    ``canvas / (diagonal + 1)`` (floor, clipped to [1, canvas], bilinear); the mask is re-binarised at 128; both
    are zero-padded symmetrically, the extra row/column going top/left when the padding is odd. Because the
    rotated-rectangle diagonal fits the canvas, the component stays inside it under any rotation. An empty mask
    gives all-zero canvases.
    """
    out_img = np.zeros((canvas, canvas, 3), dtype=np.uint8)
    out_mask = np.zeros((canvas, canvas), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    contour = _largest_contour(mask)
    if contour is None:
        return out_img, out_mask
    crop = np.where(mask[..., None], image, 0).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(contour)
    box = cv2.boxPoints(cv2.minAreaRect(contour))
    diag = float(np.linalg.norm(box[0] - box[2]))
    scale = canvas / (diag + 1.0)
    new_w = int(np.clip(math.floor(w * scale), 1, canvas))
    new_h = int(np.clip(math.floor(h * scale), 1, canvas))
    img_c = cv2.resize(crop[y : y + h, x : x + w], (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    mask_c = (
        cv2.resize(mask[y : y + h, x : x + w].astype(np.uint8) * 255, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        >= 128
    )
    top = (canvas - new_h + 1) // 2
    left = (canvas - new_w + 1) // 2
    out_img[top : top + new_h, left : left + new_w] = img_c.reshape(new_h, new_w, 3)
    out_mask[top : top + new_h, left : left + new_w] = mask_c.reshape(new_h, new_w)
    return out_img, out_mask


def rotation_angles(n: int) -> np.ndarray:
    """Return ``np.linspace(0, 360, n)`` degrees: the released code's angles, whose first and last (0 and 360) are
    the same rotation, so that orientation is counted twice (kept for fidelity; with n = 60 the step is 6.1)."""
    if n < 1:
        raise ValueError(f"n_rotations must be >= 1, got {n}")
    return np.linspace(0.0, 360.0, n)


@torch.no_grad()
def cnn_descriptors(
    backbone: FeatureExtractor,
    stride: int,
    canvases: Sequence[np.ndarray],
    n_rotations: int = 60,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Return the (N, C) float32 rotation-averaged CNN descriptors of ``canvases`` (N RGB uint8 squares).

    Every canvas is rotated by each angle of :func:`rotation_angles` (bilinear, black fill, about the centre),
    run through ``backbone`` (which normalises its input); its feature map at ``stride`` is averaged over H, W,
    then over the rotations. ``batch_size`` canvases (times ``n_rotations`` images) go through the network at once,
    whatever image they come from. Not L2-normalised (see :func:`extract_component_features`).
    """
    if stride not in backbone.strides:
        raise ValueError(f"backbone outputs strides {backbone.strides}, not {stride!r}")
    channels = backbone.channels[stride]
    if len(canvases) == 0:
        return np.zeros((0, channels), dtype=np.float32)
    backbone = backbone.to(device)
    angles = rotation_angles(n_rotations).tolist()
    out = np.zeros((len(canvases), channels), dtype=np.float32)
    step = max(1, int(batch_size))
    starts = range(0, len(canvases), step)
    for start in tqdm(starts, desc="component CNN features", unit="batch", disable=not progress):
        chunk = np.stack([np.asarray(c, dtype=np.uint8) for c in canvases[start : start + step]])
        x = torch.from_numpy(chunk).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        rotated = torch.cat(
            [
                tvf.rotate(x, float(a), interpolation=tvf.InterpolationMode.BILINEAR, fill=[0.0, 0.0, 0.0])
                for a in angles
            ]
        )  # (R * n, 3, c, c), angle-major
        feats = backbone(rotated)[stride].mean(dim=(2, 3))  # (R * n, C)
        feats = feats.view(len(angles), x.shape[0], channels).mean(dim=0)
        out[start : start + x.shape[0]] = feats.cpu().numpy()
    return out


def handcrafted_descriptors(
    image: np.ndarray, mask: np.ndarray, n_hu: int = 4, lab: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Return the rotation-invariant hand-crafted blocks of one component, already in feature units (module
    docstring): ``color`` (6), ``shape`` (``n_hu``), ``area`` (1), ``elongation`` (1), ``solidity`` (2).

    ``lab`` is the image's float32 CIE Lab conversion when the caller already has it (computed otherwise).
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    area = int(np.count_nonzero(mask))
    out: dict[str, np.ndarray] = {}
    hu = np.zeros(7)
    elong = solidity = hole = 0.0
    mean = std = np.zeros(3, dtype=np.float32)
    if area:
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = max(0, ys.min() - 1), min(h, ys.max() + 2), max(0, xs.min() - 1), min(w, xs.max() + 2)
        sub = mask[y0:y1, x0:x1]
        if lab is None:
            lab_sub = cv2.cvtColor(image[y0:y1, x0:x1].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        else:
            lab_sub = lab[y0:y1, x0:x1]
        pixels = lab_sub[sub]
        mean, std = pixels.mean(axis=0), pixels.std(axis=0)
        contour = _largest_contour(sub)
        if contour is not None:
            filled = np.zeros(sub.shape, dtype=np.uint8)
            cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED)
            hu = cv2.HuMoments(cv2.moments(filled, binaryImage=True)).ravel()
            (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
            elong = math.log2((max(rw, rh) + 1.0) / (min(rw, rh) + 1.0))
            filled_area = max(1, int(np.count_nonzero(filled)))
            hull = cv2.convexHull(contour)
            # pixel-count area of the hull polygon: its area through the pixel centres plus half a pixel per edge
            hull_area = float(cv2.contourArea(hull)) + 0.5 * float(cv2.arcLength(hull, True)) + 1.0
            solidity = min(1.0, filled_area / hull_area)
            hole = max(0.0, 1.0 - np.count_nonzero(sub & filled.astype(bool)) / filled_area)
    out["color"] = np.concatenate([mean / COLOR_SCALE, std / COLOR_STD_SCALE]).astype(np.float32)
    nonzero = hu != 0
    log_hu = np.full(7, HU_CLIP)  # h == 0: "infinitely small", the clip value
    log_hu[nonzero] = -np.sign(hu[nonzero]) * np.log10(np.abs(hu[nonzero]))
    out["shape"] = (np.clip(log_hu[:n_hu], -HU_CLIP, HU_CLIP) / HU_SCALE).astype(np.float32)
    out["area"] = np.array([math.log2(max(area / float(h * w), _MIN_LOG_AREA))], dtype=np.float32)
    out["elongation"] = np.array([elong], dtype=np.float32)
    out["solidity"] = np.array([solidity / SOLIDITY_SCALE, hole / SOLIDITY_SCALE], dtype=np.float32)
    return out


def build_feature_backbone(config: ComponentFeatureConfig) -> FeatureExtractor | None:
    """Return the frozen backbone the ``cnn`` block of ``config`` needs (at ``config.stride``), or None when ``cnn``
    is not requested.

    Raises:
        CheckpointError, ParamsError: the weights cannot be loaded (:func:`csad.models.backbone.build_backbone`).
    """
    if not config.uses_cnn:
        return None
    return config.backbone.build([config.stride])


def component_masks(instances: np.ndarray, min_fraction: float = 0.001) -> list[tuple[int, np.ndarray]]:
    """Return [(instance value, bool mask)] of the values covering more than ``min_fraction`` of the image, in
    increasing value order."""
    values, counts = np.unique(instances, return_counts=True)
    total = float(instances.size)
    return [
        (int(v), instances == v) for v, c in zip(values, counts, strict=True) if v != 0 and c / total > min_fraction
    ]


def _record(value: int, mask: np.ndarray) -> dict[str, Any]:
    """Return the bookkeeping record of one component."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "component": value,
        "area": int(xs.size),
        "bbox_x": x0,
        "bbox_y": y0,
        "bbox_w": int(xs.max()) - x0 + 1,
        "bbox_h": int(ys.max()) - y0 + 1,
        "cx": float(xs.mean()),
        "cy": float(ys.mean()),
    }


def extract_features_batch(
    images: Sequence[np.ndarray],
    instance_maps: Sequence[np.ndarray],
    config: ComponentFeatureConfig,
    backbone: FeatureExtractor | None = None,
    progress: bool = False,
) -> list[tuple[list[dict[str, Any]], np.ndarray]]:
    """Return, per image, (records, (n, D) float32 features) of its components; the CNN runs on the crops of all
    images together. D is the same for every image (see :func:`feature_dim`).

    Raises:
        ValueError: ``cnn`` is requested but no backbone is given, or an instance map does not fit its image.
    """
    if config.uses_cnn and backbone is None:
        raise ValueError("component descriptor 'cnn' needs a backbone (build it with csad.models.backbone)")
    per_image: list[tuple[list[dict[str, Any]], list[np.ndarray]]] = []
    canvases: list[np.ndarray] = []
    for image, inst in zip(images, instance_maps, strict=True):
        if inst.shape != image.shape[:2]:
            raise ValueError(f"instance map {inst.shape} does not fit image {image.shape[:2]}")
        records: list[dict[str, Any]] = []
        rows: list[np.ndarray] = []
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        for value, mask in component_masks(inst, config.min_fraction):
            records.append(_record(value, mask))
            blocks = handcrafted_descriptors(image, mask, n_hu=config.n_hu, lab=lab)
            blocks["color"][[0, 3]] *= config.color_lightness_weight
            rows.append(
                np.concatenate(
                    [blocks[d] * config.weight(d) for d in config.descriptors if d != "cnn"] or [np.zeros(0)]
                )
            )
            if config.uses_cnn:
                canvases.append(align_component(image, mask, config.canvas)[0])
        per_image.append((records, rows))
    cnn = np.zeros((0, 0), dtype=np.float32)
    if config.uses_cnn:
        assert backbone is not None
        cnn = cnn_descriptors(
            backbone, config.stride, canvases, config.n_rotations, config.batch_size, config.device, progress
        )
        if config.cnn_normalize:
            cnn = cnn / np.maximum(np.linalg.norm(cnn, axis=1, keepdims=True), 1e-12)
        cnn = cnn * config.weight("cnn")
    dim = feature_dim(config, backbone)
    results: list[tuple[list[dict[str, Any]], np.ndarray]] = []
    offset = 0
    for records, rows in per_image:
        feats = np.zeros((len(records), dim), dtype=np.float32)
        for i, row in enumerate(rows):
            parts: list[np.ndarray] = []
            hand_at = 0
            for d in config.descriptors:
                if d == "cnn":
                    parts.append(cnn[offset + i])
                else:
                    n = _block_dim(d, config)
                    parts.append(row[hand_at : hand_at + n])
                    hand_at += n
            feats[i] = np.concatenate(parts)
        offset += len(records)
        results.append((records, feats))
    return results


def extract_component_features(
    image: np.ndarray,
    instances: np.ndarray,
    config: ComponentFeatureConfig,
    backbone: FeatureExtractor | None = None,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Return (records, (n, D) float32 features) of the components of one image: one record per instance value
    above ``config.min_fraction`` of the image (increasing value) with keys :data:`RECORD_KEYS`."""
    return extract_features_batch([image], [instances], config, backbone)[0]


def _block_dim(name: str, config: ComponentFeatureConfig, backbone: FeatureExtractor | None = None) -> int:
    """Return the length of block ``name``."""
    if name == "cnn":
        if backbone is None:
            raise ValueError("component descriptor 'cnn' needs a backbone")
        return backbone.channels[config.stride]
    return {"color": 6, "shape": config.n_hu, "area": 1, "elongation": 1, "solidity": 2}[name]


def feature_dim(config: ComponentFeatureConfig, backbone: FeatureExtractor | None = None) -> int:
    """Return the length D of a feature vector under ``config``."""
    return sum(_block_dim(d, config, backbone) for d in config.descriptors)
