"""Weight-free stand-ins for Grounded-SAM (object-level grounding) and SAM (part-level proposals).

Both backends work at a working resolution whose long side is ``work_size`` pixels (every size knob below is in
working pixels; label maps are scaled back to the image, by nearest neighbour when enlarging, by area vote when
shrinking). They share one colour segmentation into **parts** (its settings: the params section ``parts``,
:class:`csad.pseudo.regions_config.PartSegmentation`):

1. **Superpixels**: Felzenszwalb-Huttenlocher graph segmentation (``skimage.segmentation.felzenszwalb``) with a
   small ``superpixel_scale``, so that every colour edge of the image is a superpixel boundary.
2. **Region merging**: adjacent regions merge greedily by increasing distance between their mean CIE Lab colours
   (average linkage; the lightness difference is multiplied by ``lightness_weight``) while it is below
   ``merge_threshold`` (Lab units); then regions under ``min_region`` pixels join their most similar neighbour.

:class:`ClassicalProposals` (SAM automatic masks) returns the parts, thin ones (largest inscribed disk radius <=
``thin_radius``: printed lines, outlines) joined to the neighbour they share the longest boundary with, split into
connected components, minus the **corner background**: the parts under the 8 corner points the released code
prompts SAM with ((10, 10), (10, H-10), (W-10, 10), (W-10, H-10) and the 4 image corners).

:class:`ClassicalGrounding` (Grounded-SAM) returns object-level instances and a background. It **ignores the text
prompt** (there is no language model): what is an object and what is background is set by the constructor
arguments, which become per-category params. Two foreground models:

``foreground="regions"`` (default; objects that differ in colour from what they lie on)
    1. *Background* = the corner-background parts, plus every part covering at least ``background_min_fraction`` of
       the image whose mean Lab chroma is at most ``background_max_chroma`` and whose mean lightness lies in
       ``background_lightness`` (grey surfaces: table, tray, box floor, bag, cast shadows).
    2. *Thin* foreground parts join the foreground neighbour they share the longest boundary with (a pushpin's
       needle joins its head, a cable's outline its core).
    3. *Similar* adjacent foreground groups merge by average linkage while their mean colours are closer than
       ``object_merge_threshold``, lightness weighted by ``object_lightness_weight`` (the shaded faces and dark rims
       of one object; 0 = off).
    4. *Holes*: a connected hole of an object (pixels it encloses, whatever they hold) joins it when the hole covers
       at least ``hole_fill_ratio`` times the object's area (a blush on a fruit, the levers of a connector) or is a
       speck (under the minimum object area); smaller holes keep their content (an almond on cereal).
``foreground="contrast"`` (low-contrast objects on a smooth surface, e.g. metal parts in a bag)
    Pixels whose (``contrast_sigma``-smoothed) Lab colour differs from the ``contrast_window`` median-filtered image
    by more than ``contrast_threshold`` are foreground; the mask is closed (``contrast_closing``) then opened
    (``contrast_opening``); bright objects lose the boundary pixels darker than the background by more than
    ``shadow_threshold`` (their cast shadow, within ``shadow_width`` pixels of the boundary); connected components
    touching the image border are dropped (table and container edges). The background is everything else.

Finally each object is split into 8-connected components; objects under ``min_object_fraction`` of the image or with
an inscribed radius under ``min_object_radius`` are dropped; optionally (``split_solidity`` > 0) an object less solid
than that is cut into convex pieces by a distance-transform watershed (touching round objects).

Everything is deterministic and takes about 0.1-0.25 s per 256 px image on one core. The region operations both
backends are built of (and :mod:`csad.pseudo.pretrained` shares) are in :mod:`csad.pseudo.regions`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from csad.pseudo.regions import (
    RegionStats,
    absorb_thin,
    compact_labels,
    corner_regions,
    disk,
    fill_object_holes,
    lab_image,
    merge_regions,
    object_grounding,
    peel_shadows,
    region_stats,
    relabel_by_area,
    solidity,
    split_components,
    split_touching,
    to_full_size,
    to_work_size,
)
from csad.pseudo.regions_config import PartSegmentation
from csad.pseudo.types import GroundingResult, ProposalResult

log = logging.getLogger(__name__)

#: Foreground models of :class:`ClassicalGrounding`.
FOREGROUND_MODES: tuple[str, ...] = ("regions", "contrast")


class _PartSegmenter:
    """The shared colour segmentation (module docstring) at the working resolution."""

    def __init__(self, parts: PartSegmentation | Mapping[str, Any] | None) -> None:
        self.segmentation = PartSegmentation.of(parts)

    def parts(self, work: np.ndarray) -> np.ndarray:
        """Return the partition 0..n-1 of the working-resolution RGB image ``work`` into parts."""
        return self.segmentation.segment(work)


class ClassicalProposals(_PartSegmenter):
    """Part-level proposals (SAM automatic masks' stand-in): colour parts split into connected components, minus the
    corner-point background (module docstring).

    Args:
        parts: the part segmentation (:class:`csad.pseudo.regions_config.PartSegmentation` or a mapping of its fields;
            params section ``parts``; None = its defaults).
        min_area: proposals smaller than this many pixels are dropped.
    """

    def __init__(self, parts: PartSegmentation | Mapping[str, Any] | None = None, min_area: int = 20) -> None:
        super().__init__(parts)
        self.min_area = int(min_area)

    def __call__(self, image: np.ndarray) -> ProposalResult:
        """Return the proposals (uint16 instance map, 1..n by decreasing area) and the corner background."""
        _check_image(image)
        work = to_work_size(image, self.segmentation.work_size)
        labels = self.parts(work)
        bg_ids = sorted(corner_regions(labels, self.segmentation.corner_inset))
        eligible = np.ones(int(labels.max()) + 1, dtype=bool)
        eligible[bg_ids] = False
        if self.segmentation.thin_radius > 0:
            stats = region_stats(labels, lab_image(work))
            labels = absorb_thin(stats, self.segmentation.thin_radius, eligible)[labels]
        background = np.isin(labels, bg_ids)
        keep = np.ones(int(labels.max()) + 1, dtype=bool)
        keep[bg_ids] = False
        instances = split_components(labels, keep, max(1, self.min_area))
        full = image.shape[:2]
        instances = relabel_by_area(to_full_size(instances, full))
        warnings = [] if instances.any() else ["no proposals outside the corner background"]
        background = to_full_size(background, full) & (instances == 0)
        return ProposalResult(instances=instances, background=background, warnings=warnings)


class ClassicalGrounding(_PartSegmenter):
    """Object-level instances and background (Grounded-SAM's stand-in); the text prompt is ignored (module
    docstring). Every ``phrases`` entry is ``"object"``.

    Args:
        parts: the part segmentation, as in :class:`ClassicalProposals` (its ``thin_radius``: foreground parts whose
            inscribed radius is at most this join their longest-boundary foreground neighbour, "regions" only).
        foreground: ``"regions"`` (colour parts grouped into objects) or ``"contrast"`` (difference to the
            median-filtered image).
        background_min_fraction: ("regions") parts covering at least this fraction of the image may be background
            (1 or more = only the corner background) ...
        background_max_chroma: ... when their mean Lab chroma is at most this ...
        background_lightness: ... and their mean lightness lies in this (min, max) range.
        object_merge_threshold: ("regions") adjacent foreground groups closer than this in mean colour merge
            (average linkage; 0 = off).
        object_lightness_weight: weight of the lightness difference in that colour distance.
        hole_fill_ratio: a hole of an object joins it when it covers at least this fraction of the object's area
            (0 = every hole, above 1 = only specks under the minimum object area).
        contrast_window: ("contrast") side of the median filter giving the local background, pixels (odd).
        contrast_threshold: ("contrast") Lab distance to that background above which a pixel is foreground.
        contrast_sigma: ("contrast") Gaussian smoothing of the image first (0 = none).
        contrast_closing, contrast_opening: ("contrast") radii of the morphological closing then opening.
        shadow_threshold: ("contrast") bright objects lose boundary pixels darker than the background by more than
            this (lightness units; 0 = off) ...
        shadow_width: ... within this many pixels of their boundary.
        min_object_fraction: objects covering less than this fraction of the image are dropped.
        min_object_radius: objects whose inscribed radius is under this many pixels are dropped (lines, creases).
        split_solidity: objects less solid (area / convex hull area) than this are cut into convex pieces
            (0 = off) ...
        split_min_area: ... when every piece has at least this many pixels.
    """

    def __init__(
        self,
        parts: PartSegmentation | Mapping[str, Any] | None = None,
        foreground: str = "regions",
        background_min_fraction: float = 0.03,
        background_max_chroma: float = 12.0,
        background_lightness: Sequence[float] = (0.0, 100.0),
        object_merge_threshold: float = 0.0,
        object_lightness_weight: float = 0.2,
        hole_fill_ratio: float = 2.0,
        contrast_window: int = 41,
        contrast_threshold: float = 4.0,
        contrast_sigma: float = 0.7,
        contrast_closing: int = 2,
        contrast_opening: int = 2,
        shadow_threshold: float = 0.0,
        shadow_width: int = 2,
        min_object_fraction: float = 0.001,
        min_object_radius: float = 0.0,
        split_solidity: float = 0.0,
        split_min_area: int = 150,
    ) -> None:
        super().__init__(parts)
        if foreground not in FOREGROUND_MODES:
            raise ValueError(f"foreground must be one of {', '.join(FOREGROUND_MODES)}, got {foreground!r}")
        lightness = [float(v) for v in background_lightness]
        if len(lightness) != 2:
            raise ValueError(f"background_lightness must be (min, max), got {background_lightness!r}")
        self.foreground = foreground
        self.background_min_fraction = float(background_min_fraction)
        self.background_max_chroma = float(background_max_chroma)
        self.background_lightness = (lightness[0], lightness[1])
        self.object_merge_threshold = float(object_merge_threshold)
        self.object_lightness_weight = float(object_lightness_weight)
        self.hole_fill_ratio = float(hole_fill_ratio)
        self.contrast_window = int(contrast_window)
        self.contrast_threshold = float(contrast_threshold)
        self.contrast_sigma = float(contrast_sigma)
        self.contrast_closing = int(contrast_closing)
        self.contrast_opening = int(contrast_opening)
        self.shadow_threshold = float(shadow_threshold)
        self.shadow_width = int(shadow_width)
        self.min_object_fraction = float(min_object_fraction)
        self.min_object_radius = float(min_object_radius)
        self.split_solidity = float(split_solidity)
        self.split_min_area = int(split_min_area)

    def background_parts(self, labels: np.ndarray, stats: RegionStats) -> np.ndarray:
        """Return the (n,) bool background flag of every part of the partition ``labels``."""
        bg = np.zeros(stats.area.size, dtype=bool)
        bg[sorted(corner_regions(labels, self.segmentation.corner_inset))] = True
        lo, hi = self.background_lightness
        big = stats.area >= self.background_min_fraction * labels.size
        grey = stats.chroma <= self.background_max_chroma
        light = (stats.mean[:, 0] >= lo) & (stats.mean[:, 0] <= hi)
        return bg | (big & grey & light)

    def objects(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (int32 object map 0..m, bool background) of ``image`` at the working resolution."""
        work = to_work_size(image, self.segmentation.work_size)
        min_area = max(1, math.ceil(self.min_object_fraction * work.shape[0] * work.shape[1]))
        if self.foreground == "contrast":
            grouped, background = self._contrast_groups(work)
        else:
            grouped, background = self._region_groups(work)
        grouped = fill_object_holes(grouped, self.hole_fill_ratio, min_area)
        keep = np.ones(int(grouped.max()) + 1, dtype=bool)
        keep[0] = False
        if self.min_object_radius > 0:
            radius = np.zeros(keep.size)
            dist = cv2.distanceTransform((grouped > 0).astype(np.uint8), cv2.DIST_L2, 3)
            np.maximum.at(radius, grouped.ravel(), dist.ravel())
            keep &= radius >= self.min_object_radius
        objects = split_components(grouped, keep, min_area)
        if self.split_solidity > 0:
            objects = self._split(objects, min_area)
        if self.foreground == "contrast":
            background = objects == 0
        return objects, background

    def _region_groups(self, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (object groups 0 = none, background) of the "regions" foreground model."""
        lab = lab_image(work)
        labels = self.parts(work)
        stats = region_stats(labels, lab)
        bg = self.background_parts(labels, stats)
        background = bg[labels]
        groups = absorb_thin(stats, self.segmentation.thin_radius, ~bg)[labels]
        fg_pixels = ~background
        if self.object_merge_threshold > 0:
            compact = compact_labels(groups)
            allowed = np.zeros(int(compact.max()) + 1, dtype=bool)
            allowed[compact[fg_pixels]] = True
            groups = merge_regions(
                compact, lab, self.object_merge_threshold, self.object_lightness_weight, allowed=allowed
            )
        return np.where(fg_pixels, compact_labels(groups) + 1, 0).astype(np.int32), background

    def _contrast_groups(self, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (object groups 0 = none, background) of the "contrast" foreground model."""
        smooth = cv2.GaussianBlur(work, (0, 0), self.contrast_sigma) if self.contrast_sigma > 0 else work
        k = max(3, self.contrast_window | 1)
        med = np.stack([cv2.medianBlur(np.ascontiguousarray(smooth[..., c]), k) for c in range(3)], axis=-1)
        delta = lab_image(smooth) - lab_image(med)
        fg = (np.linalg.norm(delta, axis=-1) > self.contrast_threshold).astype(np.uint8)
        if self.contrast_closing > 0:
            fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, disk(self.contrast_closing))
        if self.contrast_opening > 0:
            fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, disk(self.contrast_opening))
        mask = fg > 0
        if self.shadow_threshold > 0:
            mask = peel_shadows(mask, delta[..., 0], self.shadow_threshold, self.shadow_width)
        n, cc = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        border = np.unique(np.concatenate([cc[0], cc[-1], cc[:, 0], cc[:, -1]]))
        keep = np.ones(n, dtype=bool)
        keep[border] = False
        keep[0] = False
        groups = np.where(keep[cc], cc, 0).astype(np.int32)
        return groups, groups == 0

    def _split(self, objects: np.ndarray, min_area: int) -> np.ndarray:
        """Return ``objects`` with every object less solid than ``split_solidity`` cut into convex pieces."""
        out = np.zeros_like(objects)
        next_id = 1
        for value in range(1, int(objects.max()) + 1):
            mask = objects == value
            if not mask.any():
                continue
            pieces = (
                split_touching(mask, max(self.split_min_area, min_area))
                if solidity(mask) < self.split_solidity
                else [mask]
            )
            for piece in pieces:
                out[piece] = next_id
                next_id += 1
        return out

    def __call__(self, image: np.ndarray, prompt: str = "") -> GroundingResult:
        """Return the object instances (uint16, 1..n by decreasing area) and the background of ``image``;
        ``prompt`` is ignored."""
        _check_image(image)
        return object_grounding(*self.objects(image), image.shape[:2])


def _check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
