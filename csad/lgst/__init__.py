"""LGST (Local-Global Student-Teacher, docs/method.md section 5): training, anomaly maps, map normalisation, scores and
checkpoints. The networks live in :mod:`csad.models.lgst`.

Modules: :mod:`~csad.lgst.config` (settings), :mod:`~csad.lgst.data` (images, jitter, penalty images),
:mod:`~csad.lgst.losses` (teacher statistics, losses), :mod:`~csad.lgst.train` (the training loop),
:mod:`~csad.lgst.maps` (inference: maps, normalisation, scores) and :mod:`~csad.lgst.checkpoint`. The inference
and checkpoint modules import no training module (this package's ``__init__`` still imports them all).
"""

from csad.lgst.checkpoint import load_lgst, save_lgst
from csad.lgst.config import LgstConfig, config_from_params
from csad.lgst.data import PenaltyDataError, PenaltyImages, color_jitter
from csad.lgst.losses import LgstBatch, hard_loss, lgst_losses, teacher_statistics
from csad.lgst.maps import (
    MapNormalizer,
    anomaly_maps,
    compute_maps,
    fit_map_normalizer,
    lgst_scores,
    subsample_quantile,
    upsample_map,
)
from csad.lgst.train import train_lgst
from csad.models.backbone import BackboneSpec
from csad.models.lgst import LgstModel, build_lgst_model

__all__ = [
    "BackboneSpec",
    "LgstBatch",
    "LgstConfig",
    "LgstModel",
    "MapNormalizer",
    "PenaltyDataError",
    "PenaltyImages",
    "anomaly_maps",
    "build_lgst_model",
    "color_jitter",
    "compute_maps",
    "config_from_params",
    "fit_map_normalizer",
    "hard_loss",
    "lgst_losses",
    "lgst_scores",
    "load_lgst",
    "save_lgst",
    "subsample_quantile",
    "teacher_statistics",
    "train_lgst",
    "upsample_map",
]
