"""Semi-supervised training of the component segmenter (docs/method.md 3.5-3.6) on a fixed schedule.

Each iteration takes a labelled batch (LSA + light augmentation; CE + focal + dice) and, after
``sup_only_epochs``, an unlabelled batch (no augmentation) whose predicted class histogram is pulled towards the
label map of a random labelled image (hist loss), plus entropy minimisation on both predictions. One epoch is
floor(N_labelled / batch) iterations (at least 1); the unlabelled images are cycled. Adam optimises the decoder
only; the backbone is frozen (eval mode, no grad). There is no model selection: the last weights are returned.

Seeded: the decoder's initial weights come from ``config.seed`` and every data choice from
``numpy.random.default_rng(config.seed)``, so two CPU runs with equal inputs give identical weights.

>>> import numpy as np
>>> images = [np.full((32, 32, 3), v, np.uint8) for v in (40, 200, 90)]
>>> label = np.zeros((32, 32), np.int64); label[8:24, 8:24] = 1
>>> config = SegTrainConfig(image_size=32, batch_size_labeled=2, batch_size_unlabeled=2, epochs=2,
...     sup_only_epochs=1, aspp_channels=8, decoder_channels=8, reduce_channels=8)
>>> from csad.seg.data import prepare_data
>>> data = prepare_data(images, {0: label, 1: label}, None, None, config.image_size)
>>> model, history = train_segmenter(data, 2, config, BackboneSpec("resnet18", "none"))
>>> [sorted(h) for h in history][1]
['ce', 'dice', 'entropy', 'epoch', 'focal', 'hist', 'loss']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from csad.imaging import to_input
from csad.models.segmenter import ComponentSegmenter
from csad.models.spec import BackboneSpec
from csad.runtime import resolve_device
from csad.seg import losses
from csad.seg.config import AugmentConfig, LossWeights, LSAConfig, SegTrainConfig
from csad.seg.data import SegmentationData, augment_labeled

log = logging.getLogger(__name__)

#: Names of the per-step / per-epoch loss entries (``loss`` is the weighted total).
LOSS_NAMES: tuple[str, ...] = ("loss", "ce", "focal", "dice", "hist", "entropy")


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Return one epoch of shuffled index batches over ``range(n)`` (drop_last; at least one full batch).

    With fewer than ``batch_size`` items the single batch is the permutation topped up by random draws with
    replacement (the released loader would yield no batch at all).
    """
    perm = rng.permutation(n)
    if n < batch_size:
        perm = np.concatenate([perm, rng.integers(0, n, size=batch_size - n)])
    return [perm[i * batch_size : (i + 1) * batch_size] for i in range(len(perm) // batch_size)]


def _cycle(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield index batches over ``range(n)`` forever, reshuffling every pass."""
    while True:
        yield from epoch_batches(n, batch_size, rng)


def build_segmenter(num_classes: int, config: SegTrainConfig, backbone: BackboneSpec) -> ComponentSegmenter:
    """Return the untrained :class:`ComponentSegmenter` of ``config`` on ``backbone`` (decoder drawn from
    ``config.seed``, which also seeds a random backbone), on the CPU.

    Raises:
        CheckpointError, ParamsError: the backbone's weights cannot be loaded (:func:`build_backbone`).
    """
    return ComponentSegmenter(
        num_classes,
        backbone=backbone.name,
        weights=backbone.weights,
        param=backbone.param,
        seed=config.seed,
        aspp_channels=config.aspp_channels,
        decoder_channels=config.decoder_channels,
        reduce_channels=config.reduce_channels,
        bn_momentum=config.bn_momentum,
    )


def train_segmenter(
    data: SegmentationData,
    num_classes: int,
    config: SegTrainConfig | None = None,
    backbone: BackboneSpec | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> tuple[ComponentSegmenter, list[dict[str, float]]]:
    """Return (trained segmenter in eval mode on the training device, per-epoch mean losses).

    Args:
        data: the training set at ``config.image_size``: all train/good images and, for the labelled subset, the
            pseudo-label maps (0 = background, < num_classes), the refined instance maps (LSA's components) and
            the background masks (LSA avoids them); built by :func:`csad.seg.data.prepare_data` with
            ``config.image_size`` and ``fill=config.fill_holes``.
        num_classes: C, background included.
        config: training settings (default: paper profile).
        backbone: the frozen encoder spec (default: WRN50-2 with random weights).
        callback: called after every iteration with (global step from 0, {name: value} of :data:`LOSS_NAMES`).
        progress: show a tqdm bar over epochs.

    History entries: ``{"epoch": e, "loss": ..., "ce": ..., "focal": ..., "dice": ..., "hist": ..., "entropy": ...}``
    (hist and entropy are 0 during the supervised-only epochs).

    Raises:
        ValueError: a batch size below 2, ``num_classes`` below 2, ``data`` at another size than
            ``config.image_size``, or a label map with values outside ``[0, num_classes)`` (the image index is named).
    """
    config = config or SegTrainConfig()
    backbone = backbone or BackboneSpec()
    if config.batch_size_labeled < 2 or config.batch_size_unlabeled < 2:
        raise ValueError("batch sizes must be >= 2 (BatchNorm of the image-pooling branch needs 2 samples)")
    if data.images.shape[1:3] != (config.image_size, config.image_size):
        raise ValueError(
            f"the training data is at {data.images.shape[1:3]}, the config at image_size {config.image_size}: "
            "build it with prepare_data(..., config.image_size)"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number >= 2 (background and one component), got {num_classes!r}")
    for i, label in zip(data.labeled.tolist(), data.labels, strict=True):
        low, top = (int(np.min(label)), int(np.max(label))) if np.size(label) else (0, 0)
        if top >= num_classes or low < 0:
            raise ValueError(f"label map {i} has values in [{low}, {top}], outside [0, {num_classes})")
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    model = build_segmenter(num_classes, config, backbone).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    model.train()
    optimizer = torch.optim.Adam(model.decoder_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    size = (config.image_size, config.image_size)
    w = config.loss_weights
    n_lab, n_unlab = len(data.labeled), len(data.unlabeled)
    semi = config.epochs > config.sup_only_epochs
    if semi and n_unlab == 0:
        log.warning("no unlabelled images: the hist loss and the unlabelled entropy are skipped")

    def features(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_input(batch, device).contiguous(memory_format=memory_format)
        return model.features(x)

    cache: tuple[torch.Tensor, torch.Tensor] | None = None
    if semi and n_unlab and config.cache_unlabeled_features:
        chunks = [
            features(data.images[data.unlabeled[i : i + config.batch_size_unlabeled]])
            for i in range(0, n_unlab, config.batch_size_unlabeled)
        ]
        cache = (torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks]))
    unlab_batches = _cycle(n_unlab, config.batch_size_unlabeled, rng) if n_unlab else None

    history: list[dict[str, float]] = []
    step = 0
    epochs = tqdm(range(config.epochs), desc="segmenter", disable=not progress)
    for epoch in epochs:
        use_unsup = epoch >= config.sup_only_epochs
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        batches = epoch_batches(n_lab, config.batch_size_labeled, rng)
        for batch in batches:
            pairs = [augment_labeled(data, int(k), config.augment, rng) for k in batch]
            low, high = features(np.stack([p[0] for p in pairs]))
            target = torch.from_numpy(np.stack([p[1] for p in pairs])).to(device)
            logits = model.decode(low, high, size)
            ce = losses.cross_entropy(logits, target)
            focal = losses.focal_loss(logits, target)
            dice = losses.dice_loss(logits, target)
            total = w.ce * ce + w.focal * focal + w.dice * dice
            hist = entropy = torch.zeros((), device=device)
            if use_unsup:
                entropy = losses.entropy_loss(logits)
                if unlab_batches is not None:
                    ub = next(unlab_batches)
                    rand_gt = torch.from_numpy(data.labels[rng.integers(0, n_lab, size=len(ub))]).to(device)
                    if cache is not None:
                        ub_t = torch.from_numpy(ub).to(device)
                        u_low, u_high = cache[0][ub_t], cache[1][ub_t]
                    else:
                        u_low, u_high = features(data.images[data.unlabeled[ub]])
                    u_logits = model.decode(u_low, u_high, size)
                    hist = losses.hist_loss(u_logits, rand_gt)
                    entropy = entropy + losses.entropy_loss(u_logits)
                total = total + w.hist * hist + w.entropy * entropy
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            values = {
                "loss": float(total.detach()),
                "ce": float(ce.detach()),
                "focal": float(focal.detach()),
                "dice": float(dice.detach()),
                "hist": float(hist.detach()),
                "entropy": float(entropy.detach()),
            }
            for name, value in values.items():
                sums[name] += value
            if callback is not None:
                callback(step, values)
            step += 1
        record = {"epoch": float(epoch), **{name: sums[name] / len(batches) for name in LOSS_NAMES}}
        history.append(record)
        log.info("segmenter epoch %d/%d: loss %.4f", epoch + 1, config.epochs, record["loss"])
    model.eval()
    return model, history


__all__ = [
    "LOSS_NAMES",
    "AugmentConfig",
    "LSAConfig",
    "LossWeights",
    "SegTrainConfig",
    "SegmentationData",
    "build_segmenter",
    "epoch_batches",
    "resolve_device",
    "train_segmenter",
]
