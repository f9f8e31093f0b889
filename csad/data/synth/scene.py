"""A small 2-D scene renderer for the synthetic LOCO-like benchmark.

A scene is a list of :class:`Part` objects drawn in order (later parts cover earlier ones) onto a textured
background, at 2x supersampling, then lit, blurred and given sensor noise. Every part carries the component
class it paints into the component ground truth and the id of the object it belongs to, so the renderer can
return exact per-object masks for the anomaly ground truth.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> canvas = Canvas(64, 64, rng)
>>> canvas.fill_background((120, 110, 100))
>>> _ = canvas.draw(Part(ellipse_polygon((32, 32), (10, 6), 30.0), color=(200, 80, 40), cls=1, obj=0))
>>> image, classes = canvas.finish()
>>> image.shape, int(classes.max())
((64, 64, 3), 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

SUPERSAMPLE = 2
Color = tuple[float, float, float]


@dataclass
class Part:
    """One drawable piece of an object: a filled polygon, or a polyline stroke when ``thickness`` > 0.

    Coordinates are (x, y) pixels in the output image. ``cls`` is the component class painted into the
    component ground truth (0 = not a component, e.g. a tray or a bag); ``obj`` groups the parts of one object
    (-1 = none) so :meth:`Canvas.object_mask` can return the object's exact footprint.
    """

    polygon: np.ndarray
    color: Color
    cls: int = 0
    obj: int = -1
    thickness: float = 0.0
    closed: bool = True
    shading: float = 0.3
    texture: float = 3.0
    opacity: float = 1.0
    highlight: float = 0.0
    holes: list[np.ndarray] = field(default_factory=list)


def ellipse_polygon(center: Sequence[float], axes: Sequence[float], angle_deg: float, n: int = 48) -> np.ndarray:
    """Return the (n, 2) vertices of an ellipse with semi-axes ``axes`` rotated by ``angle_deg``."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    pts = np.stack([axes[0] * np.cos(t), axes[1] * np.sin(t)], axis=1)
    return transform_points(pts, center, angle_deg)


def rect_polygon(center: Sequence[float], size: Sequence[float], angle_deg: float = 0.0) -> np.ndarray:
    """Return the 4 vertices of a ``size`` = (w, h) rectangle centred at ``center``, rotated by ``angle_deg``."""
    w, h = size[0] / 2.0, size[1] / 2.0
    pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], dtype=np.float64)
    return transform_points(pts, center, angle_deg)


