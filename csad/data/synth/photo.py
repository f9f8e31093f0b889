"""A "photographic realism" layer for rendered synthetic images: what a real camera adds to a clean scene.

Real MVTec LOCO photographs differ from the clean renders in ways that break colour-based grouping: light falls
off across the scene, the white balance drifts, the lens darkens the corners, glass and fruit skins show bright
specular highlights, the focus is slightly soft and the sensor adds noise that grows with the signal.
:func:`photograph` adds all of this to a rendered :class:`~csad.data.synth.base.Sample`, drawing from the image's
own generator AFTER the base render (so the scene itself is exactly the one rendered without the layer). Only the
image changes: ``component_gt``, the defect masks and the facts are passed through untouched (highlights are
placed inside the glossy classes' pixels but never change them).

>>> import numpy as np
>>> from csad.data.synth.base import Sample
>>> gt = np.zeros((48, 48), np.uint8); gt[12:36, 16:32] = 1
>>> sample = Sample(np.full((48, 48, 3), 120, np.uint8), gt)
>>> out = photograph(sample, np.random.default_rng(0), glossy=[1], style="streak")
>>> out.image.shape, out.image.dtype, out.component_gt is gt
((48, 48, 3), dtype('uint8'), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from csad.data.synth.base import Sample
from csad.data.synth.scene import smooth_noise

#: How highlights are shaped: ``streak`` = long bands along the main axis of all pixels of a class (a cylinder such
#: as a glass bottle reflects a window as a stripe along its length); ``spot`` = one soft elongated spot per
#: connected region of the class on its side facing the light (a sphere such as a fruit).
HighlightStyle = Literal["streak", "spot"]


@dataclass(frozen=True)
class PhotoSettings:
    """Strengths of the photo layer; ``(lo, hi)`` pairs are per-image uniform ranges."""

    illumination: float = 0.20  # max |gain - 1| of the uneven illumination (fraction of the brightness)
    gradient_share: tuple[float, float] = (0.55, 0.8)  # share of the directional gradient (rest: shading field)
    shading_cells: int = 3  # control points per side of the low-frequency shading field
    temperature: float = 0.05  # max red/blue gain change of the colour temperature (warm: red up, blue down)
    vignette: tuple[float, float] = (0.10, 0.22)  # brightness lost in the image corners
    highlight: tuple[float, float] = (0.65, 0.95)  # peak blend toward white of a specular highlight
    blur_sigma: tuple[float, float] = (0.6, 1.0)  # defocus, Gaussian sigma in pixels
    read_noise: tuple[float, float] = (1.0, 2.5)  # signal-independent noise sigma, grey levels
    shot_noise: tuple[float, float] = (0.04, 0.10)  # signal-dependent noise variance per grey level of signal


def class_ids(component_classes: Sequence[str], names: Sequence[str]) -> list[int]:
    """Return the component_gt values (1-based) of the class ``names`` in ``component_classes``.

    Raises:
        ValueError: a name is not a component class.
    """
    unknown = [n for n in names if n not in component_classes]
    if unknown:
        raise ValueError(f"unknown component classes {unknown}; choose from {', '.join(component_classes)}")
    return [component_classes.index(n) + 1 for n in names]


def illumination(
    rng: np.random.Generator,
    shape: tuple[int, int],
    strength: float = 0.2,
    gradient_share: tuple[float, float] = (0.55, 0.8),
    cells: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Return uneven directional illumination: ``(gain, light)``.

    ``gain`` is an (H, W) float32 multiplicative brightness field within ``1 +- strength``: a linear gradient in a
    random direction (its share drawn from ``gradient_share``) plus a low-frequency shading field with ``cells``
    control points per side. ``light`` is the (2,) float64 unit vector (x, y), in image pixels' axes, pointing
    toward the brighter side (where highlights face).
    """
    h, w = shape
    theta = float(rng.uniform(0.0, 2.0 * math.pi))
    light = np.array([math.cos(theta), math.sin(theta)])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = light[0] * (xx / max(w - 1, 1) - 0.5) + light[1] * (yy / max(h - 1, 1) - 0.5)
    ramp /= max(float(np.abs(ramp).max()), 1e-6)  # [-1, 1]
    shading = smooth_noise(rng, (h, w), cells)  # about [-1, 1]
    share = float(rng.uniform(*gradient_share))
    amp = strength * float(rng.uniform(0.75, 1.0))
    gain = 1.0 + amp * np.clip(share * ramp + (1.0 - share) * shading, -1.0, 1.0)
    return gain.astype(np.float32), light


