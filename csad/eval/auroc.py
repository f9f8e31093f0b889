"""Image-level AUROC per anomaly type (logical / structural), as reported for MVTec LOCO AD.

Logical AUROC = test/good vs test/logical_anomalies, structural AUROC = test/good vs test/structural_anomalies; good
images count in both, and mean = (logical + structural) / 2. Unlike the official script (which scores an image by
the max of its map), the image scores are given by the caller, e.g. CSAD's fused score.

A test set may lack any image type. An AUROC without images on one side is undefined: it is ``None`` with a
``"<key>_reason"`` string beside it (:func:`csad.io.set_undefined`), never NaN, and 'mean' averages the defined
ones.

Example:
    >>> image_auroc([0.1, 0.2, 0.9, 0.3], ["good", "good", "logical_anomalies", "structural_anomalies"])
    {'logical': 1.0, 'structural': 1.0, 'mean': 1.0}
    >>> image_auroc([0.1, 0.9], ["good", "logical_anomalies"])
    {'logical': 1.0, 'structural': None, 'structural_reason': 'no structural_anomalies test images', 'mean': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from csad.io import set_undefined

__all__ = ["ANOMALY_KINDS", "IMAGE_TYPES", "auroc_undefined_reason", "image_auroc", "roc_points"]

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
    return s, t


def auroc_undefined_reason(types: Sequence[str], kind: str) -> str | None:
    """Returns why the AUROC (and ROC curve) of good vs ``kind`` is undefined for these image types, or None.

    Args:
        types: Per image, one of 'good', 'logical_anomalies', 'structural_anomalies'.
        kind: 'logical' or 'structural'.

    Example:
        >>> auroc_undefined_reason(["logical_anomalies"], "structural")
        'no good and no structural_anomalies test images'
    """
    if kind not in ANOMALY_KINDS:
        raise ValueError(f"kind must be one of {list(ANOMALY_KINDS)}, got {kind!r}")
    present = {str(x) for x in types}
    missing = [name for name in ("good", ANOMALY_KINDS[kind]) if name not in present]
    return f"no {' and no '.join(missing)} test images" if missing else None


def _subset(s: np.ndarray, t: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns (labels, scores) of the good images plus those of one anomaly type (label 1)."""
    if kind not in ANOMALY_KINDS:
        raise ValueError(f"kind must be one of {list(ANOMALY_KINDS)}, got {kind!r}")
    keep = (t == "good") | (t == ANOMALY_KINDS[kind])
    return (t[keep] != "good").astype(np.int64), s[keep]


def image_auroc(scores: Sequence[float], types: Sequence[str]) -> dict[str, float | str | None]:
    """Returns ``{'logical', 'structural', 'mean'}`` image-level AUROCs, in [0, 1].

    Any subset of image types is accepted (none at all included). An AUROC whose good or anomalous side has no
    image is undefined: its value is ``None`` and ``'<key>_reason'`` says why (e.g. ``'structural_reason': 'no
    structural_anomalies test images'``). 'mean' is the mean of the defined AUROCs (the usual (logical +
    structural) / 2 when both are), ``None`` with ``'mean_reason'`` when neither is. A defined value has no
    ``_reason`` key.

    Args:
        scores: One anomaly score per test image (higher = more anomalous).
        types: Per image, one of 'good', 'logical_anomalies', 'structural_anomalies'.

    Raises:
        ValueError: On length mismatch, NaN/inf scores or unknown types (caller bugs, not undefined metrics).
    """
    s, t = _check(scores, types)
    result: dict[str, float | str | None] = {}
    defined: list[float] = []
    reasons: list[str] = []
    for kind in ANOMALY_KINDS:
        reason = auroc_undefined_reason(t.tolist(), kind)
        if reason is not None:
            set_undefined(result, kind, reason)
            reasons.append(f"{kind}: {reason}")
            continue
        labels, subset_scores = _subset(s, t, kind)
        result[kind] = float(roc_auc_score(labels, subset_scores))
        defined.append(result[kind])
    if defined:
        result["mean"] = float(sum(defined) / len(defined))
    else:
        set_undefined(result, "mean", f"neither AUROC is defined ({'; '.join(reasons)})")
    return result


def roc_points(scores: Sequence[float], types: Sequence[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(fpr, tpr)`` of the ROC curve of good vs one anomaly type (``sklearn.metrics.roc_curve``), for plots.

    Args:
        scores: One anomaly score per test image.
        types: Per image, one of 'good', 'logical_anomalies', 'structural_anomalies'.
        kind: 'logical' or 'structural'.

    Raises:
        ValueError: As :func:`image_auroc`, or if the curve is undefined (no good or no ``kind`` image; check
            :func:`auroc_undefined_reason` first to skip it).
    """
    s, t = _check(scores, types)
    labels, subset_scores = _subset(s, t, kind)
    reason = auroc_undefined_reason(t.tolist(), kind)
    if reason is not None:
        raise ValueError(f"{reason}: the ROC curve of {kind} anomalies is undefined")
    fpr, tpr, _ = roc_curve(labels, subset_scores)
    return fpr, tpr
