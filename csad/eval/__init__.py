"""Evaluation: official-style AU-sPRO, image-level AUROC per anomaly type, and anomaly-map I/O."""

from csad.eval.auroc import ANOMALY_KINDS, IMAGE_TYPES, auroc_undefined_reason, image_auroc, roc_points
from csad.eval.maps import (
    MAP_SUFFIXES,
    MAP_TYPES,
    anomaly_map_path,
    index_anomaly_maps,
    read_anomaly_map,
    write_anomaly_map,
)
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
    "MAP_SUFFIXES",
    "MAP_TYPES",
    "GtChannel",
    "SproCurve",
    "anomaly_map_path",
    "au_spro",
    "auroc_undefined_reason",
    "compute_au_spro",
    "image_auroc",
    "index_anomaly_maps",
    "read_anomaly_map",
    "roc_points",
    "saturation_area",
    "spro_curve",
    "write_anomaly_map",
]
