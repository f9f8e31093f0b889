"""Weight-free stand-ins for Grounded-SAM (object-level grounding) and SAM (part-level proposals).

Both backends work at a working resolution whose long side is ``work_size`` pixels (every size knob below is in
working pixels; label maps are scaled back to the image, by nearest neighbour when enlarging, by area vote when
shrinking). They share one colour segmentation into **parts**:

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

Everything is deterministic and takes about 0.1-0.25 s per 256 px image on one core.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import felzenszwalb, watershed

from csad.pseudo.types import GroundingResult, ProposalResult

log = logging.getLogger(__name__)

#: Foreground models of :class:`ClassicalGrounding`.
FOREGROUND_MODES: tuple[str, ...] = ("regions", "contrast")


# ------------------------------------------------------------------------------------------------------------------
# colour segmentation and region helpers
# ------------------------------------------------------------------------------------------------------------------
def to_work_size(image: np.ndarray, work_size: int) -> np.ndarray:
    """Return ``image`` resized so its long side is ``work_size`` (area interpolation to shrink, cubic to enlarge;
    0 = unchanged)."""
    h, w = image.shape[:2]
    if work_size <= 0 or max(h, w) == work_size:
        return image
    f = work_size / float(max(h, w))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)


def to_full_size(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return the label map ``labels`` resized to ``shape`` (H, W): nearest neighbour when enlarging; when
    shrinking, each output pixel takes the label covering the largest part of it if that is at least half (area vote),
    0 otherwise."""
    if labels.shape == tuple(shape):
        return labels
    h, w = shape
    if h * w >= labels.size:
        dtype = labels.dtype
        src = labels.astype(np.int32 if dtype != np.bool_ else np.uint8)
        return cv2.resize(src, (w, h), interpolation=cv2.INTER_NEAREST).astype(dtype)
    if labels.dtype == np.bool_:
        return cv2.resize(labels.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    out = np.zeros((h, w), dtype=labels.dtype)
    best = np.full((h, w), 0.5, dtype=np.float32)
    for value in np.unique(labels).tolist():
        if value == 0:
            continue
        cover = cv2.resize((labels == value).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        win = cover >= best
        out[win] = value
        best[win] = cover[win]
    return out


def lab_image(image: np.ndarray) -> np.ndarray:
    """Return the (H, W, 3) float32 CIE Lab image (L 0..100, a and b about -100..100) of an RGB uint8 image."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def adjacency(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (a, b, length): the pairs a < b of 4-adjacent labels and the number of pixel pairs they share."""
    n = int(labels.max()) + 1
    lab = labels.astype(np.int64, copy=False)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    diff = a != b
    lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
    key, count = np.unique(lo * n + hi, return_counts=True)
    return key // n, key % n, count


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """Return ``labels`` renumbered 0..n-1 in order of first appearance in raster order (deterministic)."""
    flat = labels.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].reshape(labels.shape).astype(np.int32)


def merge_regions(
    labels: np.ndarray,
    lab: np.ndarray,
    threshold: float,
    lightness_weight: float = 1.0,
    min_region: int = 0,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``labels`` after average-linkage merging of adjacent regions (int32, renumbered 0..n-1).

    Adjacent regions merge by increasing colour distance ``sqrt((lightness_weight dL)^2 + da^2 + db^2)`` between
    their mean Lab colours while it is below ``threshold`` (means are updated after each merge); then regions
    smaller than ``min_region`` pixels join their most similar neighbour, smallest first. ``allowed`` (a bool
    array over the input labels) restricts merging to pairs of allowed regions.

    ``lab`` may have more than 3 channels (H, W, C): the distance is then the Euclidean distance of the C-channel
    region means, channel 0 scaled by ``lightness_weight`` (the pretrained backend appends texture features to
    Lab, :mod:`csad.pseudo.pretrained`).
    """
    labels = compact_labels(labels)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    channels = int(lab.shape[-1])
    sums = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(channels)], axis=1)
    sums[:, 0] *= lightness_weight
    cnt: list[float] = count.tolist()
    acc: list[list[float]] = sums.tolist()
    ok = [True] * n if allowed is None else [bool(v) for v in np.asarray(allowed)[:n]]
    a_idx, b_idx, length = adjacency(labels)
    nbr: list[dict[int, int]] = [{} for _ in range(n)]
    for a, b, ln in zip(a_idx.tolist(), b_idx.tolist(), length.tolist(), strict=True):
        nbr[a][b] = ln
        nbr[b][a] = ln
    parent = list(range(n))
    alive = [c > 0 for c in cnt]

    def dist(a: int, b: int) -> float:
        ca, cb = cnt[a], cnt[b]
        sa, sb = acc[a], acc[b]
        return math.sqrt(sum((sa[i] / ca - sb[i] / cb) ** 2 for i in range(channels)))

    def join(a: int, b: int, heap: list[tuple[float, int, int]] | None) -> None:
        cnt[a] += cnt[b]
        acc[a] = [x + y for x, y in zip(acc[a], acc[b], strict=True)]
        alive[b] = False
        parent[b] = a
        for c, ln in nbr[b].items():
            if c == a:
                continue
            del nbr[c][b]
            nbr[c][a] = nbr[c].get(a, 0) + ln
            nbr[a][c] = nbr[a].get(c, 0) + ln
        nbr[a].pop(b, None)
        nbr[b] = {}
        if heap is not None:
            for c in nbr[a]:
                if ok[c]:
                    heapq.heappush(heap, (dist(a, c), min(a, c), max(a, c)))

    heap = [(dist(a, b), a, b) for a, b in zip(a_idx.tolist(), b_idx.tolist(), strict=True) if ok[a] and ok[b]]
    heapq.heapify(heap)
    while heap:
        d, a, b = heapq.heappop(heap)
        if d >= threshold:
            break
        if not (alive[a] and alive[b]) or b not in nbr[a]:
            continue
        if abs(dist(a, b) - d) > 1e-9:  # stale entry: the pair was re-pushed with its new distance
            continue
        if cnt[a] < cnt[b] or (cnt[a] == cnt[b] and a > b):
            a, b = b, a
        join(a, b, heap)
    if min_region > 0:
        small = sorted((i for i in range(n) if alive[i] and cnt[i] < min_region), key=lambda i: (cnt[i], i))
        for s in small:
            if not alive[s] or cnt[s] >= min_region:
                continue
            cands = [c for c in nbr[s] if ok[c] and ok[s]]
            if not cands:
                continue
            best = min(cands, key=lambda c: (dist(s, c), c))
            join(best, s, None)

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    return compact_labels(roots[labels])


def segment_parts(
    image: np.ndarray,
    superpixel_scale: float = 10.0,
    superpixel_sigma: float = 0.5,
    superpixel_min_size: int = 8,
    merge_threshold: float = 10.0,
    lightness_weight: float = 1.0,
    min_region: int = 20,
) -> np.ndarray:
    """Return the (H, W) int32 partition of an RGB uint8 image into colour-homogeneous regions 0..n-1
    (Felzenszwalb superpixels, then :func:`merge_regions` on the Lab image)."""
    sp = felzenszwalb(image, scale=superpixel_scale, sigma=superpixel_sigma, min_size=max(1, superpixel_min_size))
    return merge_regions(sp, lab_image(image), merge_threshold, lightness_weight, min_region)


# ------------------------------------------------------------------------------------------------------------------
# region statistics
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class RegionStats:
    """Per-region statistics of a partition 0..n-1."""

    area: np.ndarray  # (n,) pixels
    mean: np.ndarray  # (n, 3) mean Lab
    radius: np.ndarray  # (n,) radius of the largest inscribed disk (distance transform maximum), pixels
    pairs: dict[tuple[int, int], int]  # (a, b) with a < b -> shared boundary length

    @property
    def chroma(self) -> np.ndarray:
        """Return the (n,) chroma sqrt(a^2 + b^2) of the mean colours."""
        return np.hypot(self.mean[:, 1], self.mean[:, 2])


def region_stats(labels: np.ndarray, lab: np.ndarray) -> RegionStats:
    """Return the :class:`RegionStats` of the partition ``labels`` (values 0..n-1) of the Lab image ``lab``."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], axis=1)
    mean /= np.maximum(area, 1)[:, None]
    # distance to the nearest pixel of another region (or outside the image)
    inner = np.ones(labels.shape, dtype=np.uint8)
    dh = labels[:, 1:] != labels[:, :-1]
    dv = labels[1:, :] != labels[:-1, :]
    inner[:, 1:][dh] = 0
    inner[:, :-1][dh] = 0
    inner[1:, :][dv] = 0
    inner[:-1, :][dv] = 0
    padded = cv2.copyMakeBorder(inner, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    radius = np.zeros(n)
    np.maximum.at(radius, flat, dist.ravel())
    a, b, length = adjacency(labels)
    pairs = {(int(x), int(y)): int(ln) for x, y, ln in zip(a, b, length, strict=True)}
    return RegionStats(area, mean, radius, pairs)


def corner_points(shape: tuple[int, int], inset: int = 10) -> list[tuple[int, int]]:
    """Return the 8 integer (x, y) corner prompts of :func:`csad.pseudo.proposals.corner_points` (the released
    code's SAM background points), clipped into an image of ``shape`` = (H, W)."""
    from csad.pseudo.proposals import corner_points as sam_corner_points

    return [(int(x), int(y)) for x, y in sam_corner_points(shape[0], shape[1], inset)]


def corner_regions(labels: np.ndarray, inset: int = 10) -> set[int]:
    """Return the region ids under the 8 corner points of :func:`corner_points`."""
    return {int(labels[y, x]) for x, y in corner_points(labels.shape, inset)}


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def absorb_thin(stats: RegionStats, thin_radius: float, eligible: np.ndarray) -> np.ndarray:
    """Return a (n,) array mapping every region to its group: each eligible region whose inscribed radius is at
    most ``thin_radius`` is joined to the eligible neighbour with which it shares the longest boundary (thin pieces
    may chain, e.g. the outline, core and highlight of a cable); thin regions without an eligible neighbour stay
    alone."""
    n = stats.area.size
    uf = _UnionFind(n)
    if thin_radius <= 0:
        return np.arange(n)
    thin = (stats.radius <= thin_radius) & eligible
    best: dict[int, tuple[int, int]] = {}
    for (a, b), ln in stats.pairs.items():
        for x, y in ((a, b), (b, a)):
            if thin[x] and eligible[y] and (x not in best or (ln, -y) > (best[x][0], -best[x][1])):
                best[x] = (ln, y)
    for x, (_, y) in sorted(best.items()):
        uf.union(x, y)
    return np.array([uf.find(i) for i in range(n)])


def relabel_by_area(instances: np.ndarray) -> np.ndarray:
    """Return a uint16 instance map with the non-zero values renumbered 1..n by decreasing area (ties: first
    pixel in raster order)."""
    flat = instances.ravel()
    values, first, counts = np.unique(flat, return_index=True, return_counts=True)
    keep = values != 0
    values, first, counts = values[keep], first[keep], counts[keep]
    order = np.lexsort((first, -counts))
    lut = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.uint16)
    lut[values[order]] = np.arange(1, values.size + 1, dtype=np.uint16)
    return lut[instances]


def split_components(labels: np.ndarray, keep: np.ndarray, min_area: int) -> np.ndarray:
    """Return an int32 instance map: every kept label (``keep`` is a bool array over label values) split into
    its 8-connected components, those of at least ``min_area`` pixels numbered 1..m (0 elsewhere)."""
    out = np.zeros(labels.shape, dtype=np.int32)
    next_id = 1
    mask_all = keep[labels]
    if not mask_all.any():
        return out
    # connected components of each label value at once: component ids of the masked label map
    ids = np.where(mask_all, labels + 1, 0).astype(np.int32)
    for value in np.unique(ids[ids > 0]).tolist():
        sub = (ids == value).astype(np.uint8)
        n, cc, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] >= min_area:
                out[cc == k] = next_id
                next_id += 1
    return out


def split_touching(mask: np.ndarray, min_piece: int, footprint: int = 5) -> list[np.ndarray]:
    """Return ``mask`` cut into convex-ish pieces by a watershed on its distance transform (one marker per
    distance-transform peak at least ``footprint`` apart), or [mask] when that gives one piece or a piece smaller
    than ``min_piece`` pixels."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    peaks = (dist == ndi.maximum_filter(dist, size=2 * footprint + 1)) & (dist > 1.0)
    markers, n = ndi.label(peaks)  # a plateau of equal maxima is one marker
    if n < 2:
        return [mask]
    pieces = watershed(-dist, markers, mask=mask)
    out = [pieces == k for k in range(1, n + 1)]
    out = [p for p in out if p.any()]
    if len(out) < 2 or min(int(p.sum()) for p in out) < min_piece:
        return [mask]
    return out


def fill_object_holes(objects: np.ndarray, ratio: float, min_area: int) -> np.ndarray:
    """Return the object map ``objects`` (0 = none) with holes filled: every connected hole of an object (pixels
    it encloses, whatever they hold) joins the object when the hole covers at least ``ratio`` times the object's
    area (a blush on a fruit, the levers of a connector) or fewer than ``min_area`` pixels (specks); other holes
    keep their content (an almond on cereal). Objects are visited by decreasing area."""
    out = objects.copy()
    values, counts = np.unique(objects[objects > 0], return_counts=True)
    slices = ndi.find_objects(objects)
    for value in values[np.argsort(-counts, kind="stable")].tolist():
        sl = slices[value - 1]
        if sl is None:
            continue
        mask = out[sl] == value
        area = int(mask.sum())
        if area == 0:
            continue
        holes = ndi.binary_fill_holes(mask) & ~mask
        if not holes.any():
            continue
        hl, n = ndi.label(holes)
        sizes = np.bincount(hl.ravel(), minlength=n + 1)
        fill = (sizes >= ratio * area) | (sizes < min_area)
        fill[0] = False
        region = out[sl]
        region[fill[hl]] = value
    return out


def peel_shadows(mask: np.ndarray, delta_l: np.ndarray, threshold: float, width: int) -> np.ndarray:
    """Return ``mask`` without the cast shadows of its bright objects: in every connected component whose median
    lightness difference to the background (``delta_l``) is positive, the pixels within ``width`` pixels of its
    boundary that are darker than the background by more than ``threshold`` are removed."""
    n, cc = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    med = ndi.median(delta_l, cc, index=np.arange(1, n))
    bright = np.zeros(n, dtype=bool)
    bright[1:] = np.asarray(med) > 0
    inner = cv2.erode(mask.astype(np.uint8), _disk(width)) > 0
    peel = mask & ~inner & bright[cc] & (delta_l < -threshold)
    return mask & ~peel


def solidity(mask: np.ndarray) -> float:
    """Return area / convex hull area of ``mask`` (1.0 for an empty or degenerate mask)."""
    pts = cv2.findNonZero(mask.astype(np.uint8))
    if pts is None or len(pts) < 3:
        return 1.0
    hull = cv2.convexHull(pts)
    hull_area = cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1.0
    return min(1.0, float(mask.sum()) / hull_area)


# ------------------------------------------------------------------------------------------------------------------
# backends
# ------------------------------------------------------------------------------------------------------------------
class _PartSegmenter:
    """The shared colour segmentation (module docstring) at the working resolution."""

    def __init__(
        self,
        work_size: int,
        superpixel_scale: float,
        superpixel_sigma: float,
        superpixel_min_size: int,
        merge_threshold: float,
        lightness_weight: float,
        min_region: int,
        corner_inset: int,
    ) -> None:
        self.work_size = int(work_size)
        self.superpixel_scale = float(superpixel_scale)
        self.superpixel_sigma = float(superpixel_sigma)
        self.superpixel_min_size = int(superpixel_min_size)
        self.merge_threshold = float(merge_threshold)
        self.lightness_weight = float(lightness_weight)
        self.min_region = int(min_region)
        self.corner_inset = int(corner_inset)
        if self.work_size < 0:
            raise ValueError(f"work_size must be >= 0, got {work_size}")

    def parts(self, work: np.ndarray) -> np.ndarray:
        """Return the partition 0..n-1 of the working-resolution RGB image ``work`` into parts."""
        return segment_parts(
            work,
            self.superpixel_scale,
            self.superpixel_sigma,
            self.superpixel_min_size,
            self.merge_threshold,
            self.lightness_weight,
            self.min_region,
        )


class ClassicalProposals(_PartSegmenter):
    """Part-level proposals (SAM automatic masks' stand-in): colour parts split into connected components, minus the
    corner-point background (module docstring).

    Args:
        work_size: long side of the working resolution in pixels (0 = the image's own).
        superpixel_scale, superpixel_sigma, superpixel_min_size: Felzenszwalb superpixel parameters.
        merge_threshold: region merging stops at this mean-colour distance (Lab units).
        lightness_weight: weight of the lightness difference in that distance.
        min_region: parts smaller than this many pixels join their most similar neighbour.
        thin_radius: parts whose inscribed radius is at most this many pixels join the non-background neighbour
            they share the longest boundary with (0 = off).
        corner_inset: the 4 inner corner prompts sit this many pixels inside the image edges (released code: 10).
        min_area: proposals smaller than this many pixels are dropped.
    """

    def __init__(
        self,
        work_size: int = 256,
        superpixel_scale: float = 10.0,
        superpixel_sigma: float = 0.5,
        superpixel_min_size: int = 8,
        merge_threshold: float = 10.0,
        lightness_weight: float = 1.0,
        min_region: int = 20,
        thin_radius: float = 1.0,
        corner_inset: int = 10,
        min_area: int = 20,
    ) -> None:
        super().__init__(
            work_size,
            superpixel_scale,
            superpixel_sigma,
            superpixel_min_size,
            merge_threshold,
            lightness_weight,
            min_region,
            corner_inset,
        )
        self.thin_radius = float(thin_radius)
        self.min_area = int(min_area)

    def __call__(self, image: np.ndarray) -> ProposalResult:
        """Return the proposals (uint16 instance map, 1..n by decreasing area) and the corner background."""
        _check_image(image)
        work = to_work_size(image, self.work_size)
        labels = self.parts(work)
        bg_ids = sorted(corner_regions(labels, self.corner_inset))
        eligible = np.ones(int(labels.max()) + 1, dtype=bool)
        eligible[bg_ids] = False
        if self.thin_radius > 0:
            stats = region_stats(labels, lab_image(work))
            labels = absorb_thin(stats, self.thin_radius, eligible)[labels]
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
        work_size, superpixel_scale, superpixel_sigma, superpixel_min_size, merge_threshold, lightness_weight,
            min_region, corner_inset: the colour segmentation, as in :class:`ClassicalProposals`.
        foreground: ``"regions"`` (colour parts grouped into objects) or ``"contrast"`` (difference to the
            median-filtered image).
        background_min_fraction: ("regions") parts covering at least this fraction of the image may be background
            (1 or more = only the corner background) ...
        background_max_chroma: ... when their mean Lab chroma is at most this ...
        background_lightness: ... and their mean lightness lies in this (min, max) range.
        thin_radius: ("regions") foreground parts whose inscribed radius is at most this join their
            longest-boundary foreground neighbour (0 = off).
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
        work_size: int = 256,
        superpixel_scale: float = 10.0,
        superpixel_sigma: float = 0.5,
        superpixel_min_size: int = 8,
        merge_threshold: float = 10.0,
        lightness_weight: float = 1.0,
        min_region: int = 20,
        corner_inset: int = 10,
        foreground: str = "regions",
        background_min_fraction: float = 0.03,
        background_max_chroma: float = 12.0,
        background_lightness: Sequence[float] = (0.0, 100.0),
        thin_radius: float = 1.0,
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
        super().__init__(
            work_size,
            superpixel_scale,
            superpixel_sigma,
            superpixel_min_size,
            merge_threshold,
            lightness_weight,
            min_region,
            corner_inset,
        )
        if foreground not in FOREGROUND_MODES:
            raise ValueError(f"foreground must be one of {', '.join(FOREGROUND_MODES)}, got {foreground!r}")
        lightness = [float(v) for v in background_lightness]
        if len(lightness) != 2:
            raise ValueError(f"background_lightness must be (min, max), got {background_lightness!r}")
        self.foreground = foreground
        self.background_min_fraction = float(background_min_fraction)
        self.background_max_chroma = float(background_max_chroma)
        self.background_lightness = (lightness[0], lightness[1])
        self.thin_radius = float(thin_radius)
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
        bg[sorted(corner_regions(labels, self.corner_inset))] = True
        lo, hi = self.background_lightness
        big = stats.area >= self.background_min_fraction * labels.size
        grey = stats.chroma <= self.background_max_chroma
        light = (stats.mean[:, 0] >= lo) & (stats.mean[:, 0] <= hi)
        return bg | (big & grey & light)

    def objects(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (int32 object map 0..m, bool background) of ``image`` at the working resolution."""
        work = to_work_size(image, self.work_size)
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
        groups = absorb_thin(stats, self.thin_radius, ~bg)[labels]
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
            fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _disk(self.contrast_closing))
        if self.contrast_opening > 0:
            fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _disk(self.contrast_opening))
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


def object_grounding(objects: np.ndarray, background: np.ndarray, shape: tuple[int, int]) -> GroundingResult:
    """Return the :class:`GroundingResult` of a working-resolution object map (0 = none, 1..m) and background mask,
    brought to the image ``shape`` (H, W): instances uint16 1..n by decreasing area, background only where no
    instance is, every phrase ``"object"``, the warning "no detections" when there is no instance."""
    instances = relabel_by_area(to_full_size(objects, shape))
    n = int(instances.max(initial=0))
    return GroundingResult(
        instances=instances,
        background=to_full_size(background, shape) & (instances == 0),
        phrases=["object"] * n,
        warnings=[] if n else ["no detections"],
    )


def _disk(radius: int) -> np.ndarray:
    """Return an elliptic structuring element of the given radius."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
