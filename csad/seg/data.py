"""Data preparation and augmentation for the segmenter training (docs/method.md 3.3): resizing, fill-holes, the light
geometric/photometric augmentation and the labelled-sample pipeline (LSA -> shift/scale/rotate -> brightness/
contrast). Everything is numpy/OpenCV, driven by one ``numpy.random.Generator``.

>>> label = np.zeros((8, 8), np.int64); label[1:7, 1:7] = 2; label[3:5, 3:5] = 0
>>> int(fill_holes(label, min_pixels=0)[4, 4]), int(fill_holes(label)[4, 4])  # 32 px: not filled by default
(2, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from csad.imaging import resize_images, resize_label
from csad.seg.config import AugmentConfig
from csad.seg.lsa import logical_synthetic_anomaly


def fill_holes(label: np.ndarray, min_pixels: int = 100) -> np.ndarray:
    """Return ``label`` with the holes of every class with more than ``min_pixels`` pixels filled by that class.

    Fixed version of the released fill-holes path (docs/method.md 3.3 and 9.18): class ids are never permuted and small
    classes are never dropped. Only unlabelled (0) pixels change: a 0-pixel enclosed by class c (scipy
    ``binary_fill_holes``) gets c; where the filled regions of several classes overlap, the class with the smaller
    area wins (painted last, like the released descending-area paint order).
    """
    values, counts = np.unique(label[label != 0], return_counts=True)
    order = sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda vc: (-vc[1], vc[0]))
    out = label.copy()
    empty = label == 0
    for value, count in order:
        if count <= min_pixels:
            continue
        filled = ndimage.binary_fill_holes(label == value)
        out[filled & empty] = value
    return out


def shift_scale_rotate(
    image: np.ndarray, label: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return (image, label) under one random shift/scale/rotation about the centre (image bilinear, label
    nearest, constant 0 border), as albumentations' ShiftScaleRotate."""
    h, w = label.shape
    angle = rng.uniform(-config.rotate_limit, config.rotate_limit)
    scale = rng.uniform(1.0 - config.scale_limit, 1.0 + config.scale_limit)
    dx, dy = rng.uniform(-config.shift_limit, config.shift_limit, size=2)
    affine = cv2.getRotationMatrix2D((w / 2.0 - 0.5, h / 2.0 - 0.5), float(angle), float(scale))
    affine[0, 2] += dx * w
    affine[1, 2] += dy * h
    image = cv2.warpAffine(image, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    warped = cv2.warpAffine(
        label.astype(np.float32), affine, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
    )
    return image, warped.astype(label.dtype)


def brightness_contrast(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Return uint8 ``image`` * alpha + beta * 255, clipped (albumentations RandomBrightnessContrast, by max)."""
    alpha = 1.0 + rng.uniform(-config.contrast_limit, config.contrast_limit)
    beta = rng.uniform(-config.brightness_limit, config.brightness_limit) * 255.0
    return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).round().astype(np.uint8)


@dataclass
class SegmentationData:
    """Training arrays at the training resolution: images (N, S, S, 3) uint8, and per labelled image its label,
    instance and background maps (S, S)."""

    images: np.ndarray
    labeled: np.ndarray  # (N_lab,) indices into images
    unlabeled: np.ndarray  # (N_unlab,) indices into images
    labels: np.ndarray  # (N_lab, S, S) int64
    instances: np.ndarray  # (N_lab, S, S) int64
    backgrounds: np.ndarray  # (N_lab, S, S) bool


def prepare_data(
    images: Sequence[np.ndarray],
    labels: Mapping[int, np.ndarray],
    instances: Mapping[int, np.ndarray] | None,
    backgrounds: Mapping[int, np.ndarray] | None,
    image_size: int,
    fill: bool = False,
) -> SegmentationData:
    """Return :class:`SegmentationData`: images resized (bilinear, antialiased), maps resized nearest.

    ``fill`` applies :func:`fill_holes` to each label map at its own (full) resolution before resizing, as released.
    Missing instance maps are empty (no LSA component); missing backgrounds are all False; a background mask is
    True wherever it is nonzero.

    Raises:
        ValueError: no labelled image, a label index outside the images, a map whose size is not its image's, a
            label or instance map that does not hold integers within int32, or a bad image (named by index).
    """
    if not labels:
        raise ValueError("segmenter training needs at least one labelled image")
    bad = [i for i in labels if not 0 <= i < len(images)]
    if bad:
        raise ValueError(f"label indices {bad[:5]} are outside the {len(images)} training images")
    labeled = np.array(sorted(labels), dtype=np.int64)
    unlabeled = np.array([i for i in range(len(images)) if i not in labels], dtype=np.int64)
    size = (image_size, image_size)

    def full_size(maps: Mapping[int, np.ndarray], i: int, what: str) -> np.ndarray:
        arr = np.asarray(maps[i])
        if arr.shape != np.shape(images[i])[:2]:
            raise ValueError(
                f"image {i}: its {what} is {arr.shape[:2]} but the image is {np.shape(images[i])[:2]}; "
                "every map must have its image's size"
            )
        return arr

    lab, inst, bg = [], [], []
    for i in labeled.tolist():
        label = full_size(labels, i, "label map")
        if fill:
            label = fill_holes(label)
        lab.append(resize_label(label, image_size).astype(np.int64))
        if instances is not None and i in instances:
            inst.append(resize_label(full_size(instances, i, "instance map"), image_size).astype(np.int64))
        else:
            inst.append(np.zeros(size, dtype=np.int64))
        if backgrounds is not None and i in backgrounds:
            bg.append(resize_label(full_size(backgrounds, i, "background mask") != 0, image_size))
        else:
            bg.append(np.zeros(size, dtype=bool))
    return SegmentationData(
        images=resize_images(images, image_size),
        labeled=labeled,
        unlabeled=unlabeled,
        labels=np.stack(lab),
        instances=np.stack(inst),
        backgrounds=np.stack(bg),
    )


def augment_labeled(
    data: SegmentationData, k: int, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return the augmented (image (S, S, 3) uint8, label (S, S) int64) of the k-th labelled image.

    Order as released: LSA (if on) -> shift/scale/rotate (p) -> brightness/contrast (p).
    """
    image = data.images[data.labeled[k]]
    label = data.labels[k]
    if config.lsa:
        image, label, _ = logical_synthetic_anomaly(
            image, label, data.instances[k], data.backgrounds[k], config.lsa_config, rng
        )
    if rng.random() < config.shift_scale_rotate_p:
        image, label = shift_scale_rotate(image, label, config, rng)
    if rng.random() < config.brightness_contrast_p:
        image = brightness_contrast(image, config, rng)
    return image, label
