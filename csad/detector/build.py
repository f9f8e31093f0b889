"""Build a :class:`~csad.detector.model.CsadDetector` from the trained artifacts of one category.

Inputs: ``segmenter.pt`` (component segmenter + fitted Patch Histogram, stage ``train_seg``) and ``lgst.pt`` (LGST
networks, teacher statistics and map quantiles, stage ``train_lgst``), and the category's validation/good images.
The networks and statistics are copied into one detector; when the segmenter and the LGST teacher use the same
encoder (same network, identical weights, same input size) the detector keeps one copy and runs it once.

Then, on validation/good only (docs/method.md 6; no test image is ever looked at):

1. each branch's raw scores are trimmed z-normalised (mean and std of the scores strictly between the ``lower``
   and ``upper`` quantiles, :class:`csad.scoring.patch_hist.TrimmedNormalizer`), and the fused score is their
   weighted sum;
2. the decision threshold is the ``threshold_quantile`` quantile (linear interpolation) of the fused validation
   scores: a new good image scores above it with probability about ``1 - threshold_quantile`` when validation/good
   is representative of production (the expected false-reject rate).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csad.detector.model import CsadDetector, DetectorConfig
from csad.detector.predict import TorchRunner, run_batches
from csad.detector.settings import BRANCHES, DetectorSettings
from csad.errors import CsadError
from csad.lgst.checkpoint import load_lgst
from csad.normalize import safe_spread
from csad.scoring.patch_hist import TrimmedNormalizer, grid_key
from csad.seg.checkpoint import load_segmenter

log = logging.getLogger(__name__)


def _same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Return whether two state dicts have the same keys and equal tensors."""
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def assemble_detector(
    category: str, segmenter_path: Path, lgst_path: Path, settings: DetectorSettings, device: str = "cpu"
) -> CsadDetector:
    """Return a detector holding the trained networks and statistics of both checkpoints (fusion statistics and
    threshold still neutral; :func:`build_detector` fits them).

    Raises:
        CsadError: a checkpoint is missing or unusable (names the stage that writes it).
    """
    segmenter, patch_hist, seg_size = load_segmenter(segmenter_path, device="cpu")
    lgst, normalizer, lgst_cfg = load_lgst(lgst_path, "cpu")
    seg_cfg = segmenter.config()
    shared = (
        seg_cfg["backbone"] == lgst.spec.name
        and seg_size == lgst_cfg.image_size
        and _same_tensors(segmenter.backbone.model.state_dict(), lgst.backbone.model.state_dict())
    )
    config = DetectorConfig(
        category=category,
        image_size=int(seg_size),
        num_classes=int(seg_cfg["num_classes"]),
        seg_backbone=str(seg_cfg["backbone"]),
        decoder={k: seg_cfg[k] for k in ("aspp_channels", "decoder_channels", "reduce_channels", "bn_momentum")},
        lgst_backbone=lgst.spec.name,
        lgst_image_size=int(lgst_cfg.image_size),
        feat_size=int(lgst_cfg.feat_size),
        channels=int(lgst_cfg.channels),
        student_widths=tuple(int(w) for w in lgst_cfg.student_widths),  # type: ignore[arg-type]
        ae_base_dim=int(lgst_cfg.ae_base_dim),
        shared_backbone=bool(shared),
        grids=tuple(patch_hist.grids),
        component_counts=patch_hist.counts,
        weights={b: float(settings.weights[b]) for b in BRANCHES},
        threshold_rule={"quantile": float(settings.threshold_quantile)},
    )
    det = CsadDetector(config)
    det.backbone.model.load_state_dict(segmenter.backbone.model.state_dict())
    if det.lgst_backbone is not None:
        det.lgst_backbone.model.load_state_dict(lgst.backbone.model.state_dict())
    det.decoder.load_state_dict(segmenter.decoder.state_dict())
    det.teacher_head.load_state_dict(lgst.head.state_dict())
    det.student.load_state_dict(lgst.student.state_dict())
    det.autoencoder.load_state_dict(lgst.autoencoder.state_dict())
    with torch.no_grad():
        det.teacher_mean.copy_(lgst.teacher_mean)
        det.teacher_std.copy_(lgst.teacher_std)
        det.map_norm.copy_(torch.tensor(normalizer.shifts_and_spreads()))
        for i, grid in enumerate(patch_hist.grids):
            key = grid_key(grid)
            getattr(det, f"ph_mean_{key}").copy_(torch.from_numpy(patch_hist.means[grid]))
            getattr(det, f"ph_invcov_{key}").copy_(torch.from_numpy(patch_hist.inv_covs[grid]))
            norm = patch_hist.normalizers[grid]
            det.ph_norm[i] = torch.tensor([norm.mean, safe_spread(norm.std)], dtype=torch.float64)
        if patch_hist.counts:
            assert patch_hist.count_normalizer is not None
            det.ph_count_min_area.copy_(torch.from_numpy(np.asarray(patch_hist.count_min_area, dtype=np.float64)))
            det.ph_count_mean.copy_(torch.from_numpy(np.asarray(patch_hist.count_mean, dtype=np.float64)))
            det.ph_count_invcov.copy_(torch.from_numpy(np.asarray(patch_hist.count_inv_cov, dtype=np.float64)))
            norm = patch_hist.count_normalizer
            det.ph_count_norm.copy_(torch.tensor([norm.mean, safe_spread(norm.std)], dtype=torch.float64))
    return det.to(device).eval()