def colour_temperature(rng: np.random.Generator, amount: float = 0.05) -> np.ndarray:
    """Return (3,) float32 RGB gains of a per-image colour-temperature shift: red ``1 + t``, green 1, blue
    ``1 - t`` with ``t`` uniform in ``[-amount, amount]`` (t > 0 warmer, t < 0 cooler)."""
    t = float(rng.uniform(-amount, amount))
    return np.array([1.0 + t, 1.0, 1.0 - t], dtype=np.float32)


def vignetting(rng: np.random.Generator, shape: tuple[int, int], strength: tuple[float, float]) -> np.ndarray:
    """Return an (H, W) float32 lens fall-off factor: 1 at the optical centre (a few percent off the image centre),
    ``1 - v`` in the corners with ``v`` drawn from ``strength``, quadratic in the distance in between."""
    h, w = shape
    v = float(rng.uniform(*strength))
    cx = (w - 1) / 2.0 * (1.0 + float(rng.uniform(-0.04, 0.04)))
    cy = (h - 1) / 2.0 * (1.0 + float(rng.uniform(-0.04, 0.04)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - cx) / max(w / 2.0, 1.0)) ** 2 + ((yy - cy) / max(h / 2.0, 1.0)) ** 2  # 2 in the corners
    return np.clip(1.0 - v * r2 / 2.0, 0.0, 1.0).astype(np.float32)


