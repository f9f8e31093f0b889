"""LGST (Local-Global Student-Teacher, docs/method.md section 5): training, anomaly maps, map normalisation, scores and
checkpoints. The networks live in :mod:`csad.models.lgst`.

Modules: :mod:`~csad.lgst.config` (settings), :mod:`~csad.lgst.data` (images, jitter, penalty images),
:mod:`~csad.lgst.losses` (teacher statistics, losses), :mod:`~csad.lgst.train` (the training loop),
:mod:`~csad.lgst.maps` (inference: maps, normalisation, scores) and :mod:`~csad.lgst.checkpoint`. The inference
and checkpoint modules import no training module, and :mod:`~csad.lgst.config` imports no torch.

The names below are imported on first use (PEP 562), so importing :mod:`csad.lgst.config` alone (the ``settings``
stage does) does not pay for torch; ``from csad.lgst import train_lgst`` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csad._lazy import lazy_exports

if TYPE_CHECKING:
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
    from csad.models.lgst import LgstModel, build_lgst_model
    from csad.models.spec import BackboneSpec

#: Exported name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "BackboneSpec": "csad.models.spec",
    "LgstBatch": "csad.lgst.losses",
    "LgstConfig": "csad.lgst.config",
    "LgstModel": "csad.models.lgst",
    "MapNormalizer": "csad.lgst.maps",
    "PenaltyDataError": "csad.lgst.data",
    "PenaltyImages": "csad.lgst.data",
    "anomaly_maps": "csad.lgst.maps",
    "build_lgst_model": "csad.models.lgst",
    "color_jitter": "csad.lgst.data",
    "compute_maps": "csad.lgst.maps",
    "config_from_params": "csad.lgst.config",
    "fit_map_normalizer": "csad.lgst.maps",
    "hard_loss": "csad.lgst.losses",
    "lgst_losses": "csad.lgst.losses",
    "lgst_scores": "csad.lgst.maps",
    "load_lgst": "csad.lgst.checkpoint",
    "save_lgst": "csad.lgst.checkpoint",
    "subsample_quantile": "csad.lgst.maps",
    "teacher_statistics": "csad.lgst.losses",
    "train_lgst": "csad.lgst.train",
    "upsample_map": "csad.lgst.maps",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
