"""Segmentation losses (docs/method.md 3.5) against hand-computed values on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from csad.seg import losses

EPS = 1e-5


def test_cross_entropy_is_torchs_on_logits() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, generator=gen)
    target = torch.randint(0, 4, (2, 3, 5), generator=gen)
    assert torch.allclose(losses.cross_entropy(logits, target), F.cross_entropy(logits, target))
    # hand value: one pixel, logits (2, 0), class 0 -> log(1 + e^-2); no second softmax
    one = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)
    assert losses.cross_entropy(one, torch.zeros(1, 1, 1, dtype=torch.long)).item() == pytest.approx(
        math.log(1 + math.exp(-2.0)), rel=1e-6
    )


def test_cross_entropy_accepts_uint8_targets() -> None:
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.ones(1, 2, 2, dtype=torch.uint8)
    assert losses.cross_entropy(logits, target).item() == pytest.approx(math.log(3), rel=1e-6)


def test_focal_hand_value_uniform_prediction() -> None:
    logits = torch.zeros(1, 2, 1, 1)  # P = (0.5, 0.5)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    # Y clamped to (1 - eps, eps): pt = 0.5 (1 - eps) + 0.5 eps + eps = 0.5 + eps
    pt = 0.5 + EPS
    expected = -((1 - pt) ** 2) * math.log(pt)
    assert losses.focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_focal_three_classes_matches_formula() -> None:
    logits = torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    target = torch.full((1, 1, 1), 1, dtype=torch.long)
    p = torch.softmax(torch.tensor([1.0, 2.0, 0.5]), 0).tolist()
    y = [EPS / 2, 1 - EPS, EPS / 2]
    pt = sum(a * b for a, b in zip(y, p, strict=True)) + EPS
    expected = -((1 - pt) ** 2) * math.log(pt)
    assert losses.focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_focal_edge_cases() -> None:
    confident = torch.tensor([-30.0, 30.0]).view(1, 2, 1, 1)
    one = torch.ones(1, 1, 1, dtype=torch.long)
    assert 0.0 <= losses.focal_loss(confident, one).item() < 1e-8  # right and confident: ~0
    assert losses.focal_loss(-confident, one).item() > 4.0  # wrong and confident: ~ -log(2 eps) ~ 10.8
    single = losses.focal_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    assert torch.isfinite(single)  # one class: no division by C - 1 = 0


def test_dice_hand_value() -> None:
    logits = torch.zeros(1, 2, 1, 2)  # P = 0.5 everywhere
    target = torch.tensor([[[0, 1]]])
    # per class: sum PY = 0.5, sum P = 1, sum Y = 1 -> dice = (1 + eps) / (2 + 2 eps) = 0.5; w = (0.5, 0.5)
    assert losses.dice_loss(logits, target).item() == pytest.approx(0.25, rel=1e-5)


def test_dice_perfect_prediction_is_zero_and_absent_class_dominates() -> None:
    target = torch.tensor([[[0, 1], [1, 1]]])
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).float() * 60 - 30
    assert losses.dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-5)
    # class 2 absent from the batch: its weight ~ 1, and dice_2 = eps / (sum P_2 + 2 eps)
    logits = torch.zeros(1, 3, 2, 2)
    value = losses.dice_loss(logits, target).item()
    w = torch.tensor([1 / (1 + EPS), 1 / (3 + EPS), 1 / EPS])
    w = w / w.sum()
    p_sum = 4 / 3
    dice = torch.tensor(
        [(2 * (1 / 3) + EPS) / (p_sum + 1 + 2 * EPS), (2 * 1.0 + EPS) / (p_sum + 3 + 2 * EPS), EPS / (p_sum + 2 * EPS)]
    )
    assert value == pytest.approx(float((w * (1 - dice)).mean()), rel=1e-5)
    assert value > 0.3  # dominated by the absent class


def test_hist_loss_hand_value_and_background_ignored() -> None:
    logits = torch.zeros(2, 3, 2, 2)  # predicted histogram (1/3, 1/3, 1/3)
    rand_gt = torch.stack([torch.ones(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)])
    # sample 0: |1 - 1/3| + |0 - 1/3| = 1; sample 1 (all background): 1/3 + 1/3; classes summed, / B
    assert losses.hist_loss(logits, rand_gt).item() == pytest.approx((1 + 2 / 3) / 2, rel=1e-6)
    # the target may have another size; class 0 never counts
    small = torch.zeros(2, 1, 1, dtype=torch.long)
    assert losses.hist_loss(logits, small).item() == pytest.approx(2 / 3, rel=1e-6)


def test_entropy_hand_values() -> None:
    uniform = torch.zeros(1, 4, 2, 2)
    expected = -0.25 * math.log(0.25 + EPS)  # mean over the class axis too
    assert losses.entropy_loss(uniform).item() == pytest.approx(expected, rel=1e-6)
    confident = torch.tensor([40.0, -40.0]).view(1, 2, 1, 1)
    assert abs(losses.entropy_loss(confident).item()) < 1e-5


def test_all_losses_backpropagate() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=gen, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4), generator=gen)
    total = (
        losses.cross_entropy(logits, target)
        + losses.focal_loss(logits, target)
        + losses.dice_loss(logits, target)
        + losses.hist_loss(logits, target)
        + losses.entropy_loss(logits)
    )
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
