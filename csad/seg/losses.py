"""Segmentation losses of CSAD (docs/method.md 3.5), all on raw logits (B, C, H, W) and integer targets (B, H, W).

P = softmax(logits) over the class axis and Y = one-hot(target). Unlike the released code, the cross-entropy is the
standard one (a single log-softmax of the logits, no double softmax), and the focal loss is computed on these
proper probabilities.

>>> logits = torch.zeros(1, 2, 1, 2)
>>> target = torch.tensor([[[0, 1]]])
>>> round(cross_entropy(logits, target).item(), 4)  # log 2
0.6931
>>> round(entropy_loss(logits).item(), 4)  # -0.5 log(0.5 + 1e-5), averaged over B, C, H, W
0.3466
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Smoothing constant of the released focal, dice and entropy losses.
EPS = 1e-5


def one_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Return the float one-hot (B, C, H, W) of the integer map ``target`` (B, H, W)."""
    return F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).float()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the standard pixel-mean cross-entropy ``torch.nn.functional.cross_entropy(logits, target)``."""
    return F.cross_entropy(logits, target.long())


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = EPS) -> torch.Tensor:
    """Return the pixel-mean focal loss -(1 - pt)^gamma log pt of the released ``FocalLoss`` (alpha = 1).

    Y is clamped to [smooth / (C - 1), 1 - smooth] and pt = sum_c Y_c P_c + smooth, with P the softmax of the
    logits (the released code's definition, applied to proper probabilities).
    """
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    y = one_hot(target, num_classes).clamp(smooth / max(num_classes - 1, 1), 1.0 - smooth)
    pt = (y * probs).sum(dim=1) + smooth
    return (-((1.0 - pt) ** gamma) * pt.log()).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = EPS) -> torch.Tensor:
    """Return the class-balanced dice loss of the released ``ClassBalancedDiceLoss``.

    dice_bc = (2 sum P Y + smooth) / (sum P + sum Y + 2 smooth) per sample b and class c (sums over pixels);
    w_c = 1 / (sum over batch and pixels of Y_c + smooth), normalised to sum 1 and detached (classes absent from the
    batch get the largest weights); the loss is the mean over (b, c) of w_c (1 - dice_bc).
    """
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    y = one_hot(target, num_classes)
    inter = (probs * y).sum(dim=(2, 3))
    dice = (2.0 * inter + smooth) / (probs.sum(dim=(2, 3)) + y.sum(dim=(2, 3)) + 2.0 * smooth)
    weights = 1.0 / (y.sum(dim=(0, 2, 3)) + smooth)
    weights = (weights / weights.sum()).detach()
    return (weights[None, :] * (1.0 - dice)).mean()


def hist_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 0) -> torch.Tensor:
    """Return the histogram loss sum_{b, c != ignore_index} |mean_pix Y_bc - mean_pix P_bc| / B (released HistLoss).

    ``target`` (B, H', W') is a label map of another (labelled) image, so its size may differ from the logits'.
    The released code sums over classes; the paper's Eq. 2 averages them (1 / N_cls), i.e. the paper's value is
    this one divided by the number of non-background classes.
    """
    num_classes = logits.shape[1]
    pred_hist = logits.softmax(dim=1).mean(dim=(2, 3))
    true_hist = one_hot(target, num_classes).mean(dim=(2, 3))
    diff = (true_hist - pred_hist).abs()
    keep = torch.ones(num_classes, dtype=torch.bool, device=logits.device)
    if 0 <= ignore_index < num_classes:
        keep[ignore_index] = False
    return diff[:, keep].sum() / logits.shape[0]


def entropy_loss(logits: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Return the mean over (B, C, H, W) of -P log(P + eps) (the mean includes the class axis, as released)."""
    probs = logits.softmax(dim=1)
    return (-probs * (probs + eps).log()).mean()
