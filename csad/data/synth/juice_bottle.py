"""``juice_bottle``: an upright glass bottle of juice with a front label and a band label.

The juice is one of three kinds (orange, cherry, banana) and fills the bottle up to a fixed level in the neck.
The front label on the middle of the bottle carries a fruit icon that must match the juice; a white band label
wraps around the bottle near its bottom.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from csad.data.synth.base import CategoryRenderer, DefectSpec, Sample
from csad.data.synth.scene import (
    Canvas,
    Color,
    GlobalTransform,
    Part,
    ellipse_polygon,
    jitter_color,
    rect_polygon,
    transform_points,
)

LIQUID_ORANGE, LIQUID_RED, LIQUID_YELLOW, FRONT_LABEL, ICON_ORANGE, ICON_CHERRY, ICON_BANANA, BAND_LABEL = range(1, 9)
JUICES = ("orange", "cherry", "banana")
LIQUID_CLS = {"orange": LIQUID_ORANGE, "cherry": LIQUID_RED, "banana": LIQUID_YELLOW}
ICON_CLS = {"orange": ICON_ORANGE, "cherry": ICON_CHERRY, "banana": ICON_BANANA}
LIQUID_COLOR: dict[str, Color] = {"orange": (234, 124, 24), "cherry": (122, 12, 30), "banana": (236, 208, 112)}

# Bottle profile in units of the image side: x relative to the bottle axis, y in the product frame (0 = top).
CAP_TOP, CAP_BOTTOM, CAP_HW = 0.035, 0.088, 0.064
TOP, NECK_END, SHOULDER_END, BOTTOM = 0.05, 0.20, 0.35, 0.955
NECK_HW, BODY_HW, BOTTOM_R, GLASS = 0.052, 0.150, 0.035, 0.011
INNER_TOP, INNER_BOTTOM = CAP_BOTTOM, 0.935
# Fill level = fraction of the inner height (INNER_BOTTOM -> INNER_TOP) that is liquid. Nominal surface: y = 0.20.
FILL_NOMINAL = (INNER_BOTTOM - 0.20) / (INNER_BOTTOM - INNER_TOP)
FILL_JITTER, FILL_TOLERANCE = 0.012, 0.05
# Labels (product frame).
LABEL_CY, LABEL_W, LABEL_H = 0.53, 0.25, 0.22
ICON_DY, ICON_R = -0.04, 0.042  # icon centre relative to the label centre, nominal icon radius
BAND_Y0, BAND_Y1 = 0.80, 0.87
LABEL_OFFSET_TOLERANCE = 0.04
# Hard variant (label_matches_liquid): the label paper is the liquid's colour times a factor drawn from LABEL_SHADE
# (a slightly darker or lighter shade, Lab distance 1-8), printed all over with a pattern in a darker shade of the
# paper (LABEL_INK times the paper colour; the print darkens the label's mean, so the paper leans lighter). On a
# dark paper (luma < DARK_LUMA, the cherry juice) a darker print would hardly show: the print is a lighter tint of
# the paper instead (mixed toward white by DARK_LABEL_TINT) and the paper leans darker.
LABEL_SHADE, LABEL_INK = (0.95, 1.10), (0.52, 0.62)
DARK_LABEL_SHADE, DARK_LABEL_TINT, DARK_LUMA = (0.88, 0.98), (0.28, 0.36), 90.0


class JuiceBottle(CategoryRenderer):
    """Renderer of the ``juice_bottle`` category."""

    name = "juice_bottle"
    component_classes = (
        "liquid_orange",
        "liquid_red",
        "liquid_yellow",
        "front_label",
        "icon_orange",
        "icon_cherry",
        "icon_banana",
        "band_label",
    )
    #: Hard variant (``juice_bottle_photo``): the front label's paper is a slightly lighter or darker shade of the
    #: juice's colour (Lab distance 1-8), printed all over with fine stripes or dots in a darker shade of the same
    #: hue (a lighter tint on the dark cherry label), so texture, not colour, separates the label from the liquid;
    #: the fruit icon gets a light keyline. False (the default) renders byte-identically to a renderer without
    #: this option.
    label_matches_liquid: bool = False

    def defect_specs(self, size: int) -> list[DefectSpec]:
        """Return the defect types with saturation = nominal object areas at ``size``."""
        s2 = float(size) ** 2
        label = int(LABEL_W * LABEL_H * s2)
        band = int(2 * BODY_HW * (BAND_Y1 - BAND_Y0) * s2)
        icon = int(math.pi * ICON_R**2 * s2)
        return [
            DefectSpec("wrong_icon", "logical", icon, False),
            DefectSpec("missing_front_label", "logical", label, False),
            DefectSpec("missing_band_label", "logical", band, False),
            DefectSpec("fill_too_low", "logical", 1.0, True),
            DefectSpec("fill_too_high", "logical", 1.0, True),
            DefectSpec("label_shifted", "logical", label, False),
            DefectSpec("torn_label", "structural", 1.0, True),
            DefectSpec("contamination", "structural", 1.0, True),
            DefectSpec("scratch", "structural", 1.0, True),
        ]

    def violations(self, facts: dict[str, Any]) -> list[str]:
        """Return the broken constraints among labels, icon/juice match, fill level and label placement."""
        out = []
        if not facts["front_label"]:
            out.append("front label missing")
        elif facts["icon"] != facts["liquid"]:
            out.append(f"{facts['icon']} icon on a bottle of {facts['liquid']} juice")
        if facts["front_label"] and abs(facts["label_offset"]) > LABEL_OFFSET_TOLERANCE:
            out.append(
                f"front label {facts['label_offset']:.3f} away from its place (tolerance {LABEL_OFFSET_TOLERANCE})"
            )
        if not facts["band_label"]:
            out.append("band label missing")
        fill = facts["fill_level"]
        if fill < FILL_NOMINAL - FILL_TOLERANCE:
            out.append(f"fill level {fill:.3f} too low (nominal {FILL_NOMINAL:.3f} +- {FILL_TOLERANCE})")
        elif fill > FILL_NOMINAL + FILL_TOLERANCE:
            out.append(f"fill level {fill:.3f} too high (nominal {FILL_NOMINAL:.3f} +- {FILL_TOLERANCE})")
        return out

    # ------------------------------------------------------------------------------------------------------
    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one juice bottle image, optionally with ``defect``."""
        s = float(size)
        gt = GlobalTransform.random(rng, (size, size), max_angle=1.2, max_scale=0.03, max_shift=0.02)
        canvas = Canvas(size, size, rng)
        canvas.fill_background(jitter_color(rng, (40, 38, 36), 0.05), texture=4.0, blotches=8.0, cells=5)

        # --- the logical content ---------------------------------------------------------------------------
        liquid = JUICES[int(rng.integers(3))]
        icon: str | None = liquid
        has_label, has_band = True, True
        fill = FILL_NOMINAL + float(rng.uniform(-FILL_JITTER, FILL_JITTER))
        if defect == "wrong_icon":
            icon = [j for j in JUICES if j != liquid][int(rng.integers(2))]
        elif defect == "missing_front_label":
            has_label, icon = False, None
        elif defect == "missing_band_label":
            has_band = False
        elif defect == "fill_too_low":
            fill = FILL_NOMINAL - float(rng.uniform(0.13, 0.24))
        elif defect == "fill_too_high":
            fill = FILL_NOMINAL + float(rng.uniform(0.08, 0.115))

        # --- placement: the bottle on its axis, then the labels on the bottle ---------------------------------
        axis = (float(0.5 + rng.uniform(-0.012, 0.012)) * s, float(0.5 + rng.uniform(-0.008, 0.008)) * s)
        tilt = float(rng.uniform(-1.0, 1.0))
        wscale = float(rng.uniform(0.98, 1.02))

        def place(pts: np.ndarray) -> np.ndarray:
            """Bottle coordinates (x from the axis, y in the product frame, units of the side) -> image pixels."""
            local = (np.asarray(pts, dtype=np.float64) - np.array([0.0, 0.5])) * np.array([wscale * s, s])
            return gt(transform_points(local, axis, tilt))

        # nominal label pose (small per-image jitter) and the actual one
        nominal_pose = (
            float(rng.uniform(-0.005, 0.005)),
            float(rng.uniform(-0.008, 0.008)),
            float(rng.uniform(-1.2, 1.2)),
        )
        pose = nominal_pose
        if defect == "label_shifted":
            dy = float(rng.uniform(0.09, 0.12)) if rng.random() < 0.6 else -float(rng.uniform(0.075, 0.09))
            angle = float(rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 6.0))
            pose = (nominal_pose[0] + float(rng.uniform(-0.015, 0.015)), nominal_pose[1] + dy, angle)
        label_offset = math.hypot(pose[0], pose[1])

        # --- glass, cap, liquid --------------------------------------------------------------------------------
        glass_col = jitter_color(rng, (150, 156, 150), 0.03)
        canvas.draw(Part(place(_profile(TOP, BOTTOM)), glass_col, shading=0.3, texture=2.0, opacity=0.32))
        canvas.draw(
            Part(
                place(_profile(INNER_TOP, INNER_BOTTOM, inset=GLASS)),
                (20, 22, 22),
                shading=0.0,
                texture=1.0,
                opacity=0.25,
            )
        )
        canvas.draw(
            Part(
                place(_profile(TOP, BOTTOM)),
                jitter_color(rng, (190, 196, 190), 0.03),
                cls=-1,
                thickness=max(1.0, 0.004 * s),
                shading=0.0,
                texture=2.0,
                opacity=0.55,
            )
        )
        cap = rect_polygon((0.0, (CAP_TOP + CAP_BOTTOM) / 2), (2 * CAP_HW, CAP_BOTTOM - CAP_TOP))
        canvas.draw(
            Part(place(cap), jitter_color(rng, (168, 166, 158), 0.04), shading=0.45, texture=4.0, highlight=0.08)
        )
        for k in range(1, 4):  # ribs of the cap
            yk = CAP_TOP + k * (CAP_BOTTOM - CAP_TOP) / 4
            canvas.draw(
                Part(
                    place(np.array([[-CAP_HW, yk], [CAP_HW, yk]])),
                    (95, 95, 90),
                    cls=-1,
                    thickness=max(1.0, 0.003 * s),
                    closed=False,
                    shading=0.0,
                    texture=1.0,
                    opacity=0.6,
                )
            )

        liq_cls = LIQUID_CLS[liquid]
        liq_col = jitter_color(rng, LIQUID_COLOR[liquid], 0.04, 0.05)
        surface = _surface_y(fill)
        canvas.draw(
            Part(
                place(_profile(surface, INNER_BOTTOM, inset=GLASS)),
                liq_col,
                cls=liq_cls,
                obj=0,
                shading=0.22,
                texture=3.0,
                opacity=0.94,
            )
        )
        hw_s = float(_outer_hw(np.array([surface]))[0]) - GLASS
        meniscus = ellipse_polygon((0.0, surface), (hw_s, 0.006), 0.0, 32)
        canvas.draw(
            Part(
                place(meniscus),
                tuple(min(255.0, c * 1.25 + 12) for c in liq_col),
                cls=liq_cls,
                shading=0.0,
                texture=2.0,
                opacity=0.8,
            )
        )

        masks: list[np.ndarray] = []
        if defect == "contamination":
            masks.append(_contamination(canvas, rng, place))

        # --- labels ----------------------------------------------------------------------------------------------
        label_col = jitter_color(rng, (238, 232, 212), 0.02, 0.04)
        pattern: list[Part] = []  # printed pattern of the hard variant (label coordinates), under icon and text
        keyline: Color | None = None
        if self.label_matches_liquid:
            if 0.299 * liq_col[0] + 0.587 * liq_col[1] + 0.114 * liq_col[2] < DARK_LUMA:
                label_col = _shade(liq_col, float(rng.uniform(*DARK_LABEL_SHADE)))
                ink = _tint(label_col, float(rng.uniform(*DARK_LABEL_TINT)))
            else:
                label_col = _shade(liq_col, float(rng.uniform(*LABEL_SHADE)))
                ink = _shade(label_col, float(rng.uniform(*LABEL_INK)))
            pattern = _label_print(rng, ink)
            keyline = jitter_color(rng, (244, 240, 228), 0.02, 0.03)
        nominal_label = _label_parts(rng, nominal_pose, label_col, liquid, obj=1, pattern=pattern, keyline=keyline)
        label_parts = (
            _label_parts(rng, pose, label_col, icon, obj=1, pattern=pattern, keyline=keyline)
            if has_label
            else nominal_label
        )
        label_px = [_placed(p, place) for p in label_parts]
        if has_label:
            canvas.draw_all(label_px)
        band_col = jitter_color(rng, (242, 242, 238), 0.02, 0.04)
        band_parts = [_placed(p, place) for p in _band_parts(rng, band_col)]
        if has_band:
            canvas.draw_all(band_parts)

        if defect == "torn_label":
            masks.append(_tear(canvas, rng, place, pose, label_px[0], liq_col, liq_cls, s))

        # --- cylinder shading and glass highlights (do not change component classes) ----------------------------
        for a, b, op in ((0.72, 1.0, 0.16), (0.86, 1.0, 0.2), (-1.0, -0.72, 0.16), (-1.0, -0.86, 0.2)):
            canvas.draw(
                Part(place(_profile(TOP, BOTTOM, a, b)), (0, 0, 0), cls=-1, shading=0.0, texture=0.0, opacity=op)
            )
        hl_a = float(rng.uniform(-0.66, -0.58))
        canvas.draw(
            Part(
                place(_profile(SHOULDER_END - 0.04, BOTTOM - 0.04, hl_a, hl_a + 0.1)),
                (255, 255, 255),
                cls=-1,
                shading=0.0,
                texture=0.0,
                opacity=float(rng.uniform(0.18, 0.28)),
            )
        )
        canvas.draw(
            Part(
                place(_profile(CAP_BOTTOM + 0.01, NECK_END + 0.05, hl_a, hl_a + 0.12)),
                (255, 255, 255),
                cls=-1,
                shading=0.0,
                texture=0.0,
                opacity=0.18,
            )
        )
        canvas.draw(
            Part(
                place(_profile(SHOULDER_END, BOTTOM - 0.05, 0.62, 0.67)),
                (255, 255, 255),
                cls=-1,
                shading=0.0,
                texture=0.0,
                opacity=0.1,
            )
        )

        if defect == "scratch":
            masks.append(_scratch(canvas, rng, place, s))

        # --- logical GT (MVTec LOCO policy) ---------------------------------------------------------------------
        nominal_fp = canvas.footprint([_placed(p, place) for p in nominal_label])
        if defect == "wrong_icon":
            icon_fp = canvas.footprint(label_px[1 + len(pattern) : -_N_TEXT])
            masks.append(canvas.visible_class_mask(liq_cls) | icon_fp)
        elif defect == "missing_front_label":
            masks.append(nominal_fp)
        elif defect == "missing_band_label":
            masks.append(canvas.footprint(band_parts[:1]))
        elif defect in ("fill_too_low", "fill_too_high"):
            y0, y1 = sorted((surface, _surface_y(FILL_NOMINAL)))
            masks.append(canvas.footprint([Part(place(_profile(y0, y1, inset=GLASS)), (0, 0, 0))]))
        elif defect == "label_shifted":
            masks.append(canvas.object_mask(1) | nominal_fp)

        image, classes = canvas.finish(
            light=0.14, blur_sigma=float(rng.uniform(0.4, 0.9)), noise_sigma=float(rng.uniform(2.0, 4.0))
        )
        facts = {
            "liquid": liquid,
            "icon": icon,
            "front_label": has_label,
            "band_label": has_band,
            "fill_level": round(fill, 4),
            "label_offset": round(label_offset, 4) if has_label else 0.0,
        }
        return Sample(image=image, component_gt=classes, defect_masks=[m for m in masks if m.any()], facts=facts)


