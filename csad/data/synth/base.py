"""The contract every synthetic category renderer follows.

A renderer draws one image for a given random generator, image size and defect (``None`` = a good image) and
returns a :class:`Sample`: the RGB image, the true component class of every pixel, one boolean mask per
annotated defect region (MVTec LOCO policy) and a small ``facts`` dict describing the scene's logical content
(counts, kinds) so tests can check that good images satisfy the category's constraints and logical anomalies
break them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

DefectKind = Literal["logical", "structural"]


@dataclass(frozen=True)
class DefectSpec:
    """One defect type of a category, as it appears in ``defects_config.json``.

    ``saturation`` is an int pixel count when ``relative`` is False (MVTec LOCO's absolute threshold, e.g. the
    nominal area of a missing object at the rendered size) and a float in (0, 1] of the defect's area otherwise.
    """

    name: str
    kind: DefectKind
    saturation: int | float
    relative: bool


@dataclass
class Sample:
    """One rendered image with its ground truth."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    component_gt: np.ndarray  # (H, W) uint8, 0 = background, k = component class k
    defect_masks: list[np.ndarray] = field(default_factory=list)  # each (H, W) bool, one per defect region
    facts: dict[str, Any] = field(default_factory=dict)


class CategoryRenderer(ABC):
    """Base class of the synthetic categories."""

    #: category folder name, e.g. "breakfast_box"
    name: str
    #: component class names, index 1..K in component_gt (index 0 is the background)
    component_classes: tuple[str, ...]

    @abstractmethod
    def defect_specs(self, size: int) -> list[DefectSpec]:
        """Return every defect type of the category (logical first, then structural) at image ``size``."""

    @abstractmethod
    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one image of side ``size`` with ``defect`` (a name from :meth:`defect_specs`, or None)."""

    @abstractmethod
    def violations(self, facts: dict[str, Any]) -> list[str]:
        """Return the category's logical constraints that a scene with ``facts`` breaks (empty = normal)."""

    def defect_names(self, kind: DefectKind) -> list[str]:
        """Return the names of the defects of ``kind`` in declaration order."""
        return [d.name for d in self.defect_specs(256) if d.kind == kind]
