"""The ``score`` stage: the deployed detector (``models/<category>/detector.pt``) on validation/good and the test
set; maps, segmentations, scores, verdicts and metrics.

The detector (:class:`csad.detector.model.CsadDetector`) holds the fusion statistics and the decision threshold
fitted on validation/good by the ``detector`` stage, so the numbers evaluated here are the deployed model's. The
anomaly map is written at the original image resolution in the official MVTec LOCO layout, so ``csad evaluate`` can
reread it. Writes ``data/scores/<category>/`` and ``metrics/<category>.json`` (:mod:`csad.eval.metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from csad.artifacts import stage_metrics, stage_output
from csad.data.loco import LocoCategory
from csad.detector.model import CsadDetector
from csad.detector.predict import TorchRunner, iter_predictions
from csad.detector.settings import ScoreSettings
from csad.eval.evaluate import evaluate_maps
from csad.eval.maps import anomaly_map_path, write_anomaly_map
from csad.eval.metrics import category_metrics, no_test_metrics, verdict_metrics
from csad.io import atomic_dir, write_json
from csad.params import build_with_kwargs
from csad.pipeline.stage import StageInputs
from csad.pseudo.store import write_map


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``score`` stage for one category; return the metrics written to ``metrics/<category>.json``."""
    name = inputs.category.name
    _, metrics = score_category(
        inputs.category, stage_output("detector", name), inputs.config, inputs.device(), stage_output("score", name)
    )
    metrics = {"category": name, **metrics}
    write_json(stage_metrics("score", name), metrics)
    return metrics


def score_category(
    category: LocoCategory,
    detector_path: Path,
    cfg: Mapping[str, Any],
    device: str,
    out_dir: Path,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score validation/good and every test image of ``category`` with the detector at ``detector_path``.

    Writes ``out_dir``: ``scores.parquet`` (key, split, type, label, raw and normalised branch scores, fused score,
    verdict), ``maps/<category>/test/<type>/<stem>.tiff`` (anomaly maps at the original resolution) and
    ``segmentation/<split>/<type>/<stem>.png`` (component labels at the original resolution). Returns the table and
    the metrics (image AUROC per branch and fused, AU-sPRO of the maps, verdict rates). A category without test
    images gets its validation rows and metrics that say there is nothing to evaluate.

    Raises:
        ParamsError: an unknown key or a bad value in ``cfg`` (the ``score`` section, :class:`ScoreSettings`).
        CheckpointError: the detector is missing or unusable.
    """
    settings = build_with_kwargs(ScoreSettings, dict(cfg), "score")
    detector = CsadDetector.load(detector_path, device)
    records = category.split("validation") + category.split("test")
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        predictions = iter_predictions(
            TorchRunner(detector), [r.path for r in records], settings.batch_size, progress=True, total=len(records)
        )
        for rec, pred in zip(records, predictions, strict=True):
            if pred.error is not None:
                raise RuntimeError(f"{rec.path}: {pred.error}")  # the dataset reader already accepted it
            assert pred.segmentation is not None and pred.anomaly_map is not None
            write_map(tmp / "segmentation" / rec.split / rec.type / f"{rec.stem}.png", pred.segmentation)
            if rec.split == "test":
                write_anomaly_map(anomaly_map_path(tmp / "maps", category.name, rec.type, rec.stem), pred.anomaly_map)
            rows.append(
                {
                    "key": rec.key,
                    "split": rec.split,
                    "type": rec.type,
                    "label": rec.label,
                    "patch_hist": pred.patch_hist_raw,
                    "lgst": pred.lgst_raw,
                    "patch_hist_norm": pred.patch_hist,
                    "lgst_norm": pred.lgst,
                    "fused": pred.score,
                    "verdict": pred.verdict,
                }
            )
        table = pd.DataFrame(rows)
        table.to_parquet(tmp / "scores.parquet", index=False)
        seconds = time.perf_counter() - start
        test = table[table["split"] == "test"]
        if len(test):
            official = evaluate_maps(category.root.parent, category.name, tmp / "maps", progress=False)
            metrics = category_metrics(table, official)
        else:
            metrics = no_test_metrics(category.name)
        metrics["verdict"] = verdict_metrics(table, float(detector.threshold))
        metrics["images"] = {"validation": int((table["split"] == "validation").sum()), "test": len(test)}
        metrics["seconds"] = round(seconds, 2)
        metrics["seconds_per_image"] = round(seconds / max(1, len(table)), 4)
        metrics["detector"] = {"image_size": detector.image_size, "shared_backbone": detector.config.shared_backbone}
    return table, metrics
