"""Resizing, in one place: every image, label map and anomaly map the project resizes goes through one of the four
rules below, so training, scoring and the deployed detector see the same pixels.

- :func:`resize_images`: uint8 RGB images to the networks' square input side, bilinear with antialiasing (like
  PIL's), rounded back to uint8; the aspect ratio is not kept (the released code resizes LOCO's 1600 x 800 and
  800 x 1600 images to 256 x 256 the same way).
- :func:`model_input`: the networks' input tensor, ``(N, 3, S, S)`` float32 in [0, 1]: :func:`resize_images` then
  :func:`to_input`. The segmenter, LGST (training, map normalisation) and the detector all take this batch.
- :func:`resize_label`: an integer or boolean map (pseudo-labels, instances, masks, predicted segmentations) to any
  shape, nearest neighbour, dtype kept.
- :func:`resize_map`: a float map (an anomaly map) to any shape, bilinear.

The pseudo-label backends' own working resolution (area / cubic shrink and enlarge, area vote back) is part of
their algorithm and lives in :mod:`csad.pseudo.regions`.

>>> import numpy as np
>>> resize_images(np.zeros((1, 40, 20, 3), np.uint8), 16).shape
(1, 16, 16, 3)
>>> resize_label(np.array([[1, 2], [3, 4]], np.int64), (4, 4))[0].tolist()
[1, 1, 2, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

#: dtypes ``cv2.resize`` takes as they are with nearest neighbour; other integer maps go through int32.
_CV2_LABEL_DTYPES = (np.uint8, np.uint16, np.int16, np.int32)


def _side(value: object, name: str) -> int:
    """Return ``value`` as a side length in pixels, refusing what is not a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a whole number of pixels >= 1, got {value!r}")
    return int(value)


def _hw(shape: int | tuple[int, int] | Sequence[int]) -> tuple[int, int]:
    """Return ``(H, W)`` of a side (square) or a shape ``(H, W)``.

    Raises:
        ValueError: not a side or a pair of sides, or a side that is not a whole number >= 1.
    """
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        side = _side(shape, "size")
        return side, side
    if not isinstance(shape, tuple | list) or len(shape) != 2:
        raise ValueError(f"shape must be a side or (H, W), got {shape!r}")
    return _side(shape[0], "height"), _side(shape[1], "width")


def _map_2d(array: np.ndarray, what: str) -> np.ndarray:
    """Return ``array`` if it is a non-empty 2-D map, else raise ``ValueError``."""
    array = np.asarray(array)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"expected a non-empty 2-D {what}, got shape {array.shape}")
    return array


def resize_images(images: Sequence[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Return the uint8 RGB ``images`` resized to ``(N, size, size, 3)`` uint8, bilinear with antialiasing.

    Images already at ``size`` x ``size`` are copied unchanged. Aspect ratio is not kept.

    Raises:
        ValueError: ``size`` is not a whole number >= 1, or an image is not a non-empty ``(H, W, 3)`` uint8 array
            (its index is named).
    """
    size = _side(size, "size")
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError(
                f"image {i}: expected a non-empty (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
            )
        if image.shape[:2] == (size, size):
            out[i] = image
            continue
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[i] = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def to_input(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return the contiguous ``(N, 3, H, W)`` float32 RGB [0, 1] tensor of uint8 RGB ``images`` ``(N, H, W, 3)``
    (each backbone normalises it as its weights expect).

    Always contiguous in NCHW order: a convolution's float rounding depends on the memory layout of its input, so
    training, scoring and the deployed detector (which hands ONNX Runtime a C-ordered array) get one layout.
    """
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def model_input(
    images: Sequence[np.ndarray] | np.ndarray, size: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Return the networks' input batch, ``(N, 3, size, size)`` float32 in [0, 1], of uint8 RGB ``images`` of any
    sizes (:func:`resize_images` then :func:`to_input`).

    Raises:
        ValueError: an image is not ``(H, W, 3)`` uint8.
    """
    return to_input(resize_images(images, size), device)


def resize_label(label: np.ndarray, shape: int | tuple[int, int] | Sequence[int]) -> np.ndarray:
    """Return the integer or boolean map ``label`` ``(H, W)`` resized to ``shape`` (a side, or ``(H', W')``) with
    nearest neighbour, dtype kept (a copy when the shape already fits).

    Raises:
        ValueError: ``label`` is not a non-empty 2-D integer or boolean map, ``shape`` is not a side or ``(H, W)``
            of whole numbers >= 1, or the map holds values outside int32 (which cv2 cannot resize).
    """
    label = _map_2d(label, "label map")
    if label.dtype != np.bool_ and not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"a label map must hold integers or booleans, got {label.dtype}: round it first")
    h, w = _hw(shape)
    if label.shape == (h, w):
        return label.copy()
    if label.dtype == np.bool_:
        src = label.astype(np.uint8)
    elif label.dtype in _CV2_LABEL_DTYPES:
        src = label
    else:
        info = np.iinfo(np.int32)
        if label.size and (int(label.min()) < info.min or int(label.max()) > info.max):
            raise ValueError(f"label values must fit int32 to be resized, got [{label.min()}, {label.max()}]")
        src = label.astype(np.int32)
    return cv2.resize(src, (w, h), interpolation=cv2.INTER_NEAREST).astype(label.dtype)


def resize_map(amap: np.ndarray, shape: int | tuple[int, int] | Sequence[int]) -> np.ndarray:
    """Return the float map ``amap`` ``(H, W)`` resized to ``shape`` (a side, or ``(H', W')``), bilinear, float32.

    Raises:
        ValueError: ``amap`` is not a non-empty 2-D map, or ``shape`` is not a side or ``(H, W)`` of whole
            numbers >= 1.
    """
    amap = _map_2d(amap, "map")
    h, w = _hw(shape)
    return cv2.resize(amap.astype(np.float32, copy=False), (w, h), interpolation=cv2.INTER_LINEAR)