# -- geometry -----------------------------------------------------------------------------------------------------
_N_TEXT = 3  # printed text lines at the end of the front label's parts


def _outer_hw(y: np.ndarray) -> np.ndarray:
    """Return the bottle's outer half-width at product-frame heights ``y`` (units of the side)."""
    y = np.asarray(y, dtype=np.float64)
    hw = np.full_like(y, BODY_HW)
    hw[y < NECK_END] = NECK_HW
    sh = (y >= NECK_END) & (y < SHOULDER_END)
    t = (y[sh] - NECK_END) / (SHOULDER_END - NECK_END)
    hw[sh] = NECK_HW + (BODY_HW - NECK_HW) * (0.5 - 0.5 * np.cos(math.pi * t))
    bot = y > BOTTOM - BOTTOM_R
    dy = np.clip(y[bot] - (BOTTOM - BOTTOM_R), 0.0, BOTTOM_R)
    hw[bot] = BODY_HW - BOTTOM_R + np.sqrt(BOTTOM_R**2 - dy**2)
    return hw


def _profile(y0: float, y1: float, a: float = -1.0, b: float = 1.0, inset: float = 0.0, n: int = 48) -> np.ndarray:
    """Return the polygon of the bottle between heights ``y0`` < ``y1`` and fractions ``a`` < ``b`` of the
    (inset) half-width, in bottle coordinates."""
    ys = np.linspace(y0, y1, n)
    hw = np.maximum(_outer_hw(ys) - inset, 0.0)
    right = np.stack([b * hw, ys], axis=1)
    left = np.stack([a * hw, ys], axis=1)[::-1]
    return np.concatenate([right, left], axis=0)


