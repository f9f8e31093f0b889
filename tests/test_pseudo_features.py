"""Rotation-invariant component descriptors (docs/method.md 2.4)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from csad.models.backbone import build_backbone
from csad.pseudo.features import (
    RECORD_KEYS,
    align_component,
    build_feature_backbone,
    cnn_descriptors,
    extract_component_features,
    extract_features_batch,
    feature_dim,
    handcrafted_descriptors,
    rotation_angles,
)
from csad.pseudo.features_config import ComponentFeatureConfig

SIZE = 160


def scene(
    shape: str = "rect", angle: float = 0.0, color: tuple[int, int, int] = (200, 60, 40), centre=(80, 80)
) -> tuple[np.ndarray, np.ndarray]:
    """Return (RGB image, mask) of one filled shape on a grey background."""
    image = np.full((SIZE, SIZE, 3), 90, dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    if shape == "rect":
        pts = cv2.boxPoints(((centre[0], centre[1]), (60, 16), angle)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif shape == "disk":
        cv2.circle(mask, centre, 22, 1, thickness=-1)
    elif shape == "ring":
        cv2.circle(mask, centre, 24, 1, thickness=-1)
        cv2.circle(mask, centre, 12, 0, thickness=-1)
    image[mask > 0] = color
    return image, mask.astype(bool)


@pytest.fixture(scope="module")
def resnet18() -> object:
    logging.getLogger("csad.models.backbone").setLevel(logging.ERROR)
    return build_backbone("resnet18", "none", [16], seed=0)


def hand_vector(image: np.ndarray, mask: np.ndarray, blocks=("color", "area", "elongation", "solidity")) -> np.ndarray:
    d = handcrafted_descriptors(image, mask)
    return np.concatenate([d[b] for b in blocks])


@pytest.mark.parametrize("angle", [0.0, 17.0, 45.0, 90.0, 133.0])
def test_align_component_scales_the_rotated_rectangle_diagonal_to_the_canvas(angle: float) -> None:
    image, mask = scene("rect", angle)
    canvas_img, canvas_mask = align_component(image, mask, canvas=65)
    assert canvas_img.shape == (65, 65, 3) and canvas_img.dtype == np.uint8
    assert canvas_mask.shape == (65, 65) and canvas_mask.dtype == bool
    ys, xs = np.nonzero(canvas_mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float32)
    (_, _), (w, h), _ = cv2.minAreaRect(pts)
    diag = float(np.hypot(w + 1, h + 1))
    assert 55 <= diag <= 66  # the component's min-area-rectangle diagonal is ~ the canvas side
    assert not canvas_img[~canvas_mask].any() or canvas_img[~canvas_mask].max() < 200  # outside is (near) black


def test_align_component_gives_the_same_size_for_any_rotation() -> None:
    areas = [align_component(*scene("rect", a))[1].sum() for a in (0, 20, 45, 70, 90, 160)]
    assert max(areas) / min(areas) < 1.15


def test_align_component_of_an_empty_mask_is_black() -> None:
    img, mask = align_component(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), bool), canvas=33)
    assert img.shape == (33, 33, 3) and not img.any() and not mask.any()


def test_rotation_angles_keep_the_released_duplicate_of_0_and_360() -> None:
    angles = rotation_angles(60)
    assert angles.shape == (60,) and angles[0] == 0.0 and angles[-1] == 360.0
    assert np.allclose(np.diff(angles), 360 / 59)
    with pytest.raises(ValueError):
        rotation_angles(0)


def test_handcrafted_blocks_have_documented_lengths() -> None:
    blocks = handcrafted_descriptors(*scene("disk"), n_hu=5)
    assert {k: v.shape for k, v in blocks.items()} == {
        "color": (6,),
        "shape": (5,),
        "area": (1,),
        "elongation": (1,),
        "solidity": (2,),
    }
    assert all(np.all(np.isfinite(v)) for v in blocks.values())


def test_handcrafted_descriptors_are_rotation_invariant_and_discriminative() -> None:
    ref = hand_vector(*scene("rect", 10.0))
    rotated = [hand_vector(*scene("rect", a, centre=(70, 90))) for a in (35.0, 80.0, 125.0)]
    other_shape = hand_vector(*scene("disk"))
    other_colour = hand_vector(*scene("rect", 10.0, color=(40, 90, 200)))
    same = max(np.linalg.norm(ref - r) for r in rotated)
    assert same < 0.5
    assert np.linalg.norm(ref - other_shape) > 4 * same
    assert np.linalg.norm(ref - other_colour) > 4 * same


def test_holes_show_in_the_solidity_block() -> None:
    disk = handcrafted_descriptors(*scene("disk"))["solidity"]
    ring = handcrafted_descriptors(*scene("ring"))["solidity"]
    assert disk[1] == pytest.approx(0.0, abs=1e-6) and ring[1] > 1.0  # hole fraction ~0.25 / 0.2


def test_cnn_descriptors_shape_determinism_and_rotation_invariance(resnet18) -> None:
    canvases = [align_component(*scene("rect", a))[0] for a in (0.0, 45.0)] + [align_component(*scene("ring"))[0]]
    a = cnn_descriptors(resnet18, 16, canvases, n_rotations=12, batch_size=2)
    b = cnn_descriptors(resnet18, 16, canvases, n_rotations=12, batch_size=3)
    assert a.shape == (3, 256) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-5)  # batching does not change the result
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    assert np.linalg.norm(unit[0] - unit[1]) < np.linalg.norm(unit[0] - unit[2])
    assert cnn_descriptors(resnet18, 16, [], n_rotations=4).shape == (0, 256)
    with pytest.raises(ValueError, match="32"):
        cnn_descriptors(resnet18, 32, canvases, n_rotations=2)


def two_objects() -> tuple[np.ndarray, np.ndarray]:
    """Return (image, uint16 instances): value 3 a red bar, value 1 a blue disk, value 2 a 5-pixel speck."""
    image, bar = scene("rect", 30.0, centre=(50, 50))
    disk_img, disk = scene("disk", color=(40, 90, 200), centre=(115, 110))
    image[disk] = disk_img[disk]
    instances = np.zeros((SIZE, SIZE), np.uint16)
    instances[bar] = 3
    instances[disk] = 1
    instances[0, :5] = 2  # 5 px < 0.1 % of the image: not a component
    return image, instances


def test_extract_component_features_records_and_shapes() -> None:
    image, instances = two_objects()
    config = ComponentFeatureConfig()
    records, feats = extract_component_features(image, instances, config)
    assert [r["component"] for r in records] == [1, 3]  # increasing value, speck dropped
    assert all(set(r) == set(RECORD_KEYS) for r in records)
    assert records[0]["area"] == int((instances == 1).sum())
    assert feats.shape == (2, feature_dim(config)) == (2, 6 + 1 + 1 + 2)
    assert feats.dtype == np.float32
    again = extract_component_features(image, instances, config)[1]
    assert np.array_equal(feats, again)


def test_block_weights_scale_the_blocks() -> None:
    image, instances = two_objects()
    one = extract_component_features(image, instances, ComponentFeatureConfig(descriptors=["area"]))[1]
    two = extract_component_features(
        image, instances, ComponentFeatureConfig(descriptors=["area"], block_weights={"area": 2.0})
    )[1]
    assert np.allclose(two, 2 * one)


def test_cnn_block_is_unit_length_times_its_weight_and_batches_across_images() -> None:
    logging.getLogger("csad.models.backbone").setLevel(logging.ERROR)
    image, instances = two_objects()
    config = ComponentFeatureConfig(
        descriptors=["cnn", "color"],
        backbone={"name": "resnet18", "weights": "none"},
        stride=8,
        n_rotations=4,
        batch_size=3,
        block_weights={"cnn": 2.0},
    )
    backbone = build_feature_backbone(config)
    assert backbone is not None
    results = extract_features_batch([image, image[::-1].copy()], [instances, instances[::-1].copy()], config, backbone)
    assert [f.shape for _, f in results] == [(2, 128 + 6), (2, 128 + 6)]
    assert np.allclose(np.linalg.norm(results[0][1][:, :128], axis=1), 2.0, atol=1e-4)
    single = extract_component_features(image, instances, config, backbone)[1]
    assert np.allclose(single, results[0][1], atol=1e-5)
    with pytest.raises(ValueError, match="backbone"):
        extract_component_features(image, instances, config, None)
    assert build_feature_backbone(ComponentFeatureConfig()) is None


def test_cnn_normalize_false_keeps_the_raw_mean_features_times_the_weight() -> None:
    """The paper profile (released code): the cnn block is the raw mean feature vector, not a unit vector, so the
    released MeanShift bandwidths (3-4 after the 512-d projection) see the distances they were chosen for."""
    import dataclasses

    logging.getLogger("csad.models.backbone").setLevel(logging.ERROR)
    image, instances = two_objects()
    unit = ComponentFeatureConfig(
        descriptors=["cnn"],
        backbone={"name": "resnet18", "weights": "none"},
        stride=8,
        n_rotations=4,
        block_weights={"cnn": 1.0},
    )
    backbone = build_feature_backbone(unit)
    raw_cfg = dataclasses.replace(unit, cnn_normalize=False, block_weights={"cnn": 3.0})
    normed = extract_component_features(image, instances, unit, backbone)[1]
    raw = extract_component_features(image, instances, raw_cfg, backbone)[1]
    norms = np.linalg.norm(raw, axis=1, keepdims=True) / 3.0
    assert np.allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(norms, 1.0, atol=1e-2)  # raw features of a ReLU network are not unit vectors
    assert np.allclose(raw / 3.0 / norms, normed, atol=1e-4)


def test_params_profiles_pick_the_cnn_scale_their_bandwidths_assume() -> None:
    import yaml

    root = Path(__file__).resolve().parents[1]
    default = yaml.safe_load((root / "params.yaml").read_text())["features"]
    paper = yaml.safe_load((root / "params" / "paper.yaml").read_text())
    assert default["cnn_normalize"] is True
    assert paper["features"]["cnn_normalize"] is False and paper["features"]["descriptors"] == ["cnn"]
    assert isinstance(paper["cluster"]["bandwidth"], float) and paper["cluster"]["proj_dim"] == 512


def test_unknown_descriptor_is_rejected() -> None:
    with pytest.raises(ValueError, match="texture"):
        ComponentFeatureConfig(descriptors=["texture"])


def test_no_components_gives_an_empty_matrix() -> None:
    records, feats = extract_component_features(
        np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint16), ComponentFeatureConfig()
    )
    assert records == [] and feats.shape == (0, 10)


def test_cnn_descriptors_run_without_gradients(resnet18) -> None:
    canvas = align_component(*scene("disk"))[0]
    with torch.enable_grad():
        out = cnn_descriptors(resnet18, 16, [canvas], n_rotations=2)
    assert out.shape == (1, 256)
