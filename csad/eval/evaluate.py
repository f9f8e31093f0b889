"""Score a folder of anomaly maps (official MVTec LOCO layout) against a dataset: AU-sPRO and image AUROC.

This is what ``csad evaluate`` runs, so any method's ``.tiff`` maps can be checked, not only ours. The output
mirrors the official ``metrics.json``: ``localization.auc_spro.{logical_anomalies,structural_anomalies,mean}``
at every integration limit and ``classification.auc_roc.{logical_anomalies,structural_anomalies,mean}`` with the
image score = max of the map (the official rule; CSAD's fused score is evaluated by the ``score`` stage instead).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from csad.data.loco import DatasetError, LocoCategory, read_gt_channels
from csad.eval.auroc import image_auroc
from csad.eval.maps import anomaly_map_path, read_anomaly_map
from csad.eval.spro import DEFAULT_LIMITS, GtChannel, compute_au_spro

log = logging.getLogger(__name__)


def evaluate_maps(
    dataset_root: Path | str,
    category: str,
    maps_root: Path | str,
    limits: Sequence[float] = DEFAULT_LIMITS,
    progress: bool = True,
) -> dict[str, Any]:
    """Return the official-style metrics of the maps under ``maps_root/<category>/test/`` for ``category``.

    Raises:
        DatasetError: the dataset is malformed, or a map is missing or has another size than its image.
    """
    cat = LocoCategory.open(dataset_root, category)
    tests = cat.split("test")
    maps: dict[str, np.ndarray] = {}
    channels: dict[str, list[GtChannel]] = {}
    for rec in tqdm(tests, desc=f"evaluate {category}", unit="map", disable=not progress):
        path = anomaly_map_path(maps_root, category, rec.type, rec.stem)
        try:
            amap = read_anomaly_map(path)
        except FileNotFoundError as err:
            raise DatasetError(f"missing anomaly map {path} for test image {rec.path}") from err
        except ValueError as err:
            raise DatasetError(str(err)) from err
        gts = [
            GtChannel(m, d.saturation_threshold, d.relative_saturation) for m, d in read_gt_channels(rec, cat.defects)
        ]
        shape = gts[0].mask.shape if gts else _image_shape(rec.path)
        if amap.shape != shape:
            raise DatasetError(
                f"anomaly map {path} is {amap.shape[1]}x{amap.shape[0]} but image {rec.path} is "
                f"{shape[1]}x{shape[0]}: write maps at the original image size"
            )
        maps[rec.key] = amap
        channels[rec.key] = gts
    good = [r.key for r in tests if r.type == "good"]
    result: dict[str, Any] = {"localization": {"auc_spro": {}}, "classification": {"auc_roc": {}}}
    spro = result["localization"]["auc_spro"]
    for type_ in ("logical_anomalies", "structural_anomalies"):
        keys = good + [r.key for r in tests if r.type == type_]
        if not any(channels[k] for k in keys):
            log.warning("%s: no %s images; AU-sPRO for it is skipped", category, type_)
            continue
        values = compute_au_spro([maps[k] for k in keys], [channels[k] for k in keys], limits=limits)
        spro[type_] = {str(k): float(v) for k, v in values.items()}
    if len(spro) == 2:
        spro["mean"] = {
            str(k): 0.5 * (spro["logical_anomalies"][str(k)] + spro["structural_anomalies"][str(k)]) for k in limits
        }
    scores = [float(maps[r.key].max()) for r in tests]
    auc = image_auroc(scores, [r.type for r in tests])
    result["classification"]["auc_roc"] = {
        "logical_anomalies": auc["logical"],
        "structural_anomalies": auc["structural"],
        "mean": auc["mean"],
    }
    return result


def _image_shape(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return (im.height, im.width)
