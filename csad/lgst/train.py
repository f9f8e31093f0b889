"""The LGST training loop (docs/method.md 5.4; EfficientAD recipe, docs/evaluation.md 2).

:func:`train_lgst` runs a FIXED schedule from :class:`~csad.lgst.config.LgstConfig` (no selection on the test set,
docs/method.md 9.15), seeded: the same seed gives identical weights on CPU. Each iteration takes a batch ``x`` of train
images and its colour-jittered copy ``x'`` and minimises ``L = w_st L_st + w_ae L_ae + w_stae L_stae``
(:func:`~csad.lgst.losses.lgst_losses`) with Adam over student + AE (:meth:`LgstModel.trainable_parameters`) and a
StepLR schedule.

``T`` are the channel-normalised teacher features. Those of the un-augmented train images are computed once per
training and cached (they never change); ``T'`` is computed every iteration.

The settings, data, losses, inference and checkpoints live in :mod:`csad.lgst.config`, :mod:`csad.lgst.data`,
:mod:`csad.lgst.losses`, :mod:`csad.lgst.maps` and :mod:`csad.lgst.checkpoint`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from csad.errors import CsadError
from csad.imaging import model_input
from csad.lgst.config import LgstConfig
from csad.lgst.data import PenaltyImages, _batch_indices, color_jitter
from csad.lgst.losses import LOSS_NAMES, LgstBatch, lgst_losses, teacher_statistics
from csad.models.lgst import LgstModel
from csad.models.spec import BackboneSpec
from csad.runtime import resolve_device

log = logging.getLogger(__name__)


@torch.no_grad()
def _teacher_targets(model: LgstModel, x01: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Return the raw teacher features of all of ``x01`` (on the model's device), computed batch by batch."""
    out: torch.Tensor | None = None
    for start in range(0, len(x01), batch_size):
        feats = model.teacher_raw(model.normalize(x01[start : start + batch_size].to(model.device)))
        if out is None:  # preallocated: no second copy of a cache that can reach GBs at paper sizes
            out = feats.new_empty((len(x01), *feats.shape[1:]))
        out[start : start + len(feats)] = feats
    assert out is not None
    return out


def train_lgst(
    images: Iterable[np.ndarray],
    config: LgstConfig,
    backbone: BackboneSpec,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> LgstModel:
    """Return the LGST model trained on ``images`` (uint8 RGB train/good images) with ``config``, in eval mode.

    Args:
        images: the train images, any sizes (resized to ``config.image_size``).
        config: the settings; ``seed`` fixes every random choice (init, projection, batches, augmentation,
            penalty draws, quantile subsampling, dropout). The global RNG state is restored afterwards.
        backbone: the frozen teacher backbone.
        callback: called after every iteration with (iterations done, {loss names: float, "lr": float}).
        progress: show a tqdm bar.

    Raises:
        PenaltyDataError: ``penalty_dir`` is set but missing or empty.
        CsadError: no train image.
        CheckpointError: the backbone weights are missing or unusable.
    """
    device = resolve_device(config.device)
    penalty = PenaltyImages(config.penalty_dir, config.image_size) if config.penalty_dir is not None else None
    x01 = model_input(images, config.image_size)
    if len(x01) == 0:
        raise CsadError("LGST training needs at least one train image; the train/good folder is empty")
    rng_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        model = config.build_model(backbone).to(device)
        targets = _teacher_targets(model, x01, config.feature_batch_size)
        mean, std = teacher_statistics(targets)
        model.set_teacher_statistics(mean, std)  # a constant channel is only shifted
        model.normalize_teacher_(targets)
        x01 = x01.to(device)
        log.info(
            "LGST: %d train images, %d iterations, batch %d, device %s, teacher cache %.0f MiB, penalty %s",
            len(x01),
            config.iterations,
            config.batch_size,
            device,
            targets.numel() * targets.element_size() / 2**20,
            f"{len(penalty)} images" if penalty else "off",
        )
        _fit(model, x01, targets, penalty, config, callback, progress)
    model.eval()
    return model


def _fit(
    model: LgstModel,
    x01: torch.Tensor,
    targets: torch.Tensor,
    penalty: PenaltyImages | None,
    config: LgstConfig,
    callback: Callable[[int, dict[str, float]], None] | None,
    progress: bool,
) -> None:
    gen = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = max(1, int(config.lr_step_fraction * config.iterations))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=config.lr_gamma)
    batches = _batch_indices(len(x01), config.batch_size, gen)
    model.train()
    bar = tqdm(range(config.iterations), desc="lgst", unit="it", disable=not progress, mininterval=2.0)
    for it in bar:
        idx = next(batches).to(x01.device)
        clean = x01[idx]
        x_aug = model.normalize(color_jitter(clean, config.ae_jitter, gen))
        x_pen = model.normalize(penalty.sample(gen).to(x01.device)) if penalty is not None else None
        batch = LgstBatch(model.normalize(clean), targets[idx], x_aug, model.teacher(x_aug), x_pen)
        losses = lgst_losses(model, batch, config, gen)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if callback is not None or (progress and it % 50 == 0):
            values = dict(zip(LOSS_NAMES, torch.stack([losses[k].detach() for k in LOSS_NAMES]).tolist(), strict=True))
            if not all(math.isfinite(v) for v in values.values()):
                raise FloatingPointError(f"LGST loss is not finite at iteration {it + 1}: {values}")
            bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
            if callback is not None:
                callback(it + 1, {**values, "lr": lr})