def _surface_y(fill: float) -> float:
    """Return the product-frame height of the liquid surface for a fill level."""
    return INNER_BOTTOM - fill * (INNER_BOTTOM - INNER_TOP)


def _placed(part: Part, place: Callable[[np.ndarray], np.ndarray]) -> Part:
    """Return a copy of ``part`` (in bottle coordinates) moved to image pixels; thickness in units of the side
    becomes pixels through the same placement."""
    px = place(np.asarray(part.polygon))
    thickness = part.thickness
    if thickness > 0:
        unit = np.linalg.norm(
            place(np.array([[0.0, 0.5], [0.0, 0.5 + thickness]]))[1] - place(np.array([[0.0, 0.5]]))[0]
        )
        thickness = max(1.0, float(unit))
    return Part(
        px,
        part.color,
        part.cls,
        part.obj,
        thickness,
        part.closed,
        part.shading,
        part.texture,
        part.opacity,
        part.highlight,
        [place(np.asarray(h)) for h in part.holes],
    )


def _curved_rect(w: float, h: float, sag: float, radius: float, n: int = 24) -> np.ndarray:
    """Return a w x h rectangle (centred at 0) whose top and bottom edges sag by ``sag`` like a ring seen from
    slightly above a cylinder of ``radius``."""
    xs = np.linspace(-w / 2, w / 2, n)
    curve = sag * np.sqrt(np.clip(1.0 - (xs / radius) ** 2, 0.0, 1.0))
    top = np.stack([xs, -h / 2 + curve], axis=1)
    bottom = np.stack([xs[::-1], h / 2 + curve[::-1]], axis=1)
    return np.concatenate([top, bottom], axis=0)