def build_detector(
    category: str,
    segmenter_path: Path,
    lgst_path: Path,
    validation_images: Sequence[np.ndarray],
    settings: DetectorSettings,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[CsadDetector, dict[str, Any]]:
    """Return the detector of one category, fused and thresholded on ``validation_images``, and a summary.

    Args:
        category: the category name (stored in the detector's config).
        segmenter_path: ``models/<category>/segmenter.pt``.
        lgst_path: ``models/<category>/lgst.pt``.
        validation_images: the validation/good images, uint8 RGB (H, W, 3), any size.
        settings: the ``detector`` params.
        device: where to run the validation forward passes.
        progress: show a progress bar.

    Returns:
        (detector in eval mode on ``device``, summary: ``shared_backbone``, ``validation_images``, per-branch
        ``fusion`` mean/std, ``threshold``, ``threshold_rule`` and the fused validation scores' min/median/max).

    Raises:
        CsadError: no validation image, or a checkpoint is missing or unusable.
    """
    if len(validation_images) == 0:
        raise CsadError(
            f"{category}: validation/good holds no image; the detector's normalisation and threshold need at least "
            "one (MVTec LOCO layout: <category>/validation/good/*.png)"
        )
    det = assemble_detector(category, segmenter_path, lgst_path, settings, device)
    outputs = run_batches(TorchRunner(det), validation_images, settings.batch_size, progress, desc=f"fit {category}")
    raw = {"patch_hist": outputs["patch_hist_raw"], "lgst": outputs["lgst_raw"].astype(np.float64)}
    stats = []
    fused = np.zeros(len(validation_images), np.float64)
    for branch in BRANCHES:
        norm = TrimmedNormalizer(settings.lower, settings.upper).fit(raw[branch])
        stats.append([norm.mean, safe_spread(norm.std)])
        fused += settings.weights[branch] * norm.transform(raw[branch])
    threshold = float(np.quantile(fused, settings.threshold_quantile))
    with torch.no_grad():
        det.fusion_stats.copy_(torch.tensor(stats, dtype=torch.float64))
        det.threshold.fill_(threshold)
    summary = {
        "shared_backbone": det.config.shared_backbone,
        "validation_images": len(validation_images),
        "fusion": {b: {"mean": s[0], "std": s[1]} for b, s in zip(BRANCHES, stats, strict=True)},
        "threshold": threshold,
        "threshold_rule": dict(det.config.threshold_rule),
        "validation_fused": {
            "min": float(fused.min()),
            "median": float(np.median(fused)),
            "max": float(fused.max()),
            "above_threshold": int((fused > threshold).sum()),
        },
    }
    return det, summary
