"""Region toolkit shared by the weight-free pseudo-label backends (:mod:`csad.pseudo.classical`,
:mod:`csad.pseudo.pretrained`): label maps over an image and the operations on them.

- resolution: :func:`to_work_size` (the image to the working size), :func:`to_full_size` (a label map back to the
  image size: nearest neighbour when enlarging, area vote when shrinking);
- colour partition: :func:`lab_image`, :func:`merge_regions` (average-linkage merging of adjacent regions by mean
  colour or descriptor), :func:`segment_parts` (Felzenszwalb superpixels then :func:`merge_regions`), and
  :class:`~csad.pseudo.regions_config.PartSegmentation`, its settings (the ``parts`` params section) shared by every
  weight-free backend;
- per-region facts: :func:`adjacency`, :class:`RegionStats` / :func:`region_stats`, :func:`corner_points` (the
  released code's 8 SAM background prompts) and :func:`corner_regions`;
- label-map edits: :func:`compact_labels`, :func:`absorb_thin`, :func:`relabel_by_area`, :func:`split_components`,
  :func:`split_touching`, :func:`fill_object_holes`, :func:`peel_shadows`, :func:`solidity`;
- :func:`object_grounding`: a working-resolution object map as a :class:`csad.pseudo.types.GroundingResult`.

Everything is deterministic.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import felzenszwalb, watershed

from csad.imaging import resize_label
from csad.pseudo.regions_config import PartSegmentation as PartSegmentation  # re-export
from csad.pseudo.types import GroundingResult


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
        return resize_label(labels, (h, w))
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


def corner_points(height: int, width: int, inset: int = 10) -> np.ndarray:
    """Return the (8, 2) float32 (x, y) corner points with which the released code prompts SAM for the background:
    (inset, inset), (inset, H-inset), (W-inset, inset), (W-inset, H-inset), (0, 0), (0, H), (W, 0), (W, H), clipped
    into the image."""
    w, h = width, height
    pts = np.array(
        [
            (inset, inset),
            (inset, h - inset),
            (w - inset, inset),
            (w - inset, h - inset),
            (0, 0),
            (0, h),
            (w, 0),
            (w, h),
        ],
        dtype=np.float32,
    )
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    return pts


def corner_regions(labels: np.ndarray, inset: int = 10) -> set[int]:
    """Return the region ids under the 8 corner points of :func:`corner_points`."""
    return {int(labels[int(y), int(x)]) for x, y in corner_points(labels.shape[0], labels.shape[1], inset)}


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
    inner = cv2.erode(mask.astype(np.uint8), disk(width)) > 0
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


def disk(radius: int) -> np.ndarray:
    """Return an elliptic structuring element of the given radius."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