def _label_parts(
    rng: np.random.Generator,
    pose: tuple[float, float, float],
    col: Color,
    icon: str | None,
    obj: int,
    pattern: Sequence[Part] = (),
    keyline: Color | None = None,
) -> list[Part]:
    """Return the front label (paper, printed ``pattern``, icon parts, text lines) in bottle coordinates for
    ``pose`` = (dx, dy, deg); ``pattern`` is in label coordinates (centre 0), ``keyline`` outlines the icon."""
    dx, dy, ang = pose
    centre = (dx, LABEL_CY + dy)

    def tr(pts: np.ndarray) -> np.ndarray:
        return transform_points(pts, centre, ang)

    paper = _curved_rect(LABEL_W, LABEL_H, 0.012, BODY_HW)
    parts = [Part(tr(paper), col, cls=FRONT_LABEL, obj=obj, shading=0.12, texture=2.5)]
    parts.extend(replace(p, polygon=tr(p.polygon), obj=obj) for p in pattern)
    if icon is not None:
        icon_parts = _icon_parts(rng, icon, tr, obj)
        parts.extend(_with_keyline(icon_parts, keyline) if keyline is not None else icon_parts)
    ink = jitter_color(rng, (110, 104, 98), 0.05)
    for k, w in enumerate((0.15, 0.11, 0.13)):
        y = 0.036 + 0.02 * k
        parts.append(
            Part(
                tr(np.array([[-w / 2, y], [w / 2, y]])),
                ink,
                cls=FRONT_LABEL,
                obj=obj,
                thickness=0.0065,
                closed=False,
                shading=0.0,
                texture=2.0,
            )
        )
    return parts


