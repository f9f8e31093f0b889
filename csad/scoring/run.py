"""The ``score`` stage's work: run both branches on validation/good and the test set, fuse, write maps and metrics.

Per branch the raw image scores are trimmed z-normalised with the branch's validation/good scores (method.md 6),
then summed with the weights of params ``score.weights`` (the paper: 1 and 1). The LGST map (sum of the normalised
local and global maps) is written at the original image resolution in the official MVTec LOCO layout, so
``csad evaluate`` can reread it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from csad.data.loco import ANOMALY_TYPES, ImageRecord, LocoCategory, read_image
from csad.eval.auroc import image_auroc
from csad.eval.evaluate import evaluate_maps
from csad.eval.maps import anomaly_map_path, write_anomaly_map
from csad.io import REASON_SUFFIX, atomic_dir, round_metrics, set_undefined
from csad.lgst.train import lgst_scores, load_lgst, upsample_map
from csad.models.segmenter import predict_labels
from csad.pseudo.store import write_map
from csad.scoring.patch_hist import TrimmedNormalizer
from csad.seg.run import load_segmenter

log = logging.getLogger(__name__)

BRANCHES = ("patch_hist", "lgst")


def fuse_scores(
    raw: Mapping[str, np.ndarray], is_val: np.ndarray, weights: Mapping[str, float], lower: float, upper: float
) -> dict[str, np.ndarray]:
    """Return the normalised branch scores (``<branch>_norm``) and their weighted sum (``fused``).

    Each branch is trimmed z-normalised with the statistics of its validation rows (``is_val``).

    >>> raw = {"a": np.array([0.0, 1.0, 2.0, 3.0, 4.0, 10.0])}
    >>> out = fuse_scores(raw, np.array([1, 1, 1, 1, 1, 0], bool), {"a": 2.0}, 0.2, 0.8)
    >>> out["a_norm"].round(3).tolist(), out["fused"][-1].round(3)
    ([-2.449, -1.225, 0.0, 1.225, 2.449, 9.798], np.float64(19.596))
    """
    out: dict[str, np.ndarray] = {}
    fused = np.zeros(len(is_val), dtype=np.float64)
    for name, scores in raw.items():
        norm = TrimmedNormalizer(lower, upper).fit(np.asarray(scores)[is_val]).transform(np.asarray(scores))
        out[f"{name}_norm"] = norm
        fused += float(weights.get(name, 1.0)) * norm
    out["fused"] = fused
    return out


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


def score_category(
    category: LocoCategory,
    segmenter_path: Path,
    lgst_path: Path,
    cfg: Mapping[str, Any],
    device: str,
    out_dir: Path,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score validation/good and every test image of ``category``; write ``out_dir`` (scores.parquet,
    ``maps/<category>/test/<type>/<stem>.tiff``, ``segmentation/<split>/<type>/<stem>.png``); return the table
    and the metrics (image AUROC per branch and fused, AU-sPRO of the maps)."""
    segmenter, patch_hist, seg_size = load_segmenter(segmenter_path, device=device)
    lgst, normalizer, lgst_cfg = load_lgst(lgst_path, device)
    records = category.split("validation") + category.split("test")
    rows: list[dict[str, Any]] = []
    batch = int(cfg["batch_size"])
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        for i in tqdm(range(0, len(records), batch), desc=f"score {category.name}", unit="batch"):
            chunk: Sequence[ImageRecord] = records[i : i + batch]
            images = [read_image(r.path) for r in chunk]
            seg_maps = np.stack(predict_labels(segmenter, images, seg_size, batch_size=batch, device=device))
            ph = patch_hist.score(seg_maps)
            lg, maps = lgst_scores(lgst, normalizer, images, batch_size=batch)
            for rec, image, seg, p, s, m in zip(chunk, images, seg_maps, ph, lg, maps, strict=True):
                write_map(tmp / "segmentation" / rec.split / rec.type / f"{rec.stem}.png", seg)
                if rec.split == "test":
                    full = upsample_map(m, (image.shape[0], image.shape[1]))
                    write_anomaly_map(anomaly_map_path(tmp / "maps", category.name, rec.type, rec.stem), full)
                rows.append(
                    {
                        "key": rec.key,
                        "split": rec.split,
                        "type": rec.type,
                        "label": rec.label,
                        "patch_hist": float(p),
                        "lgst": float(s),
                    }
                )
        table = pd.DataFrame(rows)
        is_val = (table["split"] == "validation").to_numpy()
        fused = fuse_scores(
            {b: table[b].to_numpy() for b in BRANCHES}, is_val, cfg["weights"], cfg["lower"], cfg["upper"]
        )
        for name, values in fused.items():
            table[name] = values
        table.to_parquet(tmp / "scores.parquet", index=False)
        seconds = time.perf_counter() - start
        test = table[table["split"] == "test"]
        official = evaluate_maps(category.root.parent, category.name, tmp / "maps", progress=False)
        metrics = category_metrics(table, official)
        metrics["images"] = {"validation": int(is_val.sum()), "test": len(test)}
        metrics["seconds"] = round(seconds, 2)
        metrics["seconds_per_image"] = round(seconds / max(1, len(table)), 4)
        metrics["lgst_image_size"] = lgst_cfg.image_size
    return table, metrics
