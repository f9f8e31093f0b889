"""Evaluation: official-style AU-sPRO, image-level AUROC per anomaly type, and anomaly-map I/O."""

from csad.eval.auroc import ANOMALY_KINDS, IMAGE_TYPES, image_auroc, roc_points
from csad.eval.maps import MAP_TYPES, anomaly_map_path, read_anomaly_map, write_anomaly_map
from csad.eval.spro import (
    DEFAULT_LIMITS,
    GtChannel,
    SproCurve,
    au_spro,
    compute_au_spro,
    saturation_area,
    spro_curve,
)

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_LIMITS",
    "IMAGE_TYPES",
    "MAP_TYPES",
    "GtChannel",
    "SproCurve",
    "anomaly_map_path",
    "au_spro",
    "compute_au_spro",
    "image_auroc",
    "read_anomaly_map",
    "roc_points",
    "saturation_area",
    "spro_curve",
    "write_anomaly_map",
]