def _shade(col: Color, factor: float) -> Color:
    """Return ``col`` with every channel times ``factor`` (a lighter or darker shade of about the same hue)."""
    return (min(255.0, col[0] * factor), min(255.0, col[1] * factor), min(255.0, col[2] * factor))


def _tint(col: Color, amount: float) -> Color:
    """Return ``col`` mixed toward white by ``amount`` in [0, 1] (a lighter tint of about the same hue)."""
    return (
        col[0] + amount * (255.0 - col[0]),
        col[1] + amount * (255.0 - col[1]),
        col[2] + amount * (255.0 - col[2]),
    )


def _label_print(rng: np.random.Generator, ink: Color) -> list[Part]:
    """Return a fine all-over print for the hard label in label coordinates (centre 0, unrotated): diagonal
    stripes or a staggered dot grid in ``ink``, kept inside the paper (whose edges sag by up to 0.012)."""
    x0, x1 = -LABEL_W / 2 + 0.006, LABEL_W / 2 - 0.006
    y0, y1 = -LABEL_H / 2 + 0.018, LABEL_H / 2 - 0.006
    pitch = float(rng.uniform(0.022, 0.028))
    parts: list[Part] = []
    if rng.random() < 0.5:  # stripes y = slope * x + c, clipped to the box
        slope = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.6))
        width = pitch * float(rng.uniform(0.35, 0.45))
        step = pitch * math.sqrt(1.0 + slope * slope)  # vertical spacing giving a perpendicular pitch of `pitch`
        lo, hi = min(y0 - slope * x0, y0 - slope * x1), max(y1 - slope * x0, y1 - slope * x1)
        for c in np.arange(lo + float(rng.uniform(0.0, step)), hi, step):
            xa = max(x0, (y0 - c) / slope if slope > 0 else (y1 - c) / slope)
            xb = min(x1, (y1 - c) / slope if slope > 0 else (y0 - c) / slope)
            if xb - xa > 2 * width:
                seg = np.array([[xa, slope * xa + c], [xb, slope * xb + c]])
                parts.append(Part(seg, ink, cls=FRONT_LABEL, thickness=width, closed=False, shading=0.0, texture=1.5))
        return parts
    radius = pitch * float(rng.uniform(0.26, 0.32))
    for row, y in enumerate(np.arange(y0 + radius, y1 - radius, pitch * 0.87)):
        shift = pitch / 2 if row % 2 else 0.0
        for x in np.arange(x0 + radius + shift, x1 - radius, pitch):
            parts.append(
                Part(ellipse_polygon((x, y), (radius, radius), 0.0, 10), ink, cls=FRONT_LABEL, shading=0.0, texture=1.5)
            )
    return parts


