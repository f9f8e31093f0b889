"""``breakfast_box``: a tray with two compartments.

Left: exactly 2 tangerines and 1 nectarine. Right: a cereal bed with exactly 6 banana chips and 4 almonds.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from csad.data.synth.base import CategoryRenderer, DefectSpec, Sample
from csad.data.synth.scene import (
    SUPERSAMPLE,
    Canvas,
    Color,
    GlobalTransform,
    Part,
    ellipse_polygon,
    jitter_color,
    sample_disks,
    transform_points,
)

TANGERINE, NECTARINE, CEREAL, CHIP, ALMOND = 1, 2, 3, 4, 5
N_TANGERINE, N_NECTARINE, N_CHIP, N_ALMOND = 2, 1, 6, 4

# Geometry in units of the image side.
R_TANGERINE, R_NECTARINE, R_CHIP = 0.075, 0.085, 0.032
ALMOND_AXES = (0.036, 0.019)
LEFT = (0.13, 0.22, 0.43, 0.80)  # compartment interiors (x0, y0, x1, y1) in the product frame
RIGHT = (0.49, 0.22, 0.88, 0.80)
# Hard variant (chips_match_cereal): chip body / seed ring = the cereal's colour times these factors, smooth surface;
# the cereal bed gets a coarse multiplicative grain (relative amplitude, blob sigma in units of the image side).
CHIP_SHADE, CHIP_RING_SHADE, CHIP_SMOOTH_TEXTURE = 1.08, 0.86, 1.2
CEREAL_GRAIN, CEREAL_GRAIN_SIGMA = 0.12, 0.0049
CHIP_COLOR, CHIP_RING_COLOR = (236.0, 222.0, 160.0), (200.0, 175.0, 110.0)


class BreakfastBox(CategoryRenderer):
    """Renderer of the ``breakfast_box`` category."""

    name = "breakfast_box"
    component_classes = ("tangerine", "nectarine", "cereal", "banana_chip", "almond")
    #: Hard variant (``breakfast_box_photo``): the banana chips take a slightly lighter shade of the cereal bed's
    #: colour and a smooth surface while the cereal gets a coarse grain, so texture (grainy cereal vs smooth chip
    #: with its seed ring), not colour, separates the chips from the cereal they lie on. False (the default)
    #: renders byte-identically to a renderer without this option.
    chips_match_cereal: bool = False

    def defect_specs(self, size: int) -> list[DefectSpec]:
        """Return the defect types with saturation = nominal object areas at ``size``."""
        s2 = float(size) ** 2
        tang = int(math.pi * R_TANGERINE**2 * s2)
        nect = int(math.pi * R_NECTARINE**2 * s2)
        chip = int(math.pi * R_CHIP**2 * s2)
        almond = int(math.pi * ALMOND_AXES[0] * ALMOND_AXES[1] * s2)
        return [
            DefectSpec("missing_fruit", "logical", tang, False),
            DefectSpec("extra_fruit", "logical", tang, False),
            DefectSpec("two_nectarines", "logical", nect, False),
            DefectSpec("missing_almonds", "logical", almond, False),
            DefectSpec("extra_almonds", "logical", almond, False),
            DefectSpec("missing_banana_chips", "logical", chip, False),
            DefectSpec("extra_banana_chips", "logical", chip, False),
            DefectSpec("fruit_in_right_compartment", "logical", tang, False),
            DefectSpec("rim_dent", "structural", 1.0, True),
            DefectSpec("cracked_fruit", "structural", 1.0, True),
            DefectSpec("foreign_object", "structural", 1.0, True),
        ]

    def violations(self, facts: dict[str, Any]) -> list[str]:
        """Return the broken constraints among fruit/topping counts and placement."""
        out = []
        if facts["tangerines_left"] != N_TANGERINE:
            out.append(f"{facts['tangerines_left']} tangerines in the left compartment, expected {N_TANGERINE}")
        if facts["nectarines_left"] != N_NECTARINE:
            out.append(f"{facts['nectarines_left']} nectarines in the left compartment, expected {N_NECTARINE}")
        if facts["fruits_right"] != 0:
            out.append(f"{facts['fruits_right']} fruits in the right compartment, expected 0")
        if facts["chips"] != N_CHIP:
            out.append(f"{facts['chips']} banana chips, expected {N_CHIP}")
        if facts["almonds"] != N_ALMOND:
            out.append(f"{facts['almonds']} almonds, expected {N_ALMOND}")
        return out

    # ------------------------------------------------------------------------------------------------------
    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one breakfast box image, optionally with ``defect``."""
        for _ in range(50):
            sample = self._try_render(rng, size, defect)
            if sample is not None:
                return sample
        raise RuntimeError(f"breakfast_box: no layout found for defect {defect!r} at size {size}")

    def _try_render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample | None:
        s = float(size)
        gt = GlobalTransform.random(rng, (size, size))
        canvas = Canvas(size, size, rng)
        canvas.fill_background(jitter_color(rng, (96, 84, 70), 0.05), texture=5.0, blotches=14.0)

        def box(b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
            return (b[0] * s, b[1] * s, b[2] * s, b[3] * s)

        # --- the logical content: which fruits go where --------------------------------------------------
        left_fruits = [TANGERINE] * N_TANGERINE + [NECTARINE] * N_NECTARINE
        right_fruits: list[int] = []
        n_chip, n_almond = N_CHIP, N_ALMOND
        if defect == "missing_fruit":
            left_fruits.pop(int(rng.integers(len(left_fruits))))
        elif defect == "extra_fruit":
            left_fruits.append(TANGERINE)
        elif defect == "two_nectarines":
            left_fruits[0] = NECTARINE
        elif defect == "missing_almonds":
            n_almond -= int(rng.integers(1, 3))
        elif defect == "extra_almonds":
            n_almond += int(rng.integers(1, 3))
        elif defect == "missing_banana_chips":
            n_chip -= int(rng.integers(1, 3))
        elif defect == "extra_banana_chips":
            n_chip += int(rng.integers(1, 3))
        elif defect == "fruit_in_right_compartment":
            right_fruits.append(left_fruits.pop(int(rng.integers(len(left_fruits)))))

        def fruit_radius(kind: int) -> float:
            return (R_TANGERINE if kind == TANGERINE else R_NECTARINE) * s * rng.uniform(0.94, 1.06)

        # Layout of the NORMAL content first (so a missing object has a place it "should" be).
        normal_left = [TANGERINE] * N_TANGERINE + [NECTARINE] * N_NECTARINE
        if defect == "extra_fruit":
            normal_left = left_fruits
        radii_left = [fruit_radius(k) for k in normal_left]
        centres_left = sample_disks(rng, radii_left, box(LEFT), gap=-0.005 * s)
        if centres_left is None:
            return None
        right_radii_fruit = [fruit_radius(k) for k in right_fruits]
        centres_right_fruit = sample_disks(rng, right_radii_fruit, box(RIGHT), gap=0.0) if right_fruits else []
        if centres_right_fruit is None:
            return None
        occupied = [(x, y, r) for (x, y), r in zip(centres_right_fruit, right_radii_fruit, strict=True)]
        topping_r = R_CHIP * s
        almond_r = ALMOND_AXES[0] * s
        n_chip_layout, n_almond_layout = max(n_chip, N_CHIP), max(n_almond, N_ALMOND)
        radii = [topping_r] * n_chip_layout + [almond_r] * n_almond_layout
        inner_right = (RIGHT[0] + 0.03, RIGHT[1] + 0.03, RIGHT[2] - 0.03, RIGHT[3] - 0.03)
        centres_top = sample_disks(rng, radii, box(inner_right), occupied=occupied, gap=0.006 * s)
        if centres_top is None:
            return None
        chip_centres = centres_top[:n_chip_layout]
        almond_centres = centres_top[n_chip_layout:]

        # --- draw: tray, compartments, cereal --------------------------------------------------------------
        tray_col = jitter_color(rng, (222, 220, 212), 0.02)
        canvas.draw(
            Part(
                gt(_rounded_rect(0.5 * s, 0.51 * s, 0.86 * s, 0.70 * s, 0.05 * s)), tray_col, shading=0.15, texture=2.0
            )
        )
        floor_col = jitter_color(rng, (196, 194, 186), 0.02)
        for b in (LEFT, RIGHT):
            x0, y0, x1, y1 = box(b)
            canvas.draw(
                Part(
                    gt(_rounded_rect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.03 * s)),
                    floor_col,
                    shading=-0.12,
                    texture=2.0,
                )
            )
        cereal_col = jitter_color(rng, (200, 160, 105), 0.05)
        x0, y0, x1, y1 = box(RIGHT)
        bed = _blob(rng, ((x0 + x1) / 2, (y0 + y1) / 2), ((x1 - x0) / 2 * 0.93, (y1 - y0) / 2 * 0.93), 0.05)
        bed_ss = canvas.draw(Part(gt(bed), cereal_col, cls=CEREAL, obj=1000, shading=0.1, texture=14.0))
        # dark flakes in the cereal
        for _ in range(int(60 * (s / 256) ** 2)):
            fx, fy = rng.uniform(x0 + 0.02 * s, x1 - 0.02 * s), rng.uniform(y0 + 0.02 * s, y1 - 0.02 * s)
            flake = ellipse_polygon(gt(np.array([[fx, fy]]))[0], (0.006 * s, 0.004 * s), rng.uniform(0, 180), 8)
            canvas.draw(
                Part(flake, jitter_color(rng, (150, 110, 65), 0.1), cls=CEREAL, shading=0.0, texture=3.0),
                region=canvas.upsample_region(canvas.footprint([Part(gt(bed), (0, 0, 0))])),
            )
        if self.chips_match_cereal:
            _grain(canvas, rng, bed_ss, CEREAL_GRAIN, CEREAL_GRAIN_SIGMA * s * SUPERSAMPLE)

        # --- fruits ------------------------------------------------------------------------------------------
        obj = 0
        fruit_objs: dict[int, list[int]] = {TANGERINE: [], NECTARINE: []}
        fruit_parts: dict[int, list[Part]] = {}
        missing_parts: list[list[Part]] = []
        left_layout = list(zip(normal_left, centres_left, radii_left, strict=True))
        drop = -1  # index of the laid-out fruit that is absent from the left compartment
        if defect in ("missing_fruit", "fruit_in_right_compartment"):
            gone = list(normal_left)
            for k in left_fruits:
                gone.remove(k)
            drop = next(i for i, (k, _, _) in enumerate(left_layout) if k == gone[0])
        for i, (kind, (cx, cy), r) in enumerate(left_layout):
            if defect == "two_nectarines" and i == 0:
                kind = NECTARINE
            parts = _fruit_parts(rng, gt((cx, cy)), r * gt.scale, kind, obj)
            if i == drop:
                missing_parts.append(parts)
            else:
                canvas.draw_all(parts)
                fruit_objs[kind].append(obj)
                fruit_parts[obj] = parts
            obj += 1
        right_fruit_objs = []
        for kind, (cx, cy), r in zip(right_fruits, centres_right_fruit, right_radii_fruit, strict=True):
            parts = _fruit_parts(rng, gt((cx, cy)), r * gt.scale, kind, obj)
            canvas.draw_all(parts)
            right_fruit_objs.append(obj)
            fruit_parts[obj] = parts
            obj += 1

        # --- toppings ------------------------------------------------------------------------------------------
        chip_objs, almond_objs, missing_topping_parts = [], [], []
        for i, (cx, cy) in enumerate(chip_centres):
            r_chip = topping_r * gt.scale * rng.uniform(0.92, 1.08)
            parts = _chip_parts(rng, gt((cx, cy)), r_chip, obj, cereal_col if self.chips_match_cereal else None)
            if i < n_chip:
                canvas.draw_all(parts)
                chip_objs.append(obj)
            else:
                missing_topping_parts.append(parts)
            obj += 1
        for i, (cx, cy) in enumerate(almond_centres):
            parts = _almond_parts(rng, gt((cx, cy)), s * gt.scale, gt.angle(rng.uniform(0, 180)), obj)
            if i < n_almond:
                canvas.draw_all(parts)
                almond_objs.append(obj)
            else:
                missing_topping_parts.append(parts)
            obj += 1

        # --- structural defects ---------------------------------------------------------------------------------
        masks: list[np.ndarray] = []
        if defect == "rim_dent":
            masks.append(_rim_dent(canvas, rng, gt, s, tray_col))
        elif defect == "cracked_fruit":
            victim = int(rng.choice(fruit_objs[TANGERINE] + fruit_objs[NECTARINE]))
            masks.append(_crack(canvas, rng, fruit_parts[victim][0]))
        elif defect == "foreign_object":
            masks.append(_shard(canvas, rng, gt, s))

        # --- logical GT (MVTec LOCO policy) ---------------------------------------------------------------------
        if defect in ("missing_fruit",):
            masks.append(canvas.footprint(missing_parts[0]))
        elif defect == "fruit_in_right_compartment":
            masks.append(canvas.footprint(missing_parts[0]) | canvas.object_mask(right_fruit_objs[0]))
        elif defect == "extra_fruit":
            masks.append(_union(canvas, fruit_objs[TANGERINE]))
        elif defect == "two_nectarines":
            masks.append(_union(canvas, fruit_objs[NECTARINE]))
        elif defect in ("missing_almonds", "missing_banana_chips"):
            masks.extend(canvas.footprint(p) for p in missing_topping_parts)
        elif defect == "extra_almonds":
            masks.append(_union(canvas, almond_objs))
        elif defect == "extra_banana_chips":
            masks.append(_union(canvas, chip_objs))

        image, classes = canvas.finish(
            light=0.12, blur_sigma=float(rng.uniform(0.4, 0.9)), noise_sigma=float(rng.uniform(2.0, 4.0))
        )
        facts = {
            "tangerines_left": left_fruits.count(TANGERINE),
            "nectarines_left": left_fruits.count(NECTARINE),
            "fruits_right": len(right_fruits),
            "chips": n_chip,
            "almonds": n_almond,
        }
        return Sample(image=image, component_gt=classes, defect_masks=[m for m in masks if m.any()], facts=facts)


