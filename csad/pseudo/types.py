"""Data passed between the pseudo-label steps, and the backend protocols of the foundation steps.

Instance maps are 2-D integer arrays (uint16 in memory, uint8/uint16 PNG on disk): 0 = nothing, 1..n = instances
ranked by decreasing area (so smaller instances were painted last and are never hidden by larger ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class GroundingResult:
    """Open-vocabulary grounding of one image (Grounded-SAM's X_sem or its classical stand-in)."""

    instances: np.ndarray  # (H, W) uint16 instance map of the foreground (non-background) detections
    background: np.ndarray  # (H, W) bool: union of the background-phrase detections (all False if none)
    phrases: list[str] = field(default_factory=list)  # phrase of instance k at index k-1
    warnings: list[str] = field(default_factory=list)  # e.g. "no detections": the image is kept, just empty


@dataclass
class ProposalResult:
    """Part-level object proposals of one image (SAM automatic masks or a classical over-segmentation)."""

    instances: np.ndarray  # (H, W) uint16: proposals split into connected components, minus the background
    background: np.ndarray  # (H, W) bool: the corner-point background (SAM prompted with the 8 corner points)
    warnings: list[str] = field(default_factory=list)


class GroundingBackend(Protocol):
    """Callable that grounds the text ``prompt`` (``"tag1 . tag2 ."``) in an RGB uint8 image."""

    def __call__(self, image: np.ndarray, prompt: str) -> GroundingResult: ...


class ProposalBackend(Protocol):
    """Callable that returns part-level proposals of an RGB uint8 image."""

    def __call__(self, image: np.ndarray) -> ProposalResult: ...