def specular_highlights(
    rng: np.random.Generator,
    component_gt: np.ndarray,
    glossy: Sequence[int],
    light: np.ndarray,
    style: HighlightStyle = "spot",
    strength: tuple[float, float] = (0.65, 0.95),
    min_area: int = 12,
) -> np.ndarray:
    """Return the (H, W) float32 blend weight in [0, 1] of specular highlights toward white.

    The weight is zero outside the pixels whose ``component_gt`` (H, W) value is in ``glossy`` and fades to zero
    over about 1.5 px inside their border, so a highlight lies within the glossy part. Highlights are soft
    Gaussian streaks or spots (see :data:`HighlightStyle`) with peak weight drawn from ``strength``, placed on the
    side facing ``light`` (unit (x, y) vector). Classes or regions under ``min_area`` pixels get none.
    """
    h, w = component_gt.shape
    weight = np.zeros((h, w), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for cls in glossy:
        mask = (component_gt == cls).astype(np.uint8)
        if int(mask.sum()) < min_area:
            continue
        inside = np.clip(cv2.distanceTransform(mask, cv2.DIST_L2, 3) / 1.5, 0.0, 1.0).astype(np.float32)
        if style == "streak":
            spots = _streaks(rng, mask, xx, yy, light, strength)
        else:
            spots = _spots(rng, mask, xx, yy, light, strength, min_area)
        weight = np.maximum(weight, spots * inside)
    return np.clip(weight, 0.0, 1.0)


def _streaks(
    rng: np.random.Generator,
    mask: np.ndarray,
    xx: np.ndarray,
    yy: np.ndarray,
    light: np.ndarray,
    strength: tuple[float, float],
) -> np.ndarray:
    """Return one long soft streak (and sometimes a fainter second one) along the main axis of ``mask``."""
    ys, xs = np.nonzero(mask)
    c = np.array([xs.mean(), ys.mean()])
    m = cv2.moments(mask, binaryImage=True)
    angle = 0.5 * math.atan2(2.0 * m["mu11"], m["mu20"] - m["mu02"])  # main axis, image axes
    u = np.array([math.cos(angle), math.sin(angle)])  # along
    v = np.array([-u[1], u[0]])  # across
    a_pix, b_pix = (xs - c[0]) * u[0] + (ys - c[1]) * u[1], (xs - c[0]) * v[0] + (ys - c[1]) * v[1]
    a0, a1 = np.percentile(a_pix, [2.0, 98.0])
    b0, b1 = np.percentile(b_pix, [2.0, 98.0])
    a = (xx - c[0]) * u[0] + (yy - c[1]) * u[1]
    b = (xx - c[0]) * v[0] + (yy - c[1]) * v[1]
    length, width = max(float(a1 - a0), 1.0), max(float(b1 - b0), 1.0)
    side = 1.0 if float(light @ v) >= 0 else -1.0
    soft = 0.06 * length
    along = 0.5 * (np.tanh((a - a0 - 0.04 * length) / soft) - np.tanh((a - a1 + 0.04 * length) / soft))
    along *= 0.8 + 0.2 * smooth_noise(rng, mask.shape, 4)  # uneven brightness along the streak
    out = np.zeros(mask.shape, dtype=np.float32)
    streaks = [(float(rng.uniform(0.25, 0.55)), float(rng.uniform(0.035, 0.06)), 1.0)]
    if rng.random() < 0.6:  # a fainter, thinner reflection on the other side
        streaks.append((-float(rng.uniform(0.45, 0.7)), float(rng.uniform(0.02, 0.035)), 0.55))
    mid = (b0 + b1) / 2.0
    for offset, sigma, rel in streaks:
        centre = mid + side * offset * width / 2.0
        across = np.exp(-((b - centre) ** 2) / (2.0 * (sigma * width) ** 2))
        out = np.maximum(out, rel * float(rng.uniform(*strength)) * across * along)
    return out.astype(np.float32)


def _spots(
    rng: np.random.Generator,
    mask: np.ndarray,
    xx: np.ndarray,
    yy: np.ndarray,
    light: np.ndarray,
    strength: tuple[float, float],
    min_area: int,
) -> np.ndarray:
    """Return one soft spot, elongated across the light direction, per connected region of ``mask``."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = np.zeros(mask.shape, dtype=np.float32)
    perp = np.array([-light[1], light[0]])
    for k in range(1, n):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        r = math.sqrt(area / math.pi)
        centre = centroids[k] + light * r * float(rng.uniform(0.25, 0.4)) + rng.normal(0.0, 0.05 * r, 2)
        s_major = r * float(rng.uniform(0.22, 0.32))
        s_minor = s_major * float(rng.uniform(0.5, 0.7))
        dx, dy = xx - centre[0], yy - centre[1]
        p, q = dx * perp[0] + dy * perp[1], dx * light[0] + dy * light[1]
        spot = np.exp(-(p**2) / (2.0 * s_major**2) - q**2 / (2.0 * s_minor**2))
        out = np.maximum(out, float(rng.uniform(*strength)) * spot)
    return out.astype(np.float32)


def sensor_noise(rng: np.random.Generator, image: np.ndarray, read_sigma: float, shot_gain: float) -> np.ndarray:
    """Return float32 ``image`` (H, W, 3, grey levels 0-255) plus signal-dependent Gaussian sensor noise of
    variance ``read_sigma**2 + shot_gain * signal`` per pixel and channel."""
    var = read_sigma**2 + shot_gain * np.clip(image, 0.0, 255.0)
    return (image + rng.standard_normal(image.shape, dtype=np.float32) * np.sqrt(var)).astype(np.float32)


def photograph(
    sample: Sample,
    rng: np.random.Generator,
    glossy: Sequence[int] = (),
    style: HighlightStyle = "spot",
    settings: PhotoSettings | None = None,
) -> Sample:
    """Return ``sample`` as a camera would have taken it; only the image changes.

    In order: uneven illumination and a colour-temperature shift (multiplicative), specular highlights inside the
    ``glossy`` component classes blended toward the (tinted) white of the light, vignetting, defocus blur and
    signal-dependent sensor noise (:class:`PhotoSettings`). Deterministic for the state of ``rng``; draw it after
    the base render so the scene is the one rendered without this layer.

    Args:
        sample: the rendered image ((H, W, 3) uint8 RGB) with its ground truth.
        rng: the image's generator.
        glossy: component_gt values (1-based classes) of shiny parts that get highlights (:func:`class_ids`).
        style: the highlight shape of the glossy parts.
        settings: strengths (default :class:`PhotoSettings`).

    Returns:
        A new Sample with the (H, W, 3) uint8 image; ``component_gt``, defect masks and facts are the input's.
    """
    cfg = settings or PhotoSettings()
    image = sample.image.astype(np.float32)
    shape = (image.shape[0], image.shape[1])
    gain, light = illumination(rng, shape, cfg.illumination, cfg.gradient_share, cfg.shading_cells)
    tint = colour_temperature(rng, cfg.temperature)
    image = image * gain[..., None] * tint
    weight = specular_highlights(rng, sample.component_gt, glossy, light, style, cfg.highlight)
    white = np.minimum(255.0 * tint, 255.0)
    image = image + weight[..., None] * (white - image)
    image = image * vignetting(rng, shape, cfg.vignette)[..., None]
    image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(*cfg.blur_sigma)))
    image = sensor_noise(rng, image, float(rng.uniform(*cfg.read_noise)), float(rng.uniform(*cfg.shot_noise)))
    out = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Sample(image=out, component_gt=sample.component_gt, defect_masks=sample.defect_masks, facts=sample.facts)
