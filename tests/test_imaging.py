"""The one set of resize rules (csad/imaging.py): dtypes, shapes, errors, and the same network input everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csad.detector.predict import preprocess
from csad.imaging import model_input, resize_images, resize_label, resize_map, to_input


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 80), (32, 32), (64, 20))]


def test_resize_images_is_uint8_square_and_keeps_images_already_at_size() -> None:
    images = _images()
    out = resize_images(images, 32)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out[1], images[1])
    flat = np.full((50, 70, 3), 123, np.uint8)
    assert (resize_images([flat], 16) == 123).all()  # antialiased bilinear keeps a flat image flat


def test_resize_images_names_the_bad_image() -> None:
    with pytest.raises(ValueError, match=r"image 1: expected a non-empty \(H, W, 3\) uint8"):
        resize_images([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)], 4)


def test_model_input_is_the_detectors_input_and_in_unit_range() -> None:
    images = _images()
    x = model_input(images, 32)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert np.array_equal(x.numpy(), preprocess(images, 32))  # training and deployment see the same pixels
    assert torch.equal(x, to_input(resize_images(images, 32)))
    assert model_input([], 8).shape == (0, 3, 8, 8)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.uint16, np.int32, np.int64])
def test_resize_label_keeps_dtype_and_values(dtype: type) -> None:
    label = (np.arange(16).reshape(4, 4) % 2).astype(dtype)
    big = resize_label(label, (8, 12))
    assert big.shape == (8, 12) and big.dtype == label.dtype
    assert set(np.unique(big).tolist()) <= set(np.unique(label).tolist())
    assert resize_label(label, 4) is not label and np.array_equal(resize_label(label, 4), label)
    assert resize_label(label, 2).shape == (2, 2)


def test_resize_label_refuses_what_it_cannot_resize() -> None:
    with pytest.raises(ValueError, match="2-D"):
        resize_label(np.zeros((2, 2, 3), np.int64), 4)
    with pytest.raises(ValueError, match="2-D"):
        resize_label(np.zeros((0, 5), np.uint8), 4)
    with pytest.raises(ValueError, match="int32"):
        resize_label(np.array([[0, 2**40]], np.int64), 4)
    with pytest.raises(ValueError, match="integers or booleans"):
        resize_label(np.array([[1.7, 0.2]]), 4)
    for bad in (0, -2, 4.0, (0, 4), (4.7, 4), (1, 2, 3)):
        with pytest.raises(ValueError, match=r"size|height|width|shape"):
            resize_label(np.zeros((2, 2), np.uint8), bad)  # type: ignore[arg-type]


def test_sizes_and_images_that_cannot_be_resized_are_named() -> None:
    with pytest.raises(ValueError, match="size must be a whole number of pixels >= 1, got 0"):
        resize_images([np.zeros((4, 4, 3), np.uint8)], 0)
    with pytest.raises(ValueError, match="image 0: expected a non-empty"):
        resize_images([np.zeros((0, 5, 3), np.uint8)], 8)
    with pytest.raises(ValueError, match="2-D"):
        resize_map(np.arange(4.0), (4, 4))
    with pytest.raises(ValueError, match="2-D"):
        resize_map(np.zeros((2, 2, 5)), (4, 4))


def test_resize_map_is_bilinear_float32() -> None:
    amap = np.array([[0.0, 1.0]], np.float64)
    out = resize_map(amap, (1, 4))
    assert out.dtype == np.float32 and out.shape == (1, 4)
    assert np.all(np.diff(out[0]) >= 0) and out[0, 0] == 0.0 and out[0, -1] == 1.0