# -- shapes -----------------------------------------------------------------------------------------------------
def _rounded_rect(cx: float, cy: float, w: float, h: float, r: float) -> np.ndarray:
    """Return the vertices of an axis-aligned rounded rectangle."""
    pts = []
    for (qx, qy), start in zip(((1, 1), (-1, 1), (-1, -1), (1, -1)), (0, 90, 180, 270), strict=True):
        ccx, ccy = cx + qx * (w / 2 - r), cy + qy * (h / 2 - r)
        for a in np.linspace(start, start + 90, 6):
            pts.append((ccx + r * math.cos(math.radians(a)), ccy + r * math.sin(math.radians(a))))
    return np.array(pts)


def _blob(
    rng: np.random.Generator, centre: tuple[float, float], axes: tuple[float, float], wobble: float, n: int = 64
) -> np.ndarray:
    """Return an irregular closed outline around an ellipse (radius modulated by a few random harmonics)."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    rad = np.ones_like(t)
    for k in range(2, 6):
        rad += wobble / k * math.sqrt(2) * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    return np.stack([centre[0] + axes[0] * rad * np.cos(t), centre[1] + axes[1] * rad * np.sin(t)], axis=1)


def _fruit_parts(rng: np.random.Generator, centre: np.ndarray, r: float, kind: int, obj: int) -> list[Part]:
    """Return a round fruit: a slightly irregular disk with shading, a highlight and (nectarine) a blush."""
    centre = np.asarray(centre, dtype=float).reshape(2)
    body = _blob(rng, (centre[0], centre[1]), (r, r * rng.uniform(0.92, 1.0)), 0.03)
    body = transform_points(body - centre, centre, rng.uniform(0, 180))
    if kind == TANGERINE:
        col = jitter_color(rng, (238, 138, 30), 0.05)
        parts = [Part(body, col, cls=TANGERINE, obj=obj, shading=0.35, texture=5.0, highlight=0.12)]
    else:
        col = jitter_color(rng, (196, 52, 40), 0.06)
        parts = [Part(body, col, cls=NECTARINE, obj=obj, shading=0.4, texture=5.0, highlight=0.1)]
        off = rng.normal(0, 0.25, 2) * r
        blush = ellipse_polygon(centre + off, (r * 0.45, r * 0.35), rng.uniform(0, 180), 24)
        parts.append(
            Part(
                blush,
                jitter_color(rng, (222, 150, 60), 0.05),
                cls=NECTARINE,
                obj=obj,
                shading=0.0,
                texture=4.0,
                opacity=0.55,
            )
        )
    return parts


def _chip_parts(
    rng: np.random.Generator, centre: np.ndarray, r: float, obj: int, cereal: Color | None = None
) -> list[Part]:
    """Return a banana chip: a pale disk with a darker ring of seeds.

    With ``cereal`` (the hard variant) the chip keeps its per-chip colour jitter but on shades of the cereal's
    colour (body x CHIP_SHADE, ring x CHIP_RING_SHADE) and has a smooth surface.
    """
    centre = np.asarray(centre, dtype=float).reshape(2)
    col = jitter_color(rng, CHIP_COLOR, 0.04)
    body = _blob(rng, (centre[0], centre[1]), (r, r), 0.04, n=32)
    ring = ellipse_polygon(centre, (r * 0.55, r * 0.55), 0.0, 24)
    ring_col = jitter_color(rng, CHIP_RING_COLOR, 0.05)
    texture = 4.0
    if cereal is not None:
        col = _like(col, CHIP_COLOR, cereal, CHIP_SHADE)
        ring_col = _like(ring_col, CHIP_RING_COLOR, cereal, CHIP_RING_SHADE)
        texture = CHIP_SMOOTH_TEXTURE
    return [
        Part(body, col, cls=CHIP, obj=obj, shading=0.25, texture=texture),
        Part(
            ring,
            ring_col,
            cls=CHIP,
            obj=obj,
            thickness=max(1.0, r * 0.12),
            shading=0.0,
            texture=2.0,
        ),
    ]


def _grain(canvas: Canvas, rng: np.random.Generator, region: np.ndarray, amount: float, sigma: float) -> None:
    """Multiply the canvas inside the supersampled boolean ``region`` by ``1 + amount * g``, with ``g`` unit-variance
    Gaussian noise blurred by ``sigma`` supersampled pixels (clipped to +-2.5): a coarse grain such as oat flakes
    that keeps the mean colour."""
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, region.shape).astype(np.float32), (0, 0), sigma)
    noise = np.clip(noise / max(float(noise.std()), 1e-6), -2.5, 2.5)
    canvas.rgb[region] *= (1.0 + amount * noise[region])[:, None]


def _like(jittered: Color, base: Color, target: Color, factor: float) -> Color:
    """Return ``target`` times ``factor`` with the per-channel jitter that turned ``base`` into ``jittered``."""
    out = [min(255.0, t * factor * j / b) for j, b, t in zip(jittered, base, target, strict=True)]
    return (out[0], out[1], out[2])


def _almond_parts(rng: np.random.Generator, centre: np.ndarray, s: float, angle: float, obj: int) -> list[Part]:
    """Return an almond: a pointed brown ellipse."""
    centre = np.asarray(centre, dtype=float).reshape(2)
    a, b = ALMOND_AXES[0] * s * rng.uniform(0.93, 1.07), ALMOND_AXES[1] * s * rng.uniform(0.93, 1.07)
    t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    # a teardrop: narrower on one end
    pts = np.stack([a * np.cos(t), b * np.sin(t) * (1 - 0.35 * np.cos(t))], axis=1)
    return [
        Part(
            transform_points(pts, centre, angle),
            jitter_color(rng, (150, 88, 48), 0.06),
            cls=ALMOND,
            obj=obj,
            shading=0.45,
            texture=5.0,
            highlight=0.06,
        )
    ]


def _union(canvas: Canvas, objs: list[int]) -> np.ndarray:
    out = np.zeros((canvas.height, canvas.width), dtype=bool)
    for o in objs:
        out |= canvas.object_mask(o)
    return out


# -- structural defects -------------------------------------------------------------------------------------------
def _rim_dent(canvas: Canvas, rng: np.random.Generator, gt: GlobalTransform, s: float, tray_col: tuple) -> np.ndarray:
    """Draw a dark crushed notch on the tray rim; return its mask."""
    side = int(rng.integers(4))
    t = rng.uniform(0.2, 0.8)
    x0, y0, x1, y1 = 0.07 * s, 0.16 * s, 0.93 * s, 0.86 * s
    pos = [(x0 + t * (x1 - x0), y0), (x0 + t * (x1 - x0), y1), (x0, y0 + t * (y1 - y0)), (x1, y0 + t * (y1 - y0))][side]
    w, h = (0.07 * s, 0.035 * s) if side < 2 else (0.035 * s, 0.07 * s)
    dent = _blob(rng, pos, (w / 2 * 1.2, h / 2 * 1.2), 0.15, n=24)
    col = tuple(c * 0.55 for c in tray_col)
    canvas.draw(Part(gt(dent), col, shading=0.5, texture=8.0))
    return canvas.footprint([Part(gt(dent), col)])


def _crack(canvas: Canvas, rng: np.random.Generator, fruit: Part) -> np.ndarray:
    """Draw a bite (pale flesh wedge with a dark edge) into a fruit; return its mask (clipped to the fruit)."""
    poly = np.asarray(fruit.polygon)
    centre = poly.mean(axis=0)
    r = float(np.linalg.norm(poly - centre, axis=1).mean())
    ang = rng.uniform(0, 2 * math.pi)
    edge = centre + r * np.array([math.cos(ang), math.sin(ang)])
    bite = ellipse_polygon(edge, (r * 0.55, r * 0.4), math.degrees(ang) + 90, 24)
    region = canvas.upsample_region(canvas.footprint([fruit]))
    canvas.draw(Part(bite, (245, 205, 120), cls=fruit.cls, shading=0.2, texture=6.0), region=region)
    canvas.draw(
        Part(bite, (90, 45, 20), cls=fruit.cls, thickness=max(1.0, r * 0.08), shading=0.0, texture=2.0), region=region
    )
    return canvas.footprint([Part(bite, (0, 0, 0))]) & canvas.footprint([fruit])


def _shard(canvas: Canvas, rng: np.random.Generator, gt: GlobalTransform, s: float) -> np.ndarray:
    """Draw a blue plastic shard somewhere on the tray; return its mask."""
    cx, cy = rng.uniform(0.15, 0.85) * s, rng.uniform(0.25, 0.78) * s
    n = int(rng.integers(4, 7))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    rad = rng.uniform(0.02, 0.05, n) * s
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)
    part = Part(gt(pts), jitter_color(rng, (40, 90, 200), 0.08), shading=0.2, texture=4.0, highlight=0.15)
    canvas.draw(part)
    return canvas.footprint([part])