def _with_keyline(parts: list[Part], col: Color) -> list[Part]:
    """Return ``parts`` with a thin closed outline in ``col`` after every filled part (same class and object), the
    light keyline printers put around an icon on a label of similar colour."""
    out = []
    for p in parts:
        out.append(p)
        if p.thickness == 0:
            out.append(replace(p, color=col, thickness=0.0045, closed=True, shading=0.0, texture=1.0, highlight=0.0))
    return out


def _icon_parts(rng: np.random.Generator, icon: str, tr: Callable[[np.ndarray], np.ndarray], obj: int) -> list[Part]:
    """Return the fruit icon's parts (label coordinates through ``tr``)."""
    c = np.array([0.0, ICON_DY])
    leaf_col = jitter_color(rng, (64, 142, 48), 0.05)
    if icon == "orange":
        cls = ICON_ORANGE
        body = ellipse_polygon(c, (ICON_R, ICON_R * 0.97), 0.0, 40)
        leaf = ellipse_polygon(c + np.array([0.018, -0.044]), (0.02, 0.009), -30.0, 20)
        return [
            Part(
                tr(body),
                jitter_color(rng, (248, 128, 14), 0.04),
                cls=cls,
                obj=obj,
                shading=0.3,
                texture=3.0,
                highlight=0.1,
            ),
            Part(tr(leaf), leaf_col, cls=cls, obj=obj, shading=0.2, texture=2.0),
        ]
    if icon == "cherry":
        cls = ICON_CHERRY
        red = jitter_color(rng, (206, 22, 40), 0.04)
        stem_col = jitter_color(rng, (70, 100, 40), 0.05)
        c1, c2 = c + np.array([-0.021, 0.017]), c + np.array([0.022, 0.011])
        top = c + np.array([0.006, -0.042])
        return [
            Part(
                tr(np.stack([c1 + np.array([0, -0.018]), top])),
                stem_col,
                cls=cls,
                obj=obj,
                thickness=0.005,
                closed=False,
                shading=0.0,
                texture=1.0,
            ),
            Part(
                tr(np.stack([c2 + np.array([0, -0.018]), top])),
                stem_col,
                cls=cls,
                obj=obj,
                thickness=0.005,
                closed=False,
                shading=0.0,
                texture=1.0,
            ),
            Part(
                tr(ellipse_polygon(top + np.array([0.016, 0.002]), (0.015, 0.007), 20.0, 16)),
                leaf_col,
                cls=cls,
                obj=obj,
                shading=0.2,
                texture=2.0,
            ),
            Part(
                tr(ellipse_polygon(c1, (0.023, 0.023), 0.0, 28)),
                red,
                cls=cls,
                obj=obj,
                shading=0.35,
                texture=3.0,
                highlight=0.12,
            ),
            Part(
                tr(ellipse_polygon(c2, (0.023, 0.023), 0.0, 28)),
                red,
                cls=cls,
                obj=obj,
                shading=0.35,
                texture=3.0,
                highlight=0.12,
            ),
        ]
    cls = ICON_BANANA
    t = np.linspace(0.0, math.pi, 24)
    r = ICON_R * 1.25
    outer = np.stack([r * np.cos(t), r * 0.72 * np.sin(t)], axis=1)
    inner = np.stack([r * np.cos(t[::-1]), r * 0.22 * np.sin(t[::-1])], axis=1)
    crescent = transform_points(np.concatenate([outer, inner]), c + np.array([0.0, -0.018]), -14.0)
    tip = transform_points(np.array([[r * 0.98, 0.0], [r * 1.12, -0.012]]), c + np.array([0.0, -0.018]), -14.0)
    return [
        Part(tr(crescent), jitter_color(rng, (250, 212, 36), 0.04), cls=cls, obj=obj, shading=0.3, texture=3.0),
        Part(
            tr(tip),
            jitter_color(rng, (110, 80, 30), 0.05),
            cls=cls,
            obj=obj,
            thickness=0.007,
            closed=False,
            shading=0.0,
            texture=1.0,
        ),
    ]


