"""Score a folder of anomaly maps (official MVTec LOCO layout) against a dataset: AU-sPRO and image AUROC.

This is what ``csad evaluate`` runs, so any method's ``.tiff`` / ``.tif`` maps can be checked, not only ours. The
output mirrors the official ``metrics.json``: ``localization.auc_spro.{logical_anomalies,structural_anomalies,mean}``
at every integration limit and ``classification.auc_roc.{logical_anomalies,structural_anomalies,mean}`` with the
image score = max of the map (the official rule; CSAD's fused score is evaluated by the ``score`` stage instead).

Any subset of test image types is accepted. A metric that cannot be computed is ``null`` with a
``"<key>_reason"`` string beside it (:func:`csad.io.set_undefined`), and each ``mean`` averages the defined types.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from csad.data.loco import ANOMALY_TYPES, DatasetError, LocoCategory, image_size, read_gt_channels
from csad.eval.auroc import ANOMALY_KINDS, image_auroc
from csad.eval.maps import MAP_SUFFIXES, anomaly_map_path, index_anomaly_maps, read_anomaly_map
from csad.eval.spro import DEFAULT_LIMITS, GtChannel, compute_au_spro
from csad.io import REASON_SUFFIX, set_undefined

log = logging.getLogger(__name__)


def evaluate_maps(
    dataset_root: Path | str,
    category: str,
    maps_root: Path | str,
    limits: Sequence[float] = DEFAULT_LIMITS,
    progress: bool = True,
) -> dict[str, Any]:
    """Return the official-style metrics of the maps under ``maps_root/<category>/test/`` for ``category``.

    Every test image needs one map ``<stem>.tiff`` / ``.tif`` (any suffix case) at its image's size.

    Returns:
        ``{"localization": {"auc_spro": {type: {str(limit): value} | None, ...}}, "classification": {"auc_roc":
        {type: value | None, ...}}}`` with type in ``logical_anomalies``, ``structural_anomalies``, ``mean``;
        values in [0, 1]; an undefined one is None with ``"<type>_reason"`` beside it. AU-sPRO of a type uses its
        anomalous images plus all good test images; 'mean' averages the defined types.

    Raises:
        DatasetError: the dataset is malformed, or a map is missing, ambiguous (``x.tif`` and ``x.tiff``),
            unreadable, non-finite or of another size than its image (the message names both files).
    """
    cat = LocoCategory.open(dataset_root, category)
    tests = cat.split("test")
    indexes = {t: index_anomaly_maps(Path(maps_root) / category / "test" / t) for t in {r.type for r in tests}}
    maps: dict[str, np.ndarray] = {}
    channels: dict[str, list[GtChannel]] = {}
    for rec in tqdm(tests, desc=f"evaluate {category}", unit="map", disable=not progress):
        path = indexes[rec.type].get(rec.stem)
        if path is None:
            expected = anomaly_map_path(maps_root, category, rec.type, rec.stem)
            raise DatasetError(
                f"missing anomaly map {expected} for test image {rec.path} (suffix {' or '.join(MAP_SUFFIXES)}, "
                "any case)"
            )
        try:
            amap = read_anomaly_map(path)
        except (ValueError, OSError) as err:
            raise DatasetError(str(err)) from err
        gts = [
            GtChannel(m, d.saturation_threshold, d.relative_saturation) for m, d in read_gt_channels(rec, cat.defects)
        ]
        size = image_size(rec.path)
        if size is None:
            raise DatasetError(f"unreadable image {rec.path}: missing, empty or not an image")
        if amap.shape != (size[1], size[0]):
            raise DatasetError(
                f"anomaly map {path} is {amap.shape[1]}x{amap.shape[0]} but image {rec.path} is "
                f"{size[0]}x{size[1]}: write maps at the original image size"
            )
        maps[rec.key] = amap
        channels[rec.key] = gts
    good = [r.key for r in tests if r.type == "good"]
    result: dict[str, Any] = {"localization": {"auc_spro": {}}, "classification": {"auc_roc": {}}}
    spro: dict[str, Any] = result["localization"]["auc_spro"]
    for type_ in ANOMALY_TYPES:
        anomalous = [r.key for r in tests if r.type == type_]
        keys = good + anomalous
        reason = _spro_undefined_reason(type_, good, anomalous, channels)
        if reason is not None:
            set_undefined(spro, type_, reason)
            continue
        values = compute_au_spro([maps[k] for k in keys], [channels[k] for k in keys], limits=limits)
        spro[type_] = {str(k): float(v) for k, v in values.items()}
    defined = [spro[t] for t in ANOMALY_TYPES if spro[t] is not None]
    if defined:
        spro["mean"] = {str(k): float(np.mean([d[str(k)] for d in defined])) for k in limits}
    else:
        set_undefined(spro, "mean", "no anomaly type has AU-sPRO: " + _reasons(spro, ANOMALY_TYPES))
    scores = [float(maps[r.key].max()) for r in tests]
    auc = image_auroc(scores, [r.type for r in tests])
    result["classification"]["auc_roc"] = _official_names(auc)
    _log_undefined(category, "AU-sPRO", spro)
    _log_undefined(category, "image AUROC (max of map)", result["classification"]["auc_roc"])
    return result


def _spro_undefined_reason(
    type_: str, good: list[str], anomalous: list[str], channels: Mapping[str, list[GtChannel]]
) -> str | None:
    """Return why AU-sPRO of ``type_`` (its images plus all good ones) cannot be computed, or None."""
    if not anomalous:
        return f"no {type_} test images"
    if not any(channels[k] for k in anomalous):
        return f"no ground-truth channels in the {type_} test images"
    if not good and all(_covered(channels[k]) for k in anomalous):
        return "no defect-free pixels (no good test images and the defects cover every anomalous image)"
    return None


def _covered(chans: Sequence[GtChannel]) -> bool:
    """Return True if the union of the channel masks of one image covers every pixel (no defect-free pixel)."""
    if not chans:
        return False
    union = np.zeros_like(chans[0].mask)
    for ch in chans:
        union |= ch.mask
    return bool(union.all())


def _official_names(auc: Mapping[str, Any]) -> dict[str, Any]:
    """Return :func:`image_auroc`'s result with the official keys (``logical`` -> ``logical_anomalies``)."""
    out: dict[str, Any] = {}
    for key, value in auc.items():
        base = key.removesuffix(REASON_SUFFIX)
        name = ANOMALY_KINDS.get(base, base)
        out[name + (REASON_SUFFIX if key != base else "")] = value
    return out


def _reasons(values: Mapping[str, Any], keys: Sequence[str]) -> str:
    """Return ``"key: reason; ..."`` of the undefined ``keys`` of ``values``."""
    return "; ".join(f"{k}: {values.get(k + REASON_SUFFIX)}" for k in keys if values.get(k) is None)


def _log_undefined(category: str, what: str, values: Mapping[str, Any]) -> None:
    """Log one warning per undefined value of ``values``."""
    for key, value in values.items():
        if value is None and not key.endswith(REASON_SUFFIX):
            log.warning("%s: %s %s is undefined: %s", category, what, key, values.get(key + REASON_SUFFIX))
