"""Weight-free-of-foundation-models grounding from pretrained CNN features: parts by colour AND texture.

The classical backend (:mod:`csad.pseudo.classical`) groups pixels by colour only, so on real photographs a label
printed in the colour of the liquid behind it merges into the liquid, and its foreground rule needs per-category
lightness/chroma thresholds. This backend, in the manner of ComAD's unsupervised component segmentation
(Liu et al., "Component-aware anomaly detection framework for adjustable and logical industrial visual
inspection", 2023: clustering of pretrained patch features into parts), describes every pixel by its Lab colour
and by the ImageNet features of the bundled EfficientNet-Lite (or any :data:`csad.models.backbone.BACKBONES`
network), and learns what the background looks like from the training images themselves:

1. **Pixel descriptor** (:meth:`PretrainedGrounding.pixel_descriptors`): Lab at the working size (lightness scaled by
   ``lightness_weight``), plus ``feature_weight`` x the PCA projection (``pca_dim`` components, fitted on the train
   images) of the L2-normalised feature maps at ``strides``, bilinearly upsampled. The image is reflect-padded by
   ``pad`` pixels before the CNN so zero padding does not make features depend on the distance to the border.
2. **Parts**: Felzenszwalb superpixels, then average-linkage merging of adjacent regions by the distance of their
   mean descriptors (:func:`csad.pseudo.regions.merge_regions` over all channels) below ``merge_threshold``:
   two regions of one colour but different print or texture stay apart.
3. **Background model** (:meth:`PretrainedGrounding.fit`): the mean descriptors of the parts that touch a band of
   ``border_band`` pixels along the image border, over all train images (the product sits inside the frame, as in
   MVTec LOCO). A part of a new image is background when it touches the border or when its nearest border-part
   descriptor from the train images is closer than tau, tau being the ``background_quantile`` quantile of the
   leave-one-image-out nearest-neighbour distances among the border parts themselves. No lightness or chroma
   threshold: the rule is computed from the training data.
   **Enclosure** (:func:`enclosed_parts`): a part called background that is enclosed by one larger background
   part (at least ``enclosure_boundary_ratio`` of its boundary, and ``enclosure_area_ratio`` times smaller) and
   differs from it by more than tau lies ON the background surface, like a screw on the bag it is packed in, and
   is an object. tau is the distance at which two parts count as the same background, so the test needs no new
   scale; it matters where the surface's own edges touch the image border in some train images and make the
   parts lying on it look like border parts.
4. **Instances**: foreground parts, thin ones absorbed by their longest-boundary neighbour, optionally merged by
   colour (``object_merge_threshold``), holes filled, split into connected components, small ones dropped; ranked
   by decreasing area (the contract of :class:`csad.pseudo.types.GroundingResult`).

Everything depends only on the train images and the params (deterministic for a seed on one machine).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from scipy.spatial import cKDTree
from skimage.segmentation import felzenszwalb

from csad.pseudo.regions import (
    RegionStats,
    absorb_thin,
    compact_labels,
    fill_object_holes,
    lab_image,
    merge_regions,
    object_grounding,
    region_stats,
    split_components,
    to_work_size,
)
from csad.pseudo.regions_config import PartSegmentation
from csad.pseudo.types import GroundingResult

PARAM_PREFIX = "ground.pretrained"


def region_means(labels: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """Return the (n, D) mean descriptor of every region 0..n-1 of ``labels`` ((H, W) ints) over the (H, W, D)
    ``descriptors`` (rows of empty regions are 0)."""
    n = int(labels.max(initial=0)) + 1
    flat = labels.ravel()
    dim = descriptors.shape[-1]
    count = np.bincount(flat, minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=descriptors[..., c].ravel(), minlength=n) for c in range(dim)], axis=1)
    return sums / np.maximum(count, 1.0)[:, None]


def border_labels(labels: np.ndarray, band: int) -> np.ndarray:
    """Return the sorted labels present within ``band`` pixels (at least 1) of the border of the (H, W) ``labels``."""
    b = max(1, int(band))
    edge = np.concatenate([labels[:b].ravel(), labels[-b:].ravel(), labels[:, :b].ravel(), labels[:, -b:].ravel()])
    return np.unique(edge)


class PretrainedGrounding:
    """Object-level instances and background from pretrained features + colour (module docstring).

    Call :meth:`fit` on the train images first; the text prompt is ignored (every phrase is ``"object"``).

    Args:
        extractor: a frozen :class:`csad.models.backbone.FeatureExtractor` returning the maps at ``strides``.
        parts: the part segmentation (:class:`csad.pseudo.regions_config.PartSegmentation` or a mapping of its fields;
            params section ``parts``; None = its defaults): working size (at least 16 here; the sizes below are
            working pixels), superpixels, ``merge_threshold`` (average-linkage merging of adjacent regions below
            this descriptor distance), ``min_region``, ``lightness_weight`` (weight of Lab lightness in the
            descriptor) and ``thin_radius`` (foreground parts this thin join a foreground neighbour; 0 = off).
        feature_weight: weight of the projected CNN features against Lab units in the background model (0 = colour
            only, no CNN is run) ...
        merge_feature_weight: ... and in the merging of regions into parts (None = ``feature_weight``; 0 = parts by
            colour only, texture used to tell background from parts).
        pca_dim: PCA components kept of the concatenated normalised features (fewer when the CNN has fewer
            channels or the PCA sample fewer pixels).
        pad: reflect padding before the CNN, pixels (rounded up to a multiple of the largest stride).
        border_band: width of the border band whose parts define the background, pixels.
        background_quantile: tau = this quantile of the border parts' leave-one-image-out nearest-neighbour
            distances (higher = more parts called background).
        object_merge_threshold: adjacent foreground groups closer than this in mean Lab merge (0 = off).
        object_lightness_weight: weight of lightness in that distance.
        enclosure_boundary_ratio: a background part sharing at least this fraction of its boundary with one
            larger background part, and farther than tau from it, is an object (:func:`enclosed_parts`; 0 = off) ...
        enclosure_area_ratio: ... when that enclosing part is at least this many times larger.
        hole_fill_ratio: holes covering at least this fraction of their object join it (above 1: only specks).
        min_object_fraction: objects under this fraction of the image are dropped.
        sample_pixels: pixels per train image sampled to fit the PCA ...
        pca_images: ... on at most this many train images, evenly spaced in key order.
        seed: seed of that sample.
        device: torch device of the CNN.

    Raises:
        ValueError: a size, weight or quantile out of range or not finite; ``merge_feature_weight > 0`` with
            ``feature_weight`` 0 (no CNN is run then).
    """

    def __init__(
        self,
        extractor: Any,
        parts: PartSegmentation | Mapping[str, Any] | None = None,
        feature_weight: float = 20.0,
        merge_feature_weight: float | None = None,
        pca_dim: int = 6,
        pad: int = 32,
        border_band: int = 4,
        background_quantile: float = 0.95,
        object_merge_threshold: float = 0.0,
        object_lightness_weight: float = 0.2,
        enclosure_boundary_ratio: float = 0.0,
        enclosure_area_ratio: float = 4.0,
        hole_fill_ratio: float = 2.0,
        min_object_fraction: float = 0.001,
        sample_pixels: int = 2000,
        pca_images: int = 20,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        segmentation = PartSegmentation.of(parts)
        if segmentation.work_size < 16:
            raise ValueError(f"parts.work_size must be >= 16 for the pretrained backend, got {segmentation.work_size}")
        for key, value, least in (("feature_weight", feature_weight, 0), ("pca_dim", pca_dim, 1)):
            if value < least:
                raise ValueError(f"{key} must be >= {least}, got {value}")
        if not 0.0 < background_quantile <= 1.0:
            raise ValueError(f"background_quantile must be in (0, 1], got {background_quantile}")
        if not 0.0 <= enclosure_boundary_ratio <= 1.0:
            raise ValueError(f"enclosure_boundary_ratio must be in [0, 1] (0 = off), got {enclosure_boundary_ratio}")
        if not 1.0 <= enclosure_area_ratio < math.inf:
            raise ValueError(f"enclosure_area_ratio must be a finite number >= 1, got {enclosure_area_ratio}")
        for key, value, least in (
            ("pad", pad, 0),
            ("border_band", border_band, 1),
            ("sample_pixels", sample_pixels, 1),
        ):
            if value < least:
                raise ValueError(f"{key} must be >= {least}, got {value}")
        reals = {
            "feature_weight": feature_weight,
            "merge_feature_weight": 0.0 if merge_feature_weight is None else merge_feature_weight,
            "object_merge_threshold": object_merge_threshold,
            "object_lightness_weight": object_lightness_weight,
            "hole_fill_ratio": hole_fill_ratio,
            "min_object_fraction": min_object_fraction,
        }
        for key, value in reals.items():
            if not math.isfinite(float(value)):
                raise ValueError(f"{key} must be a finite number, got {value}")
        self.extractor = extractor
        self.segmentation = segmentation
        self.feature_weight = float(feature_weight)
        self.merge_feature_weight = self.feature_weight if merge_feature_weight is None else float(merge_feature_weight)
        if self.merge_feature_weight < 0:
            raise ValueError(f"merge_feature_weight must be >= 0, got {merge_feature_weight}")
        if self.merge_feature_weight > 0 and self.feature_weight == 0:
            raise ValueError(
                f"merge_feature_weight is {merge_feature_weight} but feature_weight is 0, so no CNN "
                f"features exist to merge by: set merge_feature_weight to null or 0, or feature_weight > 0"
            )
        self.pca_dim = int(pca_dim)
        largest = max(extractor.strides) if extractor is not None else 1
        self.pad = int(math.ceil(int(pad) / largest) * largest)
        self.border_band = int(border_band)
        self.background_quantile = float(background_quantile)
        self.object_merge_threshold = float(object_merge_threshold)
        self.object_lightness_weight = float(object_lightness_weight)
        self.enclosure_boundary_ratio = float(enclosure_boundary_ratio)
        self.enclosure_area_ratio = float(enclosure_area_ratio)
        self.hole_fill_ratio = float(hole_fill_ratio)
        self.min_object_fraction = float(min_object_fraction)
        self.sample_pixels = int(sample_pixels)
        self.pca_images = max(1, int(pca_images))
        self.seed = int(seed)
        self.device = device
        self.pca_mean: np.ndarray | None = None  # (C,) mean of the normalised CNN features
        self.pca_components: np.ndarray | None = None  # (pca_dim, C)
        self.border_descriptors: np.ndarray | None = None  # (M, 3 + pca_dim) train border parts
        self.tau: float | None = None
        self._parts_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # _image_key(working image) -> parts()

    @property
    def uses_cnn(self) -> bool:
        """Whether the descriptor has CNN channels (``feature_weight > 0``)."""
        return self.feature_weight > 0 and self.extractor is not None

    # -------------------------------------------------------------------------------------------------------------
    def cnn_features(self, work: np.ndarray) -> np.ndarray:
        """Return the (H * W, C) L2-normalised CNN features of the working image (H, W, 3) uint8, every stride's
        map upsampled (bilinear) to (H, W) and concatenated."""
        import torch
        import torch.nn.functional as F

        h, w = work.shape[:2]
        p = self.pad
        padded = cv2.copyMakeBorder(work, p, p, p, p, cv2.BORDER_REFLECT_101) if p else work
        x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float().div(255.0)
        with torch.no_grad():
            maps = self.extractor(x.to(self.device))
        out = []
        for stride, fmap in maps.items():
            c = p // stride
            fmap = fmap[..., c : fmap.shape[-2] - c, c : fmap.shape[-1] - c]
            fmap = F.normalize(fmap.float(), dim=1)
            out.append(F.interpolate(fmap, size=(h, w), mode="bilinear", align_corners=False)[0])
        return torch.cat(out, 0).permute(1, 2, 0).reshape(h * w, -1).cpu().numpy().astype(np.float64)

    def pixel_descriptors(self, work: np.ndarray) -> np.ndarray:
        """Return the (H, W, 3 + k) float32 descriptor of the (H, W, 3) uint8 working image: Lab (L 0..100 times
        ``lightness_weight``, a and b about -100..100) and ``feature_weight`` x the projection on the k <= ``pca_dim``
        fitted PCA components of the CNN features (k = 0, only Lab, when ``feature_weight`` is 0).

        Raises:
            RuntimeError: CNN channels are requested before :meth:`fit`.
        """
        lab = lab_image(work)
        lab[..., 0] *= self.segmentation.lightness_weight
        if not self.uses_cnn:
            return lab
        if self.pca_components is None or self.pca_mean is None:
            raise RuntimeError("PretrainedGrounding.fit(train_images) must run before grounding an image")
        feats = self.cnn_features(work)
        proj = (feats - self.pca_mean) @ self.pca_components.T
        h, w = work.shape[:2]
        return np.concatenate([lab, self.feature_weight * proj.reshape(h, w, -1)], axis=-1).astype(np.float32)

    def parts(self, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ((H, W) int32 partition 0..n-1 of the (H, W, 3) uint8 working image into parts, (n, D) float64 mean
        descriptor of each part, D as in :meth:`pixel_descriptors`).

        The results for the train images are kept by :meth:`fit` (keyed by the image's shape and bytes), so
        grounding them afterwards neither reruns the CNN nor merges their regions again.
        """
        cached = self._parts_cache.get(_image_key(work))
        if cached is not None:
            return cached
        desc = self.pixel_descriptors(work)
        sp = felzenszwalb(
            work,
            scale=self.segmentation.superpixel_scale,
            sigma=self.segmentation.superpixel_sigma,
            min_size=max(1, self.segmentation.superpixel_min_size),
        )
        merge_desc = desc
        if desc.shape[-1] > 3 and self.merge_feature_weight != self.feature_weight:
            merge_desc = desc.copy()
            merge_desc[..., 3:] *= self.merge_feature_weight / self.feature_weight
            if self.merge_feature_weight == 0:
                merge_desc = merge_desc[..., :3]
        labels = merge_regions(sp, merge_desc, self.segmentation.merge_threshold, 1.0, self.segmentation.min_region)
        return labels, region_means(labels, desc)

    # -------------------------------------------------------------------------------------------------------------
    def fit(self, images: Sequence[np.ndarray]) -> dict[str, Any]:
        """Fit the PCA of the CNN features and the background model on the (H, W, 3) uint8 RGB train ``images`` (any
        sizes); return a JSON-ready summary (``tau``, number of border parts, PCA variance kept, and ``warnings``
        when the background model is degenerate: tau 0, or border bands that cover a whole working image).

        Refitting replaces the previous model and the cached parts of the previous train images.

        Raises:
            ValueError: no images, or an image that is not (H, W, 3) uint8.
        """
        if len(images) == 0:
            raise ValueError("PretrainedGrounding.fit needs at least one train image")
        works = []  # one pass over ``images`` (which may read them lazily): only working-size copies are kept
        for i, image in enumerate(images):
            im = np.asarray(image)
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8 or min(im.shape[:2]) < 1:
                raise ValueError(
                    f"PretrainedGrounding.fit needs (H, W, 3) uint8 RGB images; train image {i} is "
                    f"{im.shape} {im.dtype}"
                )
            works.append(to_work_size(im, self.segmentation.work_size))
        summary: dict[str, Any] = {"images": len(works)}
        warnings: list[str] = []
        if self.uses_cnn:
            rng = np.random.default_rng(self.seed)
            samples = []
            step = max(1, len(works) // self.pca_images)
            for work in works[::step][: self.pca_images]:
                feats = self.cnn_features(work)
                take = rng.choice(len(feats), size=min(self.sample_pixels, len(feats)), replace=False)
                samples.append(feats[np.sort(take)])
            x = np.concatenate(samples)
            self.pca_mean = x.mean(axis=0)
            _, sv, vt = np.linalg.svd(x - self.pca_mean, full_matrices=False)
            k = min(self.pca_dim, vt.shape[0])
            self.pca_components = vt[:k]
            var = sv**2
            summary["pca_variance_kept"] = round(float(var[:k].sum() / max(var.sum(), 1e-12)), 4)
        descs, owners = [], []
        self._parts_cache = {}
        covered = []
        for i, work in enumerate(works):
            labels, means = self.parts(work)
            self._parts_cache[_image_key(work)] = (labels, means)
            ids = border_labels(labels, self.border_band)
            descs.append(means[ids])
            owners.append(np.full(len(ids), i))
            if 2 * self.border_band >= min(work.shape[:2]):
                covered.append(i)
        self.border_descriptors = np.concatenate(descs).astype(np.float64)
        owner = np.concatenate(owners)
        self.tau = _leave_one_out_quantile(self.border_descriptors, owner, self.background_quantile)
        if covered:
            warnings.append(
                f"the border band ({self.border_band} px) covers the whole working image of {len(covered)} of "
                f"{len(works)} train images (first: image {covered[0]}, {works[covered[0]].shape[0]} x "
                f"{works[covered[0]].shape[1]} px): their objects are learned as background; lower "
                f"{PARAM_PREFIX}.border_band or raise parts.work_size"
            )
        if self.tau == 0:
            why = "only one train image" if len(works) == 1 else "the border parts repeat exactly across the images"
            warnings.append(
                f"tau is 0 ({why}): no distance between the images' border parts to learn from, so only parts "
                f"touching the border or identical to a train border part are background"
            )
        summary.update(border_parts=len(owner), tau=round(self.tau, 4))
        if warnings:
            summary["warnings"] = warnings
        return summary

    def state(self) -> dict[str, np.ndarray]:
        """Return the fitted model as arrays (for ``np.savez``): PCA mean/components, border descriptors, tau."""
        if self.border_descriptors is None or self.tau is None:
            raise RuntimeError("PretrainedGrounding.fit(train_images) must run first")
        out = {"border_descriptors": self.border_descriptors, "tau": np.array(self.tau)}
        if self.pca_mean is not None and self.pca_components is not None:
            out.update(pca_mean=self.pca_mean, pca_components=self.pca_components)
        return out

    # -------------------------------------------------------------------------------------------------------------
    def objects(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (int32 object map 0..m, bool background) of ``image`` at the working resolution.

        Raises:
            RuntimeError: :meth:`fit` has not run.
        """
        if self.border_descriptors is None or self.tau is None:
            raise RuntimeError("PretrainedGrounding.fit(train_images) must run before grounding an image")
        work = to_work_size(image, self.segmentation.work_size)
        labels, means = self.parts(work)
        distance, _ = cKDTree(self.border_descriptors).query(means, k=1)
        bg = np.asarray(distance) <= self.tau
        touching = border_labels(labels, 1)
        bg[touching] = True
        lab = lab_image(work)
        stats = region_stats(labels, lab)
        if self.enclosure_boundary_ratio > 0:
            free = bg.copy()
            free[touching] = False
            ratios = (self.enclosure_boundary_ratio, self.enclosure_area_ratio)
            bg[enclosed_parts(stats, means, free, bg, self.tau, *ratios)] = False
        background = bg[labels]
        groups = absorb_thin(stats, self.segmentation.thin_radius, ~bg)[labels]
        if self.object_merge_threshold > 0:
            compact = compact_labels(groups)
            allowed = np.zeros(int(compact.max()) + 1, dtype=bool)
            allowed[compact[~background]] = True
            groups = merge_regions(
                compact, lab, self.object_merge_threshold, self.object_lightness_weight, allowed=allowed
            )
        grouped = np.where(~background, compact_labels(groups) + 1, 0).astype(np.int32)
        min_area = max(1, math.ceil(self.min_object_fraction * work.shape[0] * work.shape[1]))
        grouped = fill_object_holes(grouped, self.hole_fill_ratio, min_area)
        keep = np.ones(int(grouped.max()) + 1, dtype=bool)
        keep[0] = False
        objects = split_components(grouped, keep, min_area)
        return objects, objects == 0

    def __call__(self, image: np.ndarray, prompt: str = "") -> GroundingResult:
        """Return the object instances (uint16, 1..n by decreasing area) and the background of the RGB uint8
        ``image``; ``prompt`` is ignored.

        Raises:
            ValueError: not an (H, W, 3) uint8 image.
            RuntimeError: :meth:`fit` has not run.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"PretrainedGrounding needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        return object_grounding(*self.objects(image), image.shape[:2])


def enclosed_parts(
    stats: RegionStats,
    means: np.ndarray,
    candidates: np.ndarray,
    surface: np.ndarray,
    distance: float,
    boundary_ratio: float,
    area_ratio: float,
) -> np.ndarray:
    """Return the sorted parts that lie ON a larger part: candidate parts whose longest-shared-boundary neighbour
    (ties to the lower part number) is a ``surface`` part, shares at least ``boundary_ratio`` of the candidate's
    boundary with other parts (4-adjacent pixel pairs), covers at least ``area_ratio`` times its area, and whose mean
    descriptor is farther than ``distance`` from the candidate's (a rule of this project, see the module docstring,
    step 3).

    Args:
        stats: the :func:`csad.pseudo.regions.region_stats` of the partition into n parts (areas, shared boundaries).
        means: (n, D) mean descriptor of every part.
        candidates: (n,) bool, the parts that may be returned (e.g. background parts not touching the border).
        surface: (n,) bool, the parts that may enclose them (e.g. every background part).
        distance: descriptor distance a candidate must exceed from its enclosing part (>= 0).
        boundary_ratio: share of the candidate's boundary, in (0, 1], its enclosing part must hold.
        area_ratio: how many times larger the enclosing part must be (>= 1).

    Returns:
        (k,) int64 part numbers, increasing.

    Raises:
        ValueError: arrays whose lengths do not match the number of parts.

    >>> labels = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    >>> stats = region_stats(labels, np.zeros((3, 4, 3)))
    >>> means = np.array([[0.0], [5.0]])
    >>> every = np.array([True, True])
    >>> enclosed_parts(stats, means, every, every, 1.0, 0.75, 4.0).tolist()
    [1]
    >>> enclosed_parts(stats, means, every, every, 6.0, 0.75, 4.0).tolist()
    []
    """
    n = stats.area.size
    means = np.asarray(means, dtype=np.float64)
    candidates, surface = np.asarray(candidates, dtype=bool), np.asarray(surface, dtype=bool)
    if not means.shape[0] == candidates.shape[0] == surface.shape[0] == n:
        raise ValueError(
            f"enclosed_parts: {n} parts but {means.shape[0]} means, {candidates.shape[0]} candidate flags and "
            f"{surface.shape[0]} surface flags"
        )
    total = np.zeros(n)
    best: dict[int, tuple[int, int]] = {}  # part -> (shared length, neighbour) of its longest boundary
    for (a, b), length in stats.pairs.items():
        for x, y in ((a, b), (b, a)):
            total[x] += length
            if x not in best or (length, -y) > (best[x][0], -best[x][1]):
                best[x] = (length, y)
    hits = [
        p
        for p, (length, q) in sorted(best.items())
        if candidates[p]
        and surface[q]
        and length >= boundary_ratio * total[p]
        and stats.area[q] >= area_ratio * stats.area[p]
        and float(np.linalg.norm(means[p] - means[q])) > distance
    ]
    return np.array(hits, dtype=np.int64)


def _image_key(work: np.ndarray) -> str:
    """Return the cache key of a working image: its shape, dtype and the sha1 of its bytes (the bytes alone do not
    tell a 32 x 64 image from a 64 x 32 one)."""
    digest = hashlib.sha1(np.ascontiguousarray(work).tobytes()).hexdigest()
    return f"{work.shape}:{work.dtype}:{digest}"


def _leave_one_out_quantile(descriptors: np.ndarray, owner: np.ndarray, quantile: float) -> float:
    """Return the ``quantile`` of every (M, D) descriptor's distance (descriptor units) to its nearest descriptor of
    ANOTHER image, ``owner`` (M,) giving each descriptor's image (0 when only one image contributed)."""
    if len(np.unique(owner)) < 2:
        return 0.0
    tree = cKDTree(descriptors)
    k = min(len(descriptors), 16)
    nearest = np.full(len(descriptors), np.inf)
    while True:
        dist, idx = tree.query(descriptors, k=k)
        dist, idx = np.atleast_2d(dist), np.atleast_2d(idx)
        other = owner[idx] != owner[:, None]
        found = other.any(axis=1)
        first = np.where(found, other.argmax(axis=1), 0)
        nearest = np.where(found, dist[np.arange(len(dist)), first], nearest)
        if found.all() or k >= len(descriptors):
            break
        k = min(len(descriptors), k * 4)
    finite = nearest[np.isfinite(nearest)]
    return float(np.quantile(finite, quantile)) if finite.size else 0.0


def build_pretrained_grounding(
    cfg: dict[str, Any], device: str, parts: PartSegmentation | Mapping[str, Any] | None = None
) -> PretrainedGrounding:
    """Return the backend of the ``ground.pretrained`` params ``cfg`` (``backbone``: name, weights, seed;
    ``strides``; the :class:`PretrainedGrounding` keyword arguments) with the part segmentation ``parts`` (the
    ``parts`` params section; None = its defaults) on ``device``.

    Raises:
        ParamsError: a missing or unknown key (with a suggestion), a value of the wrong type, a bad backbone or
            strides; CheckpointError: unusable weights (only read when ``feature_weight > 0``).
    """
    from csad.errors import ParamsError
    from csad.models.spec import BackboneSpec
    from csad.params import build_with_kwargs, check_types

    cfg = dict(cfg)
    missing = [key for key in ("backbone", "strides") if key not in cfg]
    if missing:
        raise ParamsError(f"params.yaml: {PARAM_PREFIX} lacks {', '.join(missing)}")
    spec = BackboneSpec.from_params(cfg.pop("backbone"), PARAM_PREFIX)
    strides = cfg.pop("strides")
    check_types(PretrainedGrounding, cfg, PARAM_PREFIX)
    extractor = None
    if float(cfg.get("feature_weight", 20.0)) > 0:
        try:
            extractor = spec.build(strides)
        except ParamsError:
            raise
        except ValueError as err:
            raise ParamsError(f"params.yaml: {PARAM_PREFIX}.backbone/strides: {err}") from err
        extractor = extractor.to(device).eval()
    return build_with_kwargs(
        PretrainedGrounding, {**cfg, "extractor": extractor, "parts": parts, "device": device}, PARAM_PREFIX
    )
