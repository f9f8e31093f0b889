"""Settings of the segmenter training (docs/method.md 3.3-3.6), importable without torch: :class:`SegTrainConfig`
(the ``segment.train`` params section) and the settings it nests, :class:`LossWeights`, :class:`AugmentConfig` and
:class:`LSAConfig`.

The settings stage checks every params section against its typed config (:mod:`csad.pipeline.settings`) and must not
spend seconds importing torch to do so; :mod:`csad.seg.train`, :mod:`csad.seg.data` and :mod:`csad.seg.lsa` use
these settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csad.models.spec import RELEASED_BN_MOMENTUM
from csad.params import NOT_A_PARAM


@dataclass(frozen=True)
class LSAConfig:
    """Settings of :func:`~csad.seg.lsa.logical_synthetic_anomaly` (released values; min_distance 0.1 for screw_bag)."""

    min_aug_num: int = 1  # guaranteed pastes (phase 1: keep drawing components until this many succeeded)
    max_aug_num: int = 2  # maximum pastes; each of the max - min optional pastes tries one component
    boundary: float = 0.1  # paste centres are drawn from [boundary, 1 - boundary]^2 (normalised coordinates)
    min_distance: float = 0.2  # minimum normalised distance between source and paste centres
    weight_power: float = 0.0  # component sampling probability ~ area^weight_power (0 = uniform)
    max_attempts: int = 500  # positions tried per component before it is skipped
    accept_overlap: tuple[float, float] = (0.5, 0.9)  # max intersect_ratio with the background (guaranteed, optional)
    min_area_fraction: float = 0.001  # candidate components cover more than this fraction of the image
    min_labeled_ratio: float = 0.9  # ... have intersect_ratio(mask, label != 0) above this
    max_unlabeled_pixels: int = 100  # ... and at most this many unlabelled (label 0) pixels
    n_candidates: int = 10000  # uniform candidate centres drawn per component (released: 10,000)

    def __post_init__(self) -> None:
        if not 0 <= self.min_aug_num <= self.max_aug_num:
            raise ValueError(f"need 0 <= min_aug_num <= max_aug_num, got {self.min_aug_num}, {self.max_aug_num}")
        if not 0.0 <= self.boundary < 0.5:
            raise ValueError(f"boundary must be in [0, 0.5), got {self.boundary}")
        if self.max_attempts < 1 or self.n_candidates < 1:
            raise ValueError("max_attempts and n_candidates must be >= 1")
        if len(self.accept_overlap) != 2:
            raise ValueError(f"accept_overlap needs two thresholds, got {self.accept_overlap}")


@dataclass(frozen=True)
class AugmentConfig:
    """Light augmentation of labelled images (released albumentations ShiftScaleRotate + RandomBrightnessContrast)."""

    lsa: bool = True  # LSA_ratio 1.0: every labelled sample gets LSA
    lsa_config: LSAConfig = field(default_factory=LSAConfig)
    shift_scale_rotate_p: float = 0.5
    shift_limit: float = 0.01  # fraction of the image size
    scale_limit: float = 0.01  # scale in [1 - limit, 1 + limit]
    rotate_limit: float = 2.0  # degrees
    brightness_contrast_p: float = 0.5
    brightness_limit: float = 0.05  # beta in [-limit, limit] * 255
    contrast_limit: float = 0.05  # alpha in [1 - limit, 1 + limit]


@dataclass(frozen=True)
class LossWeights:
    """Loss weights; defaults are the released code's (the paper swaps focal and dice: Dice 10, Focal 1)."""

    ce: float = 0.5
    focal: float = 10.0
    dice: float = 1.0
    hist: float = 10.0
    entropy: float = 1.0  # applied to the sum of the unlabelled and labelled entropies


@dataclass(frozen=True)
class SegTrainConfig:
    """Settings of :func:`~csad.seg.train.train_segmenter`; defaults are the paper profile (docs/method.md 3.3-3.6)."""

    image_size: int = 256
    batch_size_labeled: int = 4
    batch_size_unlabeled: int = 4
    epochs: int = 120
    sup_only_epochs: int = 50  # epochs (from 0) before hist + entropy losses are switched on
    lr: float = 0.01
    weight_decay: float = 1e-5
    loss_weights: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fill_holes: bool = False  # released: True for breakfast_box and juice_bottle
    aspp_channels: int = 256
    decoder_channels: int = 256
    reduce_channels: int = 48
    bn_momentum: float = RELEASED_BN_MOMENTUM
    cache_unlabeled_features: bool = True  # unlabelled images are not augmented: run the backbone on them once
    channels_last: bool = False
    seed: int = 42
    device: str = field(default="auto", metadata=NOT_A_PARAM)  # auto | cpu | cuda[:k] (from runtime.device)

    def __post_init__(self) -> None:
        if isinstance(self.loss_weights, Mapping):
            object.__setattr__(self, "loss_weights", LossWeights(**self.loss_weights))
        if isinstance(self.augment, Mapping):
            augment = dict(self.augment)
            if isinstance(augment.get("lsa_config"), Mapping):
                lsa = dict(augment["lsa_config"])
                if "accept_overlap" in lsa:
                    lsa["accept_overlap"] = tuple(lsa["accept_overlap"])
                augment["lsa_config"] = LSAConfig(**lsa)
            object.__setattr__(self, "augment", AugmentConfig(**augment))
        if self.image_size < 16 or self.epochs < 0 or self.sup_only_epochs < 0:
            raise ValueError(
                f"need image_size >= 16, epochs >= 0, sup_only_epochs >= 0; got {self.image_size}, {self.epochs}, "
                f"{self.sup_only_epochs}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain nested dict (``SegTrainConfig(**config.to_dict())`` rebuilds it)."""
        return dataclasses.asdict(self)
