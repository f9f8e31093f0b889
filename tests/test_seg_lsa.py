"""Logical Synthetic Anomalies (docs/method.md 3.4) with the released bugs fixed (docs/method.md 9.19 and 9.24)."""

from __future__ import annotations

import numpy as np
import pytest

from csad.seg.config import LSAConfig
from csad.seg.lsa import candidate_components, logical_synthetic_anomaly

SIZE = 64
COLORS = {1: (250, 0, 0), 2: (0, 250, 0), 3: (0, 0, 250)}


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (image, label, instances, background): three solid squares of classes 1-3 on black, no background."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    label = np.zeros((SIZE, SIZE), np.int64)
    instances = np.zeros((SIZE, SIZE), np.int64)
    boxes = {1: (6, 14, 6, 14), 2: (40, 50, 8, 18), 3: (10, 18, 42, 52)}
    for k, (y0, y1, x0, x1) in boxes.items():
        image[y0:y1, x0:x1] = COLORS[k]
        label[y0:y1, x0:x1] = k
        instances[y0:y1, x0:x1] = 10 + k  # instance values differ from class ids
    return image, label, instances, np.zeros((SIZE, SIZE), bool)


def run(seed: int, config: LSAConfig | None = None, **overrides: np.ndarray) -> tuple:
    """Return LSA's (image, label, info) on the scene with ``overrides`` of its arrays."""
    image, label, instances, background = scene()
    args = {"image": image, "label": label, "instances": instances, "background": background}
    args.update(overrides)
    return logical_synthetic_anomaly(**args, config=config or LSAConfig(), rng=np.random.default_rng(seed))


def source_centre(instances: np.ndarray, value: int) -> np.ndarray:
    """Return the normalised (x, y) bbox centre (x + w // 2, y + h // 2) of an instance."""
    ys, xs = np.nonzero(instances == value)
    w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    return np.array([(xs.min() + w // 2) / SIZE, (ys.min() + h // 2) / SIZE])


def test_pasted_pixels_carry_the_source_class() -> None:
    _, _, instances, _ = scene()
    config = LSAConfig(min_aug_num=1, max_aug_num=1)
    for seed in range(10):
        _, out_label, info = run(seed, config)
        assert info["pastes"] == 1
        cls = info["sources"][0] - 10
        assert set(np.unique(out_label[info["pasted_mask"]]).tolist()) == {cls}
        area = int((instances == info["sources"][0]).sum())
        assert abs(int(info["pasted_mask"].sum()) - area) <= 0.15 * area  # whole component, not clipped


def test_label_changes_only_where_the_image_changed() -> None:
    image, label, _, _ = scene()
    for seed in range(10):
        out_image, out_label, info = run(seed)
        assert info["pastes"] >= 1
        label_changed = out_label != label
        image_changed = np.any(out_image != image, axis=2)
        assert label_changed.any()
        assert not (label_changed & ~info["pasted_mask"]).any()
        assert not (image_changed & ~info["pasted_mask"]).any()
        assert not (label_changed & ~image_changed).any()
        assert set(np.unique(out_label).tolist()) <= {0, 1, 2, 3}  # nearest warps: no invented class ids


def test_min_distance_and_boundary_respected() -> None:
    _, _, instances, _ = scene()
    config = LSAConfig(boundary=0.25, min_distance=0.3)
    pastes = 0
    for seed in range(15):
        _, _, info = run(seed, config)
        for value, target in zip(info["sources"], info["targets"], strict=True):
            target = np.asarray(target)
            assert np.all(target >= 0.25) and np.all(target <= 0.75)
            assert np.linalg.norm(target - source_centre(instances, value)) >= 0.3
            pastes += 1
    assert pastes >= 15


def test_paste_lands_at_the_target_centre() -> None:
    config = LSAConfig(min_aug_num=1, max_aug_num=1)
    for seed in range(5):
        _, _, info = run(seed, config)
        ys, xs = np.nonzero(info["pasted_mask"])
        centre = np.array([xs.mean(), ys.mean()]) / SIZE
        assert np.linalg.norm(centre - np.asarray(info["targets"][0])) < 2.5 / SIZE


def test_no_paste_when_no_valid_position() -> None:
    image, label, _, _ = scene()
    everywhere = np.ones((SIZE, SIZE), bool)
    out_image, out_label, info = run(0, LSAConfig(max_attempts=50), background=everywhere)
    assert info["pastes"] == 0 and info["skipped"] == 3  # every component tried, none pasted
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_label, label)
    # unreachable minimum distance: no candidate centre at all
    _, _, info = run(0, LSAConfig(min_distance=2.0))
    assert info["pastes"] == 0


def test_avoids_the_background() -> None:
    background = np.zeros((SIZE, SIZE), bool)
    background[:, : SIZE // 2] = True  # left half is background
    pasted = 0
    for seed in range(8):
        _, _, info = run(seed, LSAConfig(min_aug_num=1, max_aug_num=1), background=background)
        if info["pastes"]:
            overlap = (info["pasted_mask"] & background).sum() / info["pasted_mask"].sum()
            assert overlap < 0.5
            pasted += 1
    assert pasted


def test_big_component_pasted_inside_the_image_or_not_at_all() -> None:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    label = np.zeros((SIZE, SIZE), np.int64)
    label[2:40, 2:40] = 1
    image[label == 1] = 200
    pasted = 0
    for seed in range(5):
        _, _, info = run(seed, LSAConfig(max_attempts=100), image=image, label=label, instances=label.copy())
        if info["pastes"]:
            assert abs(int(info["pasted_mask"].sum()) - 38 * 38) < 0.1 * 38 * 38
            pasted += 1
    assert pasted


def test_empty_pool_no_crash() -> None:
    _, label, _, _ = scene()
    _, out_label, info = run(0, instances=np.zeros((SIZE, SIZE), np.int64))
    assert info["pastes"] == 0
    np.testing.assert_array_equal(out_label, label)
    # more guaranteed pastes than components: the pool empties cleanly
    _, _, info = run(0, LSAConfig(min_aug_num=5, max_aug_num=7))
    assert info["pastes"] == 3


def test_candidate_filter() -> None:
    _, label, instances, _ = scene()
    instances[30:44, 30:44] = 20  # 196 px, entirely unlabelled -> not a candidate
    instances[60, 60] = 21  # 1 px < 0.1% of the image -> not a candidate
    values = [v for v, _ in candidate_components(label, instances, LSAConfig())]
    assert values == [11, 12, 13]


def test_deterministic_for_the_generator() -> None:
    a_img, a_lab, a_info = run(7)
    b_img, b_lab, b_info = run(7)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert a_info["targets"] == b_info["targets"] and a_info["angles"] == b_info["angles"]
    outs = {run(seed)[1].tobytes() for seed in range(5)}
    assert len(outs) > 1


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        run(0, background=np.zeros((SIZE, SIZE + 1), bool))
