"""The per-category test metrics of the ``score`` stage: image AUROC per branch, AU-sPRO, verdict rates.

An undefined value (no image of a kind) is ``None`` with a ``"<key>_reason"`` string beside it, so the metrics files
are strict JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from csad.data.loco import ANOMALY_TYPES
from csad.detector.settings import BRANCHES
from csad.eval.auroc import image_auroc
from csad.io import REASON_SUFFIX, round_metrics, set_undefined


def category_metrics(table: pd.DataFrame, official: Mapping[str, Any]) -> dict[str, Any]:
    """Return the test metrics of one category for ``metrics/<category>.json``, rounded to 4 digits.

    Args:
        table: The scores table (columns ``split``, ``type``, ``fused`` and ``<branch>_norm``); only its test rows
            are used, and any subset of test image types (none included) is accepted.
        official: The result of :func:`csad.eval.evaluate.evaluate_maps` on the written maps.

    Returns:
        ``image_auroc.{fused,patch_hist,lgst}.{logical,structural,mean}`` (image AUROC of each score),
        ``au_spro.<type>.<limit>``, ``au_spro_0.05.<type>`` and ``map_max_auroc.<type>`` with type in
        ``logical_anomalies``, ``structural_anomalies``, ``mean``. Values in [0, 1]; an undefined value is
        ``None`` with a ``"<key>_reason"`` string beside it (never NaN, so the file is strict JSON).
    """
    test = table[table["split"] == "test"]
    types = test["type"].tolist()
    metrics: dict[str, Any] = {"image_auroc": {}}
    for name in ("fused", *(f"{b}_norm" for b in BRANCHES)):
        auc = image_auroc(test[name].to_numpy(dtype=np.float64), types)
        metrics["image_auroc"][name.removesuffix("_norm")] = round_metrics(auc)
    spro = official["localization"]["auc_spro"]
    metrics["au_spro"] = round_metrics(dict(spro))
    at_005: dict[str, Any] = {}
    for type_ in (*ANOMALY_TYPES, "mean"):
        curve = spro.get(type_)
        if curve is None:
            set_undefined(at_005, type_, spro.get(type_ + REASON_SUFFIX) or f"no AU-sPRO for {type_}")
        else:
            at_005[type_] = round(float(curve["0.05"]), 4)
    metrics["au_spro_0.05"] = at_005
    metrics["map_max_auroc"] = round_metrics(dict(official["classification"]["auc_roc"]))
    return metrics


def verdict_metrics(table: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Return the verdict metrics at ``threshold`` on the test rows of ``table`` (columns split, type, fused).

    ``false_reject_rate``: share of test/good images scored above the threshold; ``false_accept_rate.<type>``:
    share of anomalous images (per type and ``all``) at or below it; ``validation_false_reject_rate`` on the
    validation rows. An undefined rate (no image of that kind) is ``None`` with a ``_reason``.

    >>> t = pd.DataFrame({"split": ["validation", "test", "test", "test"], "type": ["good", "good",
    ...     "logical_anomalies", "structural_anomalies"], "fused": [0.0, 2.0, 3.0, 0.5]})
    >>> m = verdict_metrics(t, 1.0)
    >>> m["false_reject_rate"], m["false_accept_rate"]["logical_anomalies"], m["false_accept_rate"]["all"]
    (1.0, 0.0, 0.5)
    """
    out: dict[str, Any] = {"threshold": round(float(threshold), 4)}
    anomalous = table["fused"].to_numpy(dtype=np.float64) > threshold

    def rate(mask: np.ndarray, flagged: bool, where: dict[str, Any], key: str, what: str) -> None:
        if not mask.any():
            set_undefined(where, key, f"no {what}")
        else:
            where[key] = round(float((anomalous[mask] == flagged).mean()), 4)

    split = table["split"].to_numpy()
    type_ = table["type"].to_numpy()
    rate((split == "validation") & (type_ == "good"), True, out, "validation_false_reject_rate", "validation image")
    rate((split == "test") & (type_ == "good"), True, out, "false_reject_rate", "test/good image")
    far: dict[str, Any] = {}
    for kind in ANOMALY_TYPES:
        rate((split == "test") & (type_ == kind), False, far, kind, f"test/{kind} image")
    rate((split == "test") & (type_ != "good"), False, far, "all", "anomalous test image")
    out["false_accept_rate"] = far
    return out


def no_test_metrics(category: str) -> dict[str, Any]:
    """Return the metrics of a category without test images: every value ``None`` with a reason."""
    reason = f"{category} has no test images (test/): nothing to evaluate"
    metrics: dict[str, Any] = {"image_auroc": {}, "au_spro": {}, "au_spro_0.05": {}, "map_max_auroc": {}}
    for name in ("fused", *BRANCHES):
        metrics["image_auroc"][name] = {}
        for kind in ("logical", "structural", "mean"):
            set_undefined(metrics["image_auroc"][name], kind, reason)
    for key in ("au_spro", "au_spro_0.05", "map_max_auroc"):
        for type_ in (*ANOMALY_TYPES, "mean"):
            set_undefined(metrics[key], type_, reason)
    return metrics
