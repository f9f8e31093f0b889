"""``pushpins``: a transparent plastic box with 3 x 5 compartments, exactly one pushpin in each.

The compartments are divided by light plastic walls: two long horizontal walls between the rows and twelve short
vertical separators (four per row) between the columns. Every pin lies on its side at a random position and
orientation inside its compartment: a yellow head (flat flange, grip, collar) and a thin metallic needle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from csad.data.synth.base import CategoryRenderer, DefectSpec, Sample
from csad.data.synth.scene import (
    Canvas,
    GlobalTransform,
    Part,
    ellipse_polygon,
    jitter_color,
    rect_polygon,
    transform_points,
)

PUSHPIN, SEPARATOR = 1, 2
ROWS, COLS = 3, 5
N_SEPARATORS = ROWS * (COLS - 1)

# Geometry in units of the image side, in the product frame (before the global transform).
X0, X1, Y0, Y1 = 0.075, 0.925, 0.20, 0.80  # the grid of compartments (wall centre lines at the borders)
WALL = 0.017  # separator (top face) width
SIDE = 0.006  # visible side face of a wall, drawn to its lower right
RIM = 0.04  # outer box wall
PIN_SCALE = 1.3
# A pin lying on its side, head towards -x (object frame, before PIN_SCALE).
FLANGE = (-0.036, (0.0075, 0.023))  # centre x, ellipse semi-axes
BODY = np.array(
    [[-0.034, -0.0125], [-0.005, -0.0095], [0.0, -0.0062], [0.0, 0.0062], [-0.005, 0.0095], [-0.034, 0.0125]]
)
COLLAR = (0.0025, (0.0032, 0.0068))
NEEDLE = (0.004, 0.046, 0.0055)  # x start, x end, thickness
# Collision disks (x, r) along the pin axis.
PIN_DISKS = ((-0.036, 0.024), (-0.018, 0.014), (0.0, 0.009), (0.016, 0.005), (0.031, 0.005), (0.045, 0.004))

HEAD_YELLOW = (236, 196, 34)
ODD_COLORS = ((214, 58, 48), (58, 104, 206), (70, 160, 80), (236, 120, 30))


def _pitch() -> tuple[float, float]:
    """Return the (column, row) pitch of the compartment grid in units of the side."""
    return (X1 - X0) / COLS, (Y1 - Y0) / ROWS


def _cell_interior(row: int, col: int) -> tuple[float, float, float, float]:
    """Return the (x0, y0, x1, y1) interior of a compartment in units of the side."""
    px, py = _pitch()
    return (
        X0 + col * px + WALL / 2 + SIDE,
        Y0 + row * py + WALL / 2 + SIDE,
        X0 + (col + 1) * px - WALL / 2,
        Y0 + (row + 1) * py - WALL / 2,
    )


def _separator_rect(row: int, k: int) -> tuple[float, float, float, float]:
    """Return the (x0, y0, x1, y1) of vertical separator ``k`` (between columns k and k + 1) in ``row``."""
    px, py = _pitch()
    x = X0 + (k + 1) * px
    return (x - WALL / 2, Y0 + row * py + WALL / 2, x + WALL / 2, Y0 + (row + 1) * py - WALL / 2)


def _pin_area() -> float:
    """Return the nominal area of a pin in units of the side squared."""
    flange = math.pi * FLANGE[1][0] * FLANGE[1][1]
    x, y = BODY[:, 0], BODY[:, 1]
    body = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    collar = math.pi * COLLAR[1][0] * COLLAR[1][1] * 0.5
    needle = (NEEDLE[1] - NEEDLE[0]) * NEEDLE[2]
    return (flange + body + collar + needle) * PIN_SCALE**2


class Pushpins(CategoryRenderer):
    """Renderer of the ``pushpins`` category."""

    name = "pushpins"
    component_classes = ("pushpin", "separator")

    def defect_specs(self, size: int) -> list[DefectSpec]:
        """Return the defect types with saturation = nominal pin / separator areas at ``size``."""
        s2 = float(size) ** 2
        pin = int(_pin_area() * s2)
        sx0, sy0, sx1, sy1 = _separator_rect(0, 0)
        sep = int((sx1 - sx0 + SIDE) * (sy1 - sy0) * s2)
        return [
            DefectSpec("missing_pushpin", "logical", pin, False),
            DefectSpec("additional_pushpin", "logical", pin, False),
            DefectSpec("missing_separator", "logical", sep, False),
            DefectSpec("broken_needle", "structural", 1.0, True),
            DefectSpec("color", "structural", 1.0, True),
            DefectSpec("front_bent", "structural", 1.0, True),
            DefectSpec("contamination", "structural", 1.0, True),
        ]

    def violations(self, facts: dict[str, Any]) -> list[str]:
        """Return the broken constraints: one pin per compartment, all separators present."""
        out = []
        for i, n in enumerate(facts["pins_per_compartment"]):
            if n != 1:
                out.append(f"{n} pushpins in compartment {i} (row {i // COLS}, column {i % COLS}), expected 1")
        if facts["separators"] != N_SEPARATORS:
            out.append(f"{facts['separators']} separators, expected {N_SEPARATORS}")
        return out

    # ------------------------------------------------------------------------------------------------------
    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one pushpin box image, optionally with ``defect``."""
        for _ in range(50):
            sample = self._try_render(rng, size, defect)
            if sample is not None:
                return sample
        raise RuntimeError(f"pushpins: no layout found for defect {defect!r} at size {size}")

    def _try_render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample | None:
        """Return one rendered sample, or None when the random layout failed (the caller retries)."""
        s = float(size)
        gt = GlobalTransform.random(rng, (size, size), max_angle=1.2, max_scale=0.025, max_shift=0.02)
        canvas = Canvas(size, size, rng)
        canvas.fill_background(jitter_color(rng, (58, 58, 64), 0.04), texture=4.0, blotches=9.0)

        # --- the logical content ----------------------------------------------------------------------------
        counts = [1] * (ROWS * COLS)
        separators = [(r, k) for r in range(ROWS) for k in range(COLS - 1)]  # (row, gap after column k)
        target_cell = int(rng.integers(ROWS * COLS))
        gone_sep: tuple[int, int] | None = None
        if defect == "missing_pushpin":
            counts[target_cell] = 0
        elif defect == "additional_pushpin":
            counts[target_cell] = 2
        elif defect == "missing_separator":
            gone_sep = separators[int(rng.integers(len(separators)))]

        # Layout of the NORMAL content first: one pin per compartment (two where one is added).
        pscale = PIN_SCALE * s * rng.uniform(0.97, 1.03)
        layout: list[list[tuple[np.ndarray, float]]] = []
        for cell in range(ROWS * COLS):
            poses = _place_pins(rng, _cell_interior(cell // COLS, cell % COLS), s, pscale, max(1, counts[cell]))
            if poses is None:
                return None
            layout.append(poses)

        # --- draw: box, walls --------------------------------------------------------------------------------
        plastic = jitter_color(rng, (214, 220, 226), 0.02)
        outer = _rounded_rect(
            (X0 + X1) / 2 * s, (Y0 + Y1) / 2 * s, (X1 - X0 + 2 * RIM) * s, (Y1 - Y0 + 2 * RIM) * s, 0.03 * s
        )
        canvas.draw(Part(gt(outer), plastic, cls=-1, shading=0.2, texture=2.0, opacity=0.42))
        floor = _rounded_rect((X0 + X1) / 2 * s, (Y0 + Y1) / 2 * s, (X1 - X0) * s, (Y1 - Y0) * s, 0.012 * s)
        canvas.draw(
            Part(gt(floor), jitter_color(rng, (150, 156, 164), 0.03), cls=-1, shading=-0.15, texture=2.5, opacity=0.45)
        )
        for _ in range(int(rng.integers(1, 3))):  # soft reflections on the clear plastic
            cx, w = rng.uniform(0.2, 0.8) * s, rng.uniform(0.06, 0.16) * s
            streak = rect_polygon((cx, (Y0 + Y1) / 2 * s), (w, (Y1 - Y0 + 0.05) * s), rng.uniform(15, 40))
            canvas.draw(
                Part(
                    gt(streak),
                    (235, 238, 242),
                    cls=-1,
                    shading=0.0,
                    texture=0.0,
                    opacity=float(rng.uniform(0.04, 0.09)),
                ),
                region=canvas.upsample_region(canvas.footprint([Part(gt(floor), (0, 0, 0))])),
            )
        wall_col = jitter_color(rng, (226, 230, 234), 0.02, 0.04)
        side_col = tuple(c * 0.72 for c in wall_col)
        for r, k in separators:
            if (r, k) != gone_sep:
                x0, y0, x1, y1 = _separator_rect(r, k)
                canvas.draw_all(_wall_parts(gt, s, (x0, y0 - WALL / 2, x1, y1 + WALL / 2), wall_col, side_col, True))
        _, py = _pitch()
        for r in range(1, ROWS):
            y = Y0 + r * py
            rect = (X0 + WALL / 2, y - WALL / 2, X1 - WALL / 2, y + WALL / 2)
            canvas.draw_all(_wall_parts(gt, s, rect, wall_col, side_col, False))

        # --- pins ------------------------------------------------------------------------------------------------
        head_base = jitter_color(rng, HEAD_YELLOW, 0.03, 0.05)
        needle_col = jitter_color(rng, (176, 178, 184), 0.03)
        victim_cell = int(rng.integers(ROWS * COLS))
        cell_objs: list[list[int]] = []
        obj = 0
        masks: list[np.ndarray] = []
        struct_region: np.ndarray | None = None
        for cell, poses in enumerate(layout):
            objs = []
            for j, (centre, angle) in enumerate(poses):
                if j >= counts[cell]:
                    continue
                head_col = jitter_color(rng, head_base, 0.025, 0.05)
                needle = "normal"
                victim = cell == victim_cell and j == 0
                if victim and defect == "color":
                    head_col = jitter_color(rng, ODD_COLORS[int(rng.integers(len(ODD_COLORS)))], 0.04)
                elif victim and defect in ("broken_needle", "front_bent"):
                    needle = defect
                cx0, cy0, cx1, cy1 = _cell_interior(cell // COLS, cell % COLS)
                bounds = (cx0 * s, cy0 * s, cx1 * s, cy1 * s)
                parts, region = _pin_parts(rng, gt, centre, angle, pscale, obj, head_col, needle_col, needle, bounds)
                canvas.draw_all(parts)
                if victim and defect == "color":
                    struct_region = canvas.footprint(parts[1:4])
                elif victim and region is not None:
                    struct_region = region
                objs.append(obj)
                obj += 1
            cell_objs.append(objs)

        # --- structural defects -----------------------------------------------------------------------------------
        if defect == "contamination":
            struct_region = _contamination(canvas, rng, gt, s, victim_cell, layout[victim_cell], pscale)
        if struct_region is not None:
            masks.append(struct_region)

        # --- logical GT (MVTec LOCO policy) ---------------------------------------------------------------------
        if defect == "missing_pushpin":
            x0, y0, x1, y1 = _cell_interior(target_cell // COLS, target_cell % COLS)
            cell_poly = rect_polygon(((x0 + x1) / 2 * s, (y0 + y1) / 2 * s), ((x1 - x0) * s, (y1 - y0) * s))
            masks.append(canvas.footprint([Part(gt(cell_poly), (0, 0, 0))]))
        elif defect == "additional_pushpin":
            region = np.zeros((size, size), dtype=bool)
            for o in cell_objs[target_cell]:
                region |= canvas.object_mask(o)
            masks.append(region)
        elif defect == "missing_separator" and gone_sep is not None:
            x0, y0, x1, y1 = _separator_rect(*gone_sep)
            gap_poly = rect_polygon(
                ((x0 + x1 + SIDE) / 2 * s, (y0 + y1) / 2 * s), ((x1 - x0 + SIDE) * s, (y1 - y0) * s)
            )
            masks.append(canvas.footprint([Part(gt(gap_poly), (0, 0, 0))]))

        image, classes = canvas.finish(
            light=0.12, blur_sigma=float(rng.uniform(0.35, 0.8)), noise_sigma=float(rng.uniform(2.0, 4.0))
        )
        facts = {
            "pins_per_compartment": counts,
            "separators": N_SEPARATORS - (gone_sep is not None),
        }
        return Sample(image=image, component_gt=classes, defect_masks=[m for m in masks if m.any()], facts=facts)


# -- layout -----------------------------------------------------------------------------------------------------
def _place_pins(
    rng: np.random.Generator, cell: tuple[float, float, float, float], s: float, pscale: float, n: int, tries: int = 300
) -> list[tuple[np.ndarray, float]] | None:
    """Return ``n`` non-overlapping pin poses (centre in pixels, angle in degrees) inside ``cell``; None if none."""
    x0, y0, x1, y1 = (c * s for c in cell)
    margin = 0.004 * s
    outline = _pin_outline() * pscale
    disks = np.array(PIN_DISKS) * pscale
    gap = 0.004 * s
    placed: list[np.ndarray] = []  # (k, 3) arrays of x, y, r
    poses: list[tuple[np.ndarray, float]] = []
    for _ in range(n):
        for _ in range(tries):
            angle = float(rng.uniform(0.0, 360.0))
            centre = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            pts = transform_points(outline, centre, angle)
            if (
                pts[:, 0].min() < x0 + margin
                or pts[:, 0].max() > x1 - margin
                or pts[:, 1].min() < y0 + margin
                or pts[:, 1].max() > y1 - margin
            ):
                continue
            dc = transform_points(np.stack([disks[:, 0], np.zeros(len(disks))], axis=1), centre, angle)
            mine = np.concatenate([dc, disks[:, 1:2]], axis=1)
            if any(_disks_overlap(mine, other, gap) for other in placed):
                continue
            placed.append(mine)
            poses.append((centre, angle))
            break
        else:
            return None
    return poses


def _disks_overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Return whether any disk of ``a`` comes closer than ``gap`` to any disk of ``b`` (rows x, y, r)."""
    d = np.linalg.norm(a[:, None, :2] - b[None, :, :2], axis=2)
    return bool((d < a[:, None, 2] + b[None, :, 2] + gap).any())


def _pin_outline() -> np.ndarray:
    """Return points on the outline of a pin in the object frame (unit = side, before PIN_SCALE)."""
    fx, axes = FLANGE
    flange = ellipse_polygon((fx, 0.0), axes, 0.0, 16)
    needle = np.array([[NEEDLE[1], 0.0]])
    return np.concatenate([flange, BODY, needle])


# -- shapes -----------------------------------------------------------------------------------------------------
def _rounded_rect(cx: float, cy: float, w: float, h: float, r: float) -> np.ndarray:
    """Return the vertices of an axis-aligned rounded rectangle."""
    pts = []
    for (qx, qy), start in zip(((1, 1), (-1, 1), (-1, -1), (1, -1)), (0, 90, 180, 270), strict=True):
        ccx, ccy = cx + qx * (w / 2 - r), cy + qy * (h / 2 - r)
        for a in np.linspace(start, start + 90, 6):
            pts.append((ccx + r * math.cos(math.radians(a)), ccy + r * math.sin(math.radians(a))))
    return np.array(pts)


def _wall_parts(
    gt: GlobalTransform, s: float, rect: tuple[float, float, float, float], top: tuple, side: tuple, vertical: bool
) -> list[Part]:
    """Return a wall seen from slightly above: a darker side face to the lower right and a bright top face."""
    x0, y0, x1, y1 = rect
    face = (x1, y0, x1 + SIDE, y1) if vertical else (x0, y1, x1, y1 + SIDE)
    parts = []
    for (a, b, c, d), col, shading, tex in ((face, side, 0.0, 2.0), (rect, top, 0.25, 2.5)):
        poly = rect_polygon(((a + c) / 2 * s, (b + d) / 2 * s), ((c - a) * s, (d - b) * s))
        parts.append(Part(gt(poly), col, cls=SEPARATOR, shading=shading, texture=tex, opacity=0.92))
    return parts


def _pin_parts(
    rng: np.random.Generator,
    gt: GlobalTransform,
    centre: np.ndarray,
    angle: float,
    pscale: float,
    obj: int,
    head_col: tuple,
    needle_col: tuple,
    needle: str,
    cell: tuple[float, float, float, float],
) -> tuple[list[Part], np.ndarray | None]:
    """Return a pin's parts (shadow, body, flange, collar, needle) in image pixels, and for a damaged needle the
    mask of the damaged region (None otherwise). A bent needle bends to the side that keeps it inside ``cell``
    (product-frame pixels)."""

    def place(pts: np.ndarray) -> np.ndarray:
        """Return pin-frame points in image pixels."""
        return gt(transform_points(np.asarray(pts, dtype=float), centre, angle, pscale))

    fx, faxes = FLANGE
    flange = ellipse_polygon((fx, 0.0), faxes, 0.0, 28)
    collar = ellipse_polygon((COLLAR[0], 0.0), COLLAR[1], 0.0, 16)
    head_outline = np.concatenate([flange[flange[:, 0] <= fx + 1e-9], BODY[:3], BODY[3:]])
    shadow = Part(
        place(head_outline) + np.array([1.0, 1.4]) * 0.003 * pscale,
        (20, 20, 24),
        cls=-1,
        shading=0.0,
        texture=0.0,
        opacity=0.35,
    )
    body_col = tuple(c * 0.93 for c in head_col)
    thick = max(1.0, NEEDLE[2] * pscale * gt.scale)
    x_start, x_end = NEEDLE[0], NEEDLE[1]
    nominal = np.array([[x_start, 0.0], [x_end, 0.0]])
    if needle == "broken_needle":
        frac = rng.uniform(0.15, 0.35)
        path = np.array([[x_start, 0.0], [x_start + frac * (x_end - x_start), 0.0]])
    elif needle == "front_bent":
        frac = rng.uniform(0.3, 0.55)
        xb = x_start + frac * (x_end - x_start)
        deg = rng.uniform(40.0, 75.0)
        first = float(rng.choice([-1.0, 1.0]))
        rest = x_end - xb
        for sign in (first, -first):
            bend = math.radians(sign * deg)
            path = np.array([[x_start, 0.0], [xb, 0.0], [xb + rest * math.cos(bend), rest * math.sin(bend)]])
            tip = transform_points(path[-1:], centre, angle, pscale)[0]
            if cell[0] < tip[0] < cell[2] and cell[1] < tip[1] < cell[3]:
                break
    else:
        path = nominal
    parts = [
        shadow,
        Part(place(BODY), body_col, cls=PUSHPIN, obj=obj, shading=0.45, texture=3.0, highlight=0.12),
        Part(place(flange), head_col, cls=PUSHPIN, obj=obj, shading=0.4, texture=3.0, highlight=0.1),
        Part(place(collar), tuple(c * 0.85 for c in head_col), cls=PUSHPIN, obj=obj, shading=0.3, texture=2.0),
        Part(place(path), needle_col, cls=PUSHPIN, obj=obj, thickness=thick, closed=False, shading=0.0, texture=3.0),
    ]
    region = None
    if needle != "normal":
        wide = max(3.0, 2.6 * thick)
        region = _footprint_union(gt, [place(nominal), place(path)], wide)
    return parts, region


def _footprint_union(gt: GlobalTransform, paths: list[np.ndarray], thickness: float) -> np.ndarray:
    """Return the output-resolution mask of the thick polylines ``paths`` (already in image pixels)."""
    h, w = gt.size
    tmp = Canvas(h, w, np.random.default_rng(0))
    return tmp.footprint([Part(p, (0, 0, 0), thickness=thickness, closed=False) for p in paths])


def _contamination(
    canvas: Canvas,
    rng: np.random.Generator,
    gt: GlobalTransform,
    s: float,
    cell: int,
    poses: list[tuple[np.ndarray, float]],
    pscale: float,
) -> np.ndarray:
    """Return the mask of a dark irregular blob (dirt, a plastic flake) drawn in compartment ``cell`` beside its pin."""
    x0, y0, x1, y1 = (c * s for c in _cell_interior(cell // COLS, cell % COLS))
    r = rng.uniform(0.014, 0.022) * s
    disks = np.array(PIN_DISKS) * pscale
    best, best_d = None, -1.0
    for _ in range(60):
        c = np.array([rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)])
        d = min(
            float(
                (
                    np.linalg.norm(
                        transform_points(np.stack([disks[:, 0], np.zeros(len(disks))], 1), pc, pa) - c, axis=1
                    )
                    - disks[:, 1]
                ).min()
            )
            for pc, pa in poses
        )
        if d > best_d:
            best, best_d = c, d
        if d > r + 0.004 * s:
            break
    assert best is not None
    n = 14
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    rad = r * (1.0 + 0.3 * rng.uniform(-1, 1, n))
    pts = np.stack([best[0] + rad * np.cos(t) * rng.uniform(0.7, 1.3), best[1] + rad * np.sin(t)], axis=1)
    pts = transform_points(pts - best, best, rng.uniform(0, 180))
    col = jitter_color(rng, [(42, 36, 30), (30, 30, 34), (90, 60, 120)][int(rng.integers(3))], 0.1)
    part = Part(gt(pts), col, cls=0, shading=0.35, texture=6.0)
    canvas.draw(part)
    return canvas.footprint([part])
