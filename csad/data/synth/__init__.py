"""Procedurally rendered MVTec-LOCO-like benchmark (five categories with logical and structural anomalies, plus two
hard, photo-like variants: ``juice_bottle_photo`` and ``breakfast_box_photo``)."""

from csad.data.synth.base import CategoryRenderer, DefectSpec, Sample
from csad.data.synth.registry import SYNTH_CATEGORIES, get_renderer

__all__ = ["SYNTH_CATEGORIES", "CategoryRenderer", "DefectSpec", "Sample", "get_renderer"]
