"""Teacher statistics and the losses of one LGST training iteration (docs/method.md 5.4; EfficientAD recipe,
docs/evaluation.md 2).

On a batch ``x`` of train images and its colour-jittered copy ``x'`` (:func:`csad.lgst.data.color_jitter`)::

    D = (T - S_st)^2;  L_hard = mean(D[D >= quantile(D, 0.999)])
    L_st = L_hard + mean(S_st(x_penalty)^2)          (penalty only with ``penalty_dir``)
    L_ae = mean((T' - A(x'))^2);  L_stae = mean((A(x') - S_ae(x'))^2)
    L = w_st L_st + w_ae L_ae + w_stae L_stae

``T`` are the teacher features, channel-normalised with the :func:`teacher_statistics` of the train images.
The quantile is taken by :func:`subsample_quantile`, which lives in :mod:`csad.lgst.maps` (the map normaliser
uses it too; inference imports no training code) and is re-exported here.

>>> d = torch.arange(1000, dtype=torch.float32)
>>> float(hard_loss(d, 0.999, 2**24))   # only the top element is >= quantile 998.001
999.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from csad.lgst.config import QUANTILE_MAX_ELEMENTS, LgstConfig
from csad.lgst.maps import subsample_quantile
from csad.models.lgst import LgstModel

__all__ = [
    "LOSS_NAMES",
    "LgstBatch",
    "hard_loss",
    "lgst_losses",
    "subsample_quantile",
    "teacher_statistics",
]

#: Keys of the :func:`lgst_losses` dict, in the order they are logged.

LOSS_NAMES = ("loss", "st", "hard", "penalty", "ae", "stae")


def teacher_statistics(features: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-channel (mean, std), each (C,) float32, of teacher features (N, C, H, W) (or a list of batches).

    Exact population statistics over all images and pixels, accumulated in float64 (two passes). The released
    code averages batch means and batch mean squared deviations (batch 2); with equal-sized batches this is the
    same number, otherwise it differs only by the weighting of the last short batch.
    """
    chunks = list(features.split(8)) if isinstance(features, torch.Tensor) else list(features)
    count = sum(c.shape[0] * c.shape[2] * c.shape[3] for c in chunks)
    if count == 0:
        raise ValueError("teacher_statistics needs at least one feature map")
    mean = sum(c.double().sum(dim=(0, 2, 3)) for c in chunks) / count
    var = sum((c.double() - mean.view(1, -1, 1, 1)).square().sum(dim=(0, 2, 3)) for c in chunks) / count
    return mean.float(), var.sqrt().float()


def hard_loss(
    d: torch.Tensor, q: float, max_elements: int = QUANTILE_MAX_ELEMENTS, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return ``mean(d[d >= quantile(d, q)])``, the hard-feature loss of the squared differences ``d``."""
    threshold = subsample_quantile(d, q, max_elements, generator)
    return d[d >= threshold].mean()


@dataclass
class LgstBatch:
    """One training batch: images normalised for the backbone (:meth:`LgstModel.normalize`) and their
    channel-normalised teacher targets."""

    x: torch.Tensor  # (B, 3, S, S)
    t: torch.Tensor  # (B, C, F, F)
    x_aug: torch.Tensor  # colour-jittered x
    t_aug: torch.Tensor  # teacher targets of x_aug
    x_penalty: torch.Tensor | None = None  # (P, 3, S, S) penalty images, or None


def lgst_losses(
    model: LgstModel, batch: LgstBatch, config: LgstConfig, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Return the 0-d losses {loss, st, hard, penalty, ae, stae} of ``batch`` (``loss`` is the weighted total).

    The student runs once on the concatenation of x, x' and the penalty images (convolutions are per image, so
    this equals separate calls).
    """
    b, ba = batch.x.shape[0], batch.x_aug.shape[0]
    parts = [batch.x, batch.x_aug] + ([batch.x_penalty] if batch.x_penalty is not None else [])
    s_st, s_ae = model.student(torch.cat(parts))
    d = (batch.t - s_st[:b]).pow(2)
    hard = hard_loss(d, config.hard_quantile, config.quantile_subsample, generator)
    penalty = s_st[b + ba :].pow(2).mean() if batch.x_penalty is not None else hard.new_zeros(())
    a = model.autoencoder(batch.x_aug)
    ae = (batch.t_aug - a).pow(2).mean()
    stae = (a - s_ae[b : b + ba]).pow(2).mean()
    w = config.loss_weights
    st = hard + penalty
    total = w["st"] * st + w["ae"] * ae + w["stae"] * stae
    return {"loss": total, "st": st, "hard": hard, "penalty": penalty, "ae": ae, "stae": stae}
