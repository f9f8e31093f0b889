"""The ``parts`` params section, importable without OpenCV or scikit-image: :class:`PartSegmentation`, the settings of
the part segmentation that the weight-free backends share. The segmentation itself is
:func:`csad.pseudo.regions.segment_parts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class PartSegmentation:
    """Settings of the part segmentation that the weight-free backends share (params section ``parts``, read by
    ``ground.pretrained``, ``ground.classical`` and ``propose.classical``, so the three cannot drift apart).

    Args:
        work_size: long side of the working resolution, pixels (0 = the image's own); the sizes below are working
            pixels.
        superpixel_scale, superpixel_sigma, superpixel_min_size: Felzenszwalb superpixels
            (``skimage.segmentation.felzenszwalb``).
        merge_threshold: adjacent regions merge (average linkage) while their mean colours (or descriptors) are
            closer than this (Lab units).
        lightness_weight: weight of the Lab lightness difference in that distance.
        min_region: regions smaller than this many pixels join their most similar neighbour.
        thin_radius: parts whose largest inscribed disk has at most this radius (printed lines, outlines, needles)
            join the foreground neighbour they share the longest boundary with (0 = off).
        corner_inset: the 4 inner corner points that define the corner background sit this many pixels inside the
            image edges (released code: 10).

    Raises:
        ValueError: a size or radius below 0, or a value that is not a finite number.
    """

    work_size: int = 256
    superpixel_scale: float = 10.0
    superpixel_sigma: float = 0.5
    superpixel_min_size: int = 8
    merge_threshold: float = 10.0
    lightness_weight: float = 1.0
    min_region: int = 20
    thin_radius: float = 1.0
    corner_inset: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = float(getattr(self, f.name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"parts.{f.name} must be a finite number >= 0, got {getattr(self, f.name)!r}")
            object.__setattr__(self, f.name, int(value) if f.type in ("int", int) else value)

    @classmethod
    def of(cls, value: PartSegmentation | Mapping[str, Any] | None) -> PartSegmentation:
        """Return ``value`` as settings: itself, built from a mapping of the fields above, or the defaults (None)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        return cls(**dict(value))

    def segment(self, work: np.ndarray) -> np.ndarray:
        """Return the (H, W) int32 partition 0..n-1 of the working-resolution RGB uint8 image ``work`` into colour
        parts (:func:`~csad.pseudo.regions.segment_parts` with these settings)."""
        from csad.pseudo.regions import segment_parts

        return segment_parts(
            work,
            self.superpixel_scale,
            self.superpixel_sigma,
            self.superpixel_min_size,
            self.merge_threshold,
            self.lightness_weight,
            self.min_region,
        )
