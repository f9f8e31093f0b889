"""Hungarian-matched mIoU of pseudo-labels against ground-truth component maps."""

from __future__ import annotations

import numpy as np
import pytest

from csad.pseudo.quality import hungarian_miou


def test_permuted_labelling_scores_one() -> None:
    gt = [np.array([[1, 1, 2], [3, 3, 0]]), np.array([[0, 2, 2], [1, 3, 3]])]
    perm = np.array([0, 3, 1, 2])  # gt 1 -> pred 3, gt 2 -> pred 1, gt 3 -> pred 2
    result = hungarian_miou(((perm[g], g) for g in gt), n_pred=3, n_gt=3)  # a generator is fine
    assert result["miou"] == pytest.approx(1.0)
    assert result["matching"] == {1: 3, 2: 1, 3: 2}
    assert result["per_class"] == {1: 1.0, 2: 1.0, 3: 1.0}
    assert result["n_pred"] == 3 and result["n_gt"] == 3


def test_partial_overlap_matches_a_hand_computed_value() -> None:
    gt = np.array([[1, 1, 1, 1, 2, 2, 0, 0]])
    pred = np.array([[1, 1, 0, 2, 2, 2, 2, 0]])
    # IoU(p1, g1) = 2 / 4; IoU(p2, g1) = 1 / 7; IoU(p2, g2) = 2 / 4 (pred 2 also covers a GT-0 pixel); IoU(p1, g2) = 0
    result = hungarian_miou([(pred, gt)], n_pred=2, n_gt=2)
    assert result["matching"] == {1: 1, 2: 2}
    assert result["per_class"] == {1: pytest.approx(0.5), 2: pytest.approx(0.5)}
    assert result["miou"] == pytest.approx(0.5)


def test_matching_maximises_the_total_not_the_greedy_choice() -> None:
    # g1 overlaps p1 most (3 px vs 2), but a greedy g1-p1 (IoU 3/10) leaves g2 with p2 (0): total 0.3. The optimum
    # pairs g1-p2 (2/5) and g2-p1 (5/8): total 1.025.
    gt = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]])
    pred = np.array([[1, 1, 1, 2, 2, 1, 1, 1, 1, 1]])
    result = hungarian_miou([(pred, gt)], n_pred=2, n_gt=2)
    assert result["matching"] == {1: 2, 2: 1}
    assert result["per_class"][1] == pytest.approx(2 / 5) and result["per_class"][2] == pytest.approx(5 / 8)


def test_confusion_is_accumulated_over_all_images() -> None:
    pairs = [(np.array([1, 1]), np.array([1, 1])), (np.array([1, 1, 0, 0]), np.array([1, 1, 1, 1]))]
    result = hungarian_miou(pairs, n_pred=1, n_gt=1)
    assert result["miou"] == pytest.approx(4 / 6)  # not the per-image mean 0.75


def test_unmatched_gt_classes_count_zero() -> None:
    gt = np.array([[1, 1, 2, 2, 3, 3]])
    pred = np.array([[1, 1, 0, 0, 0, 0]])
    result = hungarian_miou([(pred, gt)], n_pred=1, n_gt=3)
    assert result["matching"] == {1: 1, 2: None, 3: None}
    assert result["per_class"] == {1: 1.0, 2: 0.0, 3: 0.0}
    assert result["miou"] == pytest.approx(1 / 3)
    assert hungarian_miou([(np.zeros_like(gt), gt)], n_pred=0, n_gt=3)["miou"] == 0.0


def test_extra_predicted_classes_do_not_change_the_score() -> None:
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 1, 2, 3]])
    result = hungarian_miou([(pred, gt)], n_pred=3, n_gt=1)
    assert result["miou"] == pytest.approx(1.0) and result["matching"] == {1: 1}


def test_no_gt_classes_gives_a_finite_score() -> None:
    zeros = np.zeros((2, 2), dtype=np.uint8)
    assert hungarian_miou([(zeros, zeros)], n_pred=0, n_gt=0)["miou"] == 1.0
    result = hungarian_miou([(zeros + 1, zeros)], n_pred=1, n_gt=0)
    assert result["miou"] == 0.0 and result["per_class"] == {} and result["matching"] == {}
    assert hungarian_miou([], n_pred=2, n_gt=0)["miou"] == 0.0


def test_bad_pairs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="shapes"):
        hungarian_miou([(np.zeros((2, 2), int), np.zeros((2, 3), int))], n_pred=1, n_gt=1)
    with pytest.raises(ValueError, match="pseudo-label values"):
        hungarian_miou([(np.array([2]), np.array([1]))], n_pred=1, n_gt=1)
    with pytest.raises(ValueError, match="GT values"):
        hungarian_miou([(np.array([1]), np.array([-1]))], n_pred=1, n_gt=1)


def test_gt_class_absent_from_every_image_is_left_out() -> None:
    gt = np.array([[0, 1], [1, 0]])
    pred = np.array([[0, 2], [2, 0]])
    result = hungarian_miou([(pred, gt)], n_pred=2, n_gt=3)
    assert result["miou"] == 1.0
    assert result["absent_gt_classes"] == [2, 3]
    assert set(result["per_class"]) == {1}


def test_instance_ceiling_is_one_for_unmixed_instances_and_about_bounds_random_clusterings() -> None:
    from csad.pseudo.quality import instance_ceiling_pairs

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, size=(2, 16, 16))
    perfect = [(gt[i] * 10 + (np.arange(16)[None, :] >= 8), gt[i]) for i in range(2)]  # split but never mixed
    perfect = [(np.where(g > 0, inst, 0), g) for inst, g in perfect]
    assert hungarian_miou(instance_ceiling_pairs(perfect, 2), 2, 2)["miou"] == 1.0
    instances = [rng.integers(0, 6, size=(16, 16)) for _ in range(2)]
    ceiling = hungarian_miou(instance_ceiling_pairs(zip(instances, gt, strict=True), 2), 2, 2)["miou"]
    for _ in range(20):  # any class assignment of the same instances scores at most about the ceiling
        lut = rng.integers(0, 3, size=6)
        lut[0] = 0
        got = hungarian_miou([(lut[inst], g) for inst, g in zip(instances, gt, strict=True)], 2, 2)["miou"]
        assert got <= ceiling + 0.05
    with pytest.raises(ValueError, match="shapes"):
        list(instance_ceiling_pairs([(np.zeros((2, 2), int), np.zeros((2, 3), int))], 1))
    with pytest.raises(ValueError, match="outside"):
        list(instance_ceiling_pairs([(np.zeros((2, 2), int), np.full((2, 2), 5))], 1))
