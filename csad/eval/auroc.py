"""Image-level AUROC per anomaly type (logical / structural), as reported for MVTec LOCO AD.

Logical AUROC = test/good vs test/logical_anomalies, structural AUROC = test/good vs test/structural_anomalies; good
images count in both, and mean = (logical + structural) / 2. Unlike the official script (which scores an image by
the max of its map), the image scores are given by the caller, e.g. CSAD's fused score.

Example:
    >>> image_auroc([0.1, 0.2, 0.9, 0.3], ["good", "good", "logical_anomalies", "structural_anomalies"])
    {'logical': 1.0, 'structural': 1.0, 'mean': 1.0}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["ANOMALY_KINDS", "IMAGE_TYPES", "image_auroc", "roc_points"]

IMAGE_TYPES: tuple[str, ...] = ("good", "logical_anomalies", "structural_anomalies")
"""Test-folder names of the three image types."""

ANOMALY_KINDS: dict[str, str] = {"logical": "logical_anomalies", "structural": "structural_anomalies"}
"""Result key -> test-folder name of each anomaly type."""


def _check(scores: Sequence[float], types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Returns scores and types as arrays after checking lengths, finiteness and type names."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    t = np.asarray(list(types), dtype=object)
    if s.size != t.size:
        raise ValueError(f"got {s.size} scores but {t.size} image types")
    if not np.isfinite(s).all():
        raise ValueError("image scores contain NaN or inf values")
    unknown = sorted({str(x) for x in t} - set(IMAGE_TYPES))
    if unknown:
        raise ValueError(f"unknown image types {unknown}; expected among {list(IMAGE_TYPES)}")
    if not np.any(t == "good"):
        raise ValueError("no 'good' images: the AUROC is undefined")
    return s, t


def _subset(s: np.ndarray, t: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns (labels, scores) of the good images plus those of one anomaly type (label 1)."""
    if kind not in ANOMALY_KINDS:
        raise ValueError(f"kind must be one of {list(ANOMALY_KINDS)}, got {kind!r}")
    keep = (t == "good") | (t == ANOMALY_KINDS[kind])
    return (t[keep] != "good").astype(np.int64), s[keep]


def image_auroc(scores: Sequence[float], types: Sequence[str]) -> dict[str, float]:
    """Returns ``{'logical', 'structural', 'mean'}`` image-level AUROCs.

    A type without images gives NaN for its key, and 'mean' is then the AUROC of the type that has images.

    Args:
        scores: One anomaly score per test image (higher = more anomalous).
        types: Per image, one of 'good', 'logical_anomalies', 'structural_anomalies'.

    Raises:
        ValueError: On length mismatch, NaN/inf scores, unknown types, no good images or no anomalous images.
    """
    s, t = _check(scores, types)
    result: dict[str, float] = {}
    for kind in ANOMALY_KINDS:
        labels, subset_scores = _subset(s, t, kind)
        result[kind] = float(roc_auc_score(labels, subset_scores)) if labels.any() else math.nan
    present = [v for v in result.values() if not math.isnan(v)]
    if not present:
        raise ValueError("no anomalous images (logical_anomalies or structural_anomalies): the AUROC is undefined")
    result["mean"] = float(sum(present) / len(present))
    return result


def roc_points(scores: Sequence[float], types: Sequence[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(fpr, tpr)`` of the ROC curve of good vs one anomaly type (``sklearn.metrics.roc_curve``), for plots.

    Args:
        scores: One anomaly score per test image.
        types: Per image, one of 'good', 'logical_anomalies', 'structural_anomalies'.
        kind: 'logical' or 'structural'.

    Raises:
        ValueError: As :func:`image_auroc`, or if there is no image of ``kind``.
    """
    s, t = _check(scores, types)
    labels, subset_scores = _subset(s, t, kind)
    if not labels.any():
        raise ValueError(f"no {ANOMALY_KINDS[kind]} images: the ROC curve is undefined")
    fpr, tpr, _ = roc_curve(labels, subset_scores)
    return fpr, tpr