def transform_points(
    pts: np.ndarray, center: Sequence[float], angle_deg: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """Return ``pts`` (object coordinates around 0) rotated by ``angle_deg``, scaled, then moved to ``center``."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.asarray(pts, dtype=np.float64) @ rot.T * scale + np.asarray(center, dtype=np.float64)


@dataclass(frozen=True)
class GlobalTransform:
    """Whole-scene jitter (camera/product placement): rotation and scale about the image centre, then a shift."""

    size: tuple[int, int]  # (height, width)
    angle_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def random(
        rng: np.random.Generator,
        size: tuple[int, int],
        max_angle: float = 1.5,
        max_scale: float = 0.03,
        max_shift: float = 0.02,
    ) -> GlobalTransform:
        """Return a random global transform: small rotation, +-max_scale, shift up to max_shift of the size."""
        h, w = size
        return GlobalTransform(
            size=size,
            angle_deg=float(rng.uniform(-max_angle, max_angle)),
            scale=float(1.0 + rng.uniform(-max_scale, max_scale)),
            shift=(float(rng.uniform(-max_shift, max_shift) * w), float(rng.uniform(-max_shift, max_shift) * h)),
        )

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """Return ``pts`` in image pixels after the global transform."""
        h, w = self.size
        c = np.array([w / 2.0, h / 2.0])
        moved = transform_points(np.asarray(pts, dtype=np.float64) - c, c, self.angle_deg, self.scale)
        return moved + np.asarray(self.shift)

    def angle(self, local_deg: float) -> float:
        """Return an object's orientation in the image given its orientation in the product frame."""
        return local_deg + self.angle_deg


def jitter_color(rng: np.random.Generator, base: Color, amount: float = 0.06, brightness: float = 0.06) -> Color:
    """Return ``base`` with per-channel multiplicative jitter and a common brightness change."""
    b = 1.0 + rng.uniform(-brightness, brightness)
    out = [float(np.clip(c * b * (1.0 + rng.normal(0.0, amount)), 0, 255)) for c in base]
    return (out[0], out[1], out[2])


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Return a float32 field in about [-1, 1] of low-frequency noise with ``cells`` control points per side."""
    cells = max(2, int(cells))
    grid = rng.normal(0.0, 1.0, size=(cells, cells)).astype(np.float32)
    field_ = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(field_ / 2.0, -1.0, 1.0)


class Canvas:
    """A supersampled RGB canvas with a component-class layer and per-object footprints."""

    def __init__(self, height: int, width: int, rng: np.random.Generator):
        self.height, self.width = height, width
        self.rng = rng
        self._hs, self._ws = height * SUPERSAMPLE, width * SUPERSAMPLE
        self.rgb = np.zeros((self._hs, self._ws, 3), dtype=np.float32)
        self.classes = np.zeros((self._hs, self._ws), dtype=np.uint8)
        self._objects: dict[int, np.ndarray] = {}

    # -- geometry -------------------------------------------------------------------------------------------
    def _raster(self, part: Part) -> np.ndarray:
        """Return the supersampled boolean footprint of ``part``."""
        mask = np.zeros((self._hs, self._ws), dtype=np.uint8)
        pts = np.round(np.asarray(part.polygon, dtype=np.float64) * SUPERSAMPLE * 16).astype(np.int32)
        if part.thickness > 0:
            thick = max(1, round(part.thickness * SUPERSAMPLE))
            cv2.polylines(mask, [pts], part.closed, 1, thickness=thick, lineType=cv2.LINE_8, shift=4)
        else:
            cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
            for hole in part.holes:
                hp = np.round(np.asarray(hole, dtype=np.float64) * SUPERSAMPLE * 16).astype(np.int32)
                cv2.fillPoly(mask, [hp], 0, lineType=cv2.LINE_8, shift=4)
        return mask.astype(bool)

    def footprint(self, parts: Iterable[Part]) -> np.ndarray:
        """Return the output-resolution boolean union of the footprints of ``parts`` (nothing is drawn)."""
        acc = np.zeros((self._hs, self._ws), dtype=bool)
        for part in parts:
            acc |= self._raster(part)
        return self._down_mask(acc)

    def _down_mask(self, mask: np.ndarray) -> np.ndarray:
        small = cv2.resize(mask.astype(np.float32), (self.width, self.height), interpolation=cv2.INTER_AREA)
        return small >= 0.5

    # -- drawing --------------------------------------------------------------------------------------------
    def fill_background(self, color: Color, texture: float = 6.0, blotches: float = 12.0, cells: int = 6) -> None:
        """Fill the canvas with ``color`` plus low-frequency blotches and fine grain (a table surface)."""
        low = smooth_noise(self.rng, (self._hs, self._ws), cells)[..., None] * blotches
        grain = self.rng.normal(0.0, texture, size=(self._hs, self._ws, 1)).astype(np.float32)
        grain = cv2.GaussianBlur(grain, (0, 0), 1.2)[..., None]
        self.rgb[:] = np.asarray(color, dtype=np.float32) + low + grain
        self.classes[:] = 0

    def draw(self, part: Part, region: np.ndarray | None = None) -> np.ndarray:
        """Paint ``part`` (optionally clipped to a supersampled ``region``); return its supersampled footprint."""
        mask = self._raster(part)
        if region is not None:
            mask &= region
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            return mask
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        sub = mask[y0:y1, x0:x1]
        color = np.asarray(part.color, dtype=np.float32)
        shade = np.ones(sub.shape, dtype=np.float32)
        if part.shading > 0:
            # Dome-like shading: darker near the rim, brightest at the interior ridge.
            dist = cv2.distanceTransform(np.pad(sub.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
            dmax = max(float(dist.max()), 1.0)
            shade = (1.0 - part.shading) + part.shading * np.sqrt(dist / dmax)
        layer = color[None, None, :] * shade[..., None]
        if part.highlight > 0:
            hy, hx = np.unravel_index(int(np.argmax(shade)), shade.shape)
            yy, xx = np.mgrid[0 : sub.shape[0], 0 : sub.shape[1]]
            r = max(sub.shape) / 4.0 + 1.0
            spot = np.exp(-((yy - hy + r / 2) ** 2 + (xx - hx + r / 2) ** 2) / (2 * r * r)).astype(np.float32)
            layer += part.highlight * 255.0 * spot[..., None]
        if part.texture > 0:
            tex = self.rng.normal(0.0, part.texture, size=sub.shape).astype(np.float32)
            layer += cv2.GaussianBlur(tex, (0, 0), 0.8)[..., None]
        target = self.rgb[y0:y1, x0:x1]
        a = float(part.opacity)
        target[sub] = (1.0 - a) * target[sub] + a * layer[sub]
        if part.cls >= 0 and a >= 0.5:
            self.classes[y0:y1, x0:x1][sub] = part.cls
        if part.obj >= 0:
            prev = self._objects.get(part.obj)
            self._objects[part.obj] = mask if prev is None else (prev | mask)
        return mask

    def draw_all(self, parts: Iterable[Part]) -> None:
        """Paint ``parts`` in order."""
        for part in parts:
            self.draw(part)

    def object_mask(self, obj: int) -> np.ndarray:
        """Return the output-resolution footprint of everything drawn with ``obj`` (visible or later covered)."""
        mask = self._objects.get(obj)
        if mask is None:
            return np.zeros((self.height, self.width), dtype=bool)
        return self._down_mask(mask)

    def visible_class_mask(self, cls: int) -> np.ndarray:
        """Return the output-resolution mask of pixels whose final component class is ``cls``."""
        return self._down_mask(self.classes == cls)

    # -- finishing ------------------------------------------------------------------------------------------
    def finish(
        self, light: float = 0.12, blur_sigma: float = 0.6, noise_sigma: float = 3.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (uint8 RGB image, uint8 component classes) after lighting, blur and sensor noise."""
        rng = self.rng
        yy, xx = np.mgrid[0 : self._hs, 0 : self._ws].astype(np.float32)
        theta = rng.uniform(0, 2 * math.pi)
        ramp = (math.cos(theta) * (xx / self._ws - 0.5) + math.sin(theta) * (yy / self._hs - 0.5)) * 2.0
        cy, cx = self._hs / 2.0, self._ws / 2.0
        vignette = 1.0 - 0.08 * (((yy - cy) / cy) ** 2 + ((xx - cx) / cx) ** 2)
        gain = (1.0 + light * rng.uniform(0.5, 1.0) * ramp) * vignette
        rgb = self.rgb * gain[..., None]
        rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if blur_sigma > 0:
            rgb = cv2.GaussianBlur(rgb, (0, 0), blur_sigma)
        rgb = rgb + rng.normal(0.0, noise_sigma, size=rgb.shape).astype(np.float32)
        image = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
        return image, self._down_classes()

    def _down_classes(self) -> np.ndarray:
        """Return the component classes at output resolution: per pixel the class covering most of its
        supersampled block (nearest-neighbour picking would shift the labels by a quarter pixel against the
        area-averaged image)."""
        values = np.unique(self.classes)
        if len(values) == 1:
            return np.full((self.height, self.width), values[0], dtype=np.uint8)
        cover = np.stack(
            [
                cv2.resize(
                    (self.classes == v).astype(np.float32), (self.width, self.height), interpolation=cv2.INTER_AREA
                )
                for v in values
            ]
        )
        return values[np.argmax(cover, axis=0)].astype(np.uint8)

    def downsample_region(self, region_ss: np.ndarray) -> np.ndarray:
        """Return a supersampled boolean mask brought to output resolution."""
        return self._down_mask(region_ss)

    def upsample_region(self, region: np.ndarray) -> np.ndarray:
        """Return an output-resolution boolean mask at supersampled resolution."""
        return cv2.resize(region.astype(np.uint8), (self._ws, self._hs), interpolation=cv2.INTER_NEAREST).astype(bool)


def sample_disks(
    rng: np.random.Generator,
    radii: Sequence[float],
    bounds: tuple[float, float, float, float],
    occupied: Sequence[tuple[float, float, float]] = (),
    gap: float = 0.0,
    tries: int = 400,
) -> list[tuple[float, float]] | None:
    """Return centres for disks of ``radii`` inside ``bounds`` = (x0, y0, x1, y1), not overlapping each other
    nor the ``occupied`` (x, y, r) disks by less than ``gap``; None when no layout is found in ``tries``.

    Each disk is kept fully inside the bounds. Placement is greedy rejection sampling, deterministic for ``rng``.
    """
    placed: list[tuple[float, float, float]] = list(occupied)
    centres: list[tuple[float, float]] = []
    x0, y0, x1, y1 = bounds
    for r in radii:
        if x1 - x0 < 2 * r or y1 - y0 < 2 * r:
            return None
        for _ in range(tries):
            x, y = float(rng.uniform(x0 + r, x1 - r)), float(rng.uniform(y0 + r, y1 - r))
            if all((x - px) ** 2 + (y - py) ** 2 >= (r + pr + gap) ** 2 for px, py, pr in placed):
                placed.append((x, y, r))
                centres.append((x, y))
                break
        else:
            return None
    return centres