def _band_parts(rng: np.random.Generator, col: Color) -> list[Part]:
    """Return the band label (white ring with a printed line) in bottle coordinates."""
    hw = float(_outer_hw(np.array([BAND_Y0]))[0]) + 0.003
    h = BAND_Y1 - BAND_Y0
    band = _curved_rect(2 * hw, h, 0.012, hw) + np.array([0.0, (BAND_Y0 + BAND_Y1) / 2 - 0.006])
    yl = (BAND_Y0 + BAND_Y1) / 2 + 0.003
    ink = jitter_color(rng, (120, 116, 110), 0.05)
    return [
        Part(band, col, cls=BAND_LABEL, obj=2, shading=0.15, texture=2.5),
        Part(
            np.array([[-0.07, yl], [0.07, yl]]),
            ink,
            cls=BAND_LABEL,
            obj=2,
            thickness=0.006,
            closed=False,
            shading=0.0,
            texture=1.5,
        ),
    ]


# -- structural defects -------------------------------------------------------------------------------------------
def _ragged(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, n: int, amp: float) -> np.ndarray:
    """Return a jagged path from ``a`` to ``b`` with ``n`` inner points displaced sideways by up to ``amp``."""
    t = np.linspace(0.0, 1.0, n + 2)[:, None]
    pts = a + t * (b - a)
    d = b - a
    normal = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
    off = rng.uniform(-amp, amp, size=(n + 2, 1))
    off[0] = off[-1] = 0.0
    return pts + off * normal


def _tear(
    canvas: Canvas,
    rng: np.random.Generator,
    place: Callable[[np.ndarray], np.ndarray],
    pose: tuple[float, float, float],
    paper: Part,
    liq_col: Color,
    liq_cls: int,
    s: float,
) -> np.ndarray:
    """Tear off a corner of the front label (the juice shows through); return the torn region."""
    dx, dy, ang = pose
    sx, sy = float(rng.choice([-1.0, 1.0])), float(rng.choice([-1.0, 1.0]))
    w, h = LABEL_W / 2, LABEL_H / 2
    d1, d2 = rng.uniform(0.36, 0.52) * LABEL_W, rng.uniform(0.34, 0.5) * LABEL_H
    a = np.array([sx * (w - d1), sy * (h + 0.01)])
    b = np.array([sx * (w + 0.01), sy * (h - d2)])
    edge = _ragged(rng, a, b, 7, 0.008)
    poly = np.concatenate([edge, [[sx * (w + 0.03), sy * (h + 0.03)]]])
    centre = (dx, LABEL_CY + dy)
    poly_px = place(transform_points(poly, centre, ang))
    edge_px = place(transform_points(edge, centre, ang))
    region = canvas.upsample_region(canvas.footprint([paper]))
    canvas.draw(Part(poly_px, liq_col, cls=liq_cls, shading=0.1, texture=3.0, opacity=0.94), region=region)
    canvas.draw(
        Part(
            edge_px,
            (250, 250, 246),
            cls=FRONT_LABEL,
            thickness=max(1.0, 0.005 * s),
            closed=False,
            shading=0.0,
            texture=3.0,
        ),
        region=region,
    )
    return canvas.footprint([Part(poly_px, (0, 0, 0))]) & canvas.footprint([paper])


def _contamination(canvas: Canvas, rng: np.random.Generator, place: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Draw a dark floating particle cluster in a visible part of the juice; return its mask."""
    if rng.random() < 0.7:  # between the front label and the band
        cx, cy = float(rng.uniform(-0.08, 0.08)), float(rng.uniform(0.68, 0.76))
    else:  # in the shoulder
        cx, cy = float(rng.uniform(-0.05, 0.05)), float(rng.uniform(0.27, 0.35))
    col = jitter_color(rng, (52, 40, 30), 0.1)
    r = float(rng.uniform(0.018, 0.027))
    t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    rad = r * (1.0 + 0.25 * np.sin(3 * t + rng.uniform(0, 6.28)) + 0.12 * np.sin(5 * t + rng.uniform(0, 6.28)))
    blobs = [np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1)]
    for _ in range(int(rng.integers(1, 4))):
        ang = rng.uniform(0, 2 * math.pi)
        d = r * rng.uniform(1.3, 2.0)
        blobs.append(
            ellipse_polygon(
                (cx + d * math.cos(ang), cy + d * math.sin(ang)), (r * 0.4, r * 0.3), float(rng.uniform(0, 180)), 12
            )
        )
    parts = [Part(place(b), col, shading=0.3, texture=4.0, opacity=0.92) for b in blobs]
    canvas.draw_all(parts)
    return canvas.footprint(parts)


def _scratch(
    canvas: Canvas, rng: np.random.Generator, place: Callable[[np.ndarray], np.ndarray], s: float
) -> np.ndarray:
    """Draw a bright jagged scratch on a visible part of the glass; return its (slightly widened) mask."""
    zone = int(rng.integers(3))
    if zone == 0:  # between the front label and the band
        x0, y0 = float(rng.uniform(-0.1, 0.0)), float(rng.uniform(0.67, 0.72))
        length, ang = float(rng.uniform(0.08, 0.14)), float(rng.uniform(-25, 25))
    elif zone == 1:  # shoulder
        x0, y0 = float(rng.uniform(-0.08, -0.02)), float(rng.uniform(0.29, 0.33))
        length, ang = float(rng.uniform(0.07, 0.11)), float(rng.uniform(-20, 20))
    else:  # neck, roughly vertical
        x0, y0 = float(rng.uniform(-0.025, 0.025)), float(rng.uniform(0.10, 0.14))
        length, ang = float(rng.uniform(0.07, 0.11)), float(rng.uniform(70, 110))
    a = np.array([x0, y0])
    b = a + length * np.array([math.cos(math.radians(ang)), math.sin(math.radians(ang))])
    path = place(_ragged(rng, a, b, 5, 0.004))
    th = max(1.0, 0.006 * s)
    canvas.draw(
        Part(path + 0.6, (40, 40, 40), cls=-1, thickness=th, closed=False, shading=0.0, texture=2.0, opacity=0.35)
    )
    canvas.draw(Part(path, (236, 238, 234), cls=-1, thickness=th, closed=False, shading=0.0, texture=4.0, opacity=0.8))
    return canvas.footprint([Part(path, (0, 0, 0), thickness=th + 2.0, closed=False)])
