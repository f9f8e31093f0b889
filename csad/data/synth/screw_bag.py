"""``screw_bag``: a transparent plastic bag holding exactly 2 long screws, 2 short screws, 2 hex nuts and 2 washers.

The parts lie flat at random non-overlapping poses under the milky film of the bag (wrinkles show as faint streaks,
a bright welded seal strip runs along the top). Screws are seen from the side: a cylindrical head and a threaded
shank ending in a point; nuts are hexagons with a threaded hole; washers are plain rings.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from csad.data.synth.base import CategoryRenderer, DefectSpec, Sample
from csad.data.synth.scene import (
    Canvas,
    GlobalTransform,
    Part,
    ellipse_polygon,
    jitter_color,
    transform_points,
)

LONG_SCREW, SHORT_SCREW, NUT, WASHER = 1, 2, 3, 4
KIND_NAMES = {LONG_SCREW: "long_screw", SHORT_SCREW: "short_screw", NUT: "nut", WASHER: "washer"}
N_EACH = 2

# Geometry in units of the image side (product frame, before the global transform).
HEAD_L, HEAD_W = 0.041, 0.033  # screw head length along the axis, half-width
SHANK_W = 0.0175  # shank half-width
TIP = 0.027  # length of the pointed end
SHANK_L = {LONG_SCREW: 0.285, SHORT_SCREW: 0.145}
PITCH = 0.012  # thread pitch
NUT_R, NUT_HOLE = 0.05, 0.021  # hexagon circumradius, hole radius
WASHER_R, WASHER_HOLE = 0.05, 0.023
BAG = (0.055, 0.065, 0.945, 0.935)  # bag outline (x0, y0, x1, y1)
SEAL = 0.05  # height of the welded strip along the top of the bag
LAYOUT = (0.11, 0.145, 0.89, 0.88)  # where the parts may lie
GAP = 0.012


def _screw_area(kind: int) -> float:
    """Return the nominal area of a screw of ``kind`` in units of the side squared."""
    shank = SHANK_L[kind]
    return 2 * HEAD_L * HEAD_W + 2 * SHANK_W * (shank - TIP) + TIP * SHANK_W * 1.25


def _area(kind: int) -> float:
    """Return the nominal area of a part of ``kind`` in units of the side squared."""
    if kind in SHANK_L:
        return _screw_area(kind)
    if kind == NUT:
        return 1.5 * math.sqrt(3) * NUT_R**2 - math.pi * NUT_HOLE**2
    return math.pi * (WASHER_R**2 - WASHER_HOLE**2)


@dataclass
class _Item:
    """One part to lay out: its kind, collision disks (local frame, units of the side) and structural damage."""

    kind: int
    disks: np.ndarray  # (k, 3): x, y, r
    bend: tuple[float, float] | None = None  # screw: (fraction of the shank where it bends, angle in degrees)
    gap: tuple[float, float] | None = None  # washer: (start angle, span) of the missing piece in degrees
    centre: np.ndarray | None = None  # pose in product-frame pixels, set by the layout
    angle: float = 0.0


class ScrewBag(CategoryRenderer):
    """Renderer of the ``screw_bag`` category."""

    name = "screw_bag"
    component_classes = ("long_screw", "short_screw", "nut", "washer")

    def defect_specs(self, size: int) -> list[DefectSpec]:
        """Return the defect types with saturation = nominal part areas at ``size``.

        ``additional_part`` and ``missing_part`` can concern any kind; their saturation is the area of the
        smallest part (a nut), so finding one whole part of any kind saturates.
        """
        s2 = float(size) ** 2
        smallest = int(min(_area(k) for k in KIND_NAMES) * s2)
        long_area = int(_area(LONG_SCREW) * s2)
        return [
            DefectSpec("additional_part", "logical", smallest, False),
            DefectSpec("missing_part", "logical", smallest, False),
            DefectSpec("long_screws_replaced", "logical", long_area, False),
            DefectSpec("torn_bag", "structural", 1.0, True),
            DefectSpec("bent_screw", "structural", 1.0, True),
            DefectSpec("broken_washer", "structural", 1.0, True),
        ]

    def violations(self, facts: dict[str, Any]) -> list[str]:
        """Return the broken constraints: exactly two of each part kind."""
        return [f"{facts[n]} {n}s, expected {N_EACH}" for n in KIND_NAMES.values() if facts[n] != N_EACH]

    # ------------------------------------------------------------------------------------------------------
    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one screw bag image, optionally with ``defect``."""
        for _ in range(50):
            sample = self._try_render(rng, size, defect)
            if sample is not None:
                return sample
        raise RuntimeError(f"screw_bag: no layout found for defect {defect!r} at size {size}")

    def _try_render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample | None:
        """Return one rendered sample, or None when the random layout failed (the caller retries)."""
        s = float(size)
        gt = GlobalTransform.random(rng, (size, size), max_angle=2.0, max_scale=0.03, max_shift=0.02)
        canvas = Canvas(size, size, rng)
        canvas.fill_background(jitter_color(rng, (70, 72, 78), 0.04), texture=5.0, blotches=10.0)
        background = canvas.rgb.copy()

        # --- the logical content: which parts are in the bag -------------------------------------------------
        kinds = [LONG_SCREW] * N_EACH + [SHORT_SCREW] * N_EACH + [NUT] * N_EACH + [WASHER] * N_EACH
        special = int(rng.choice(list(KIND_NAMES)))
        if defect == "additional_part":
            kinds.append(special)
        elif defect == "long_screws_replaced":
            kinds = [SHORT_SCREW] * (2 * N_EACH) + [NUT] * N_EACH + [WASHER] * N_EACH
        items = [_make_item(k) for k in kinds]
        # Structural damage is decided before the layout so the damaged shape does not touch its neighbours.
        if defect == "bent_screw":
            victim = int(rng.choice([i for i, it in enumerate(items) if it.kind in SHANK_L]))
            items[victim].bend = (float(rng.uniform(0.35, 0.65)), float(rng.choice([-1, 1]) * rng.uniform(22, 38)))
            items[victim].disks = _screw_disks(items[victim].kind, items[victim].bend)
        elif defect == "broken_washer":
            victim = int(rng.choice([i for i, it in enumerate(items) if it.kind == WASHER]))
            items[victim].gap = (float(rng.uniform(0, 360)), float(rng.uniform(55, 100)))
        # Layout of everything first (a missing part keeps the place where it should be).
        if not _layout(rng, items, s):
            return None
        drop = -1
        if defect == "missing_part":
            drop = int(rng.choice([i for i, it in enumerate(items) if it.kind == special]))

        # --- bag ---------------------------------------------------------------------------------------------
        bag_poly = gt(_bag_outline(rng, s))
        film_col = jitter_color(rng, (214, 218, 224), 0.02, 0.04)
        canvas.draw(Part(bag_poly, film_col, cls=-1, shading=-0.25, texture=2.0, opacity=float(rng.uniform(0.32, 0.4))))
        bag_ss = canvas.upsample_region(canvas.footprint([Part(bag_poly, (0, 0, 0))]))
        seal = _seal_parts(rng, gt, s, film_col)
        for part in seal:
            canvas.draw(part, region=bag_ss)

        # --- parts -----------------------------------------------------------------------------------------------
        steel = jitter_color(rng, (174, 175, 176), 0.01, 0.05)
        masks: list[np.ndarray] = []
        struct_region: np.ndarray | None = None
        missing_parts: list[Part] = []
        objs: dict[int, list[int]] = {k: [] for k in KIND_NAMES}
        for i, item in enumerate(items):
            parts, region = _part_parts(rng, gt, s, item, i, steel)
            if i == drop:
                missing_parts = [p for p in parts if p.obj >= 0]
                continue
            canvas.draw_all(parts)
            objs[item.kind].append(i)
            if region is not None:
                struct_region = region

        # --- the film over the parts: milky veil, wrinkles -----------------------------------------------------------
        tear_poly, bag_full_ss = None, bag_ss
        if defect == "torn_bag":
            tear_poly = _tear_polygon(rng, gt, s, items)
            if tear_poly is None:
                return None
            tear_ss = canvas.upsample_region(canvas.footprint([Part(tear_poly, (0, 0, 0))]))
            bag_ss = bag_ss & ~tear_ss
        canvas.draw(
            Part(bag_poly, film_col, cls=-1, shading=0.0, texture=0.0, opacity=float(rng.uniform(0.07, 0.12))),
            region=bag_ss,
        )
        for part in _wrinkles(rng, gt, s):
            canvas.draw(part, region=bag_ss)
        canvas.draw(
            Part(
                bag_poly,
                tuple(min(255.0, c * 1.12) for c in film_col),
                cls=-1,
                thickness=0.006 * s,
                shading=0.0,
                texture=2.0,
                opacity=0.4,
            )
        )

        # --- structural defects ---------------------------------------------------------------------------------
        if tear_poly is not None:
            masks.append(_draw_tear(canvas, background, tear_poly, bag_full_ss, film_col, s))
        if struct_region is not None:
            masks.append(struct_region)

        # --- logical GT (MVTec LOCO policy) ---------------------------------------------------------------------
        if defect == "missing_part":
            masks.append(canvas.footprint(missing_parts))
        elif defect == "additional_part":
            masks.append(_union(canvas, objs[special]))
        elif defect == "long_screws_replaced":
            masks.append(_union(canvas, objs[SHORT_SCREW]))

        image, classes = canvas.finish(
            light=0.12, blur_sigma=float(rng.uniform(0.4, 0.85)), noise_sigma=float(rng.uniform(2.0, 4.0))
        )
        facts = {name: len(objs[k]) for k, name in KIND_NAMES.items()}
        return Sample(image=image, component_gt=classes, defect_masks=[m for m in masks if m.any()], facts=facts)


# -- layout -----------------------------------------------------------------------------------------------------
def _screw_centerline(kind: int, bend: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the shank centre line (points, local frame, head at x < 0) and the half-width at each point."""
    length = SHANK_L[kind]
    if bend is None:
        pts = np.array([[0.0, 0.0], [length - TIP, 0.0], [length, 0.0]])
        return pts, np.array([SHANK_W, SHANK_W, SHANK_W * 0.25])
    frac, deg = bend
    xb = frac * (length - TIP)
    a = math.radians(deg)
    d = np.array([math.cos(a), math.sin(a)])
    pts = np.array([[0.0, 0.0], [xb, 0.0], [xb, 0.0] + d * (length - TIP - xb), [xb, 0.0] + d * (length - xb)])
    return pts, np.array([SHANK_W, SHANK_W, SHANK_W, SHANK_W * 0.25])


def _screw_offset(kind: int) -> float:
    """Return the local x of a screw's middle (its pose centre)."""
    return (SHANK_L[kind] - HEAD_L) / 2.0


def _screw_disks(kind: int, bend: tuple[float, float] | None) -> np.ndarray:
    """Return collision disks (x, y, r) of a screw around its pose centre."""
    pts, _ = _screw_centerline(kind, bend)
    disks = [(-HEAD_L / 2, 0.0, math.hypot(HEAD_L / 2, HEAD_W))]
    for a, b in itertools.pairwise(pts):
        n = max(1, math.ceil(np.linalg.norm(b - a) / SHANK_W))
        for t in np.linspace(0.0, 1.0, n + 1):
            p = a + t * (b - a)
            disks.append((p[0], p[1], SHANK_W * 1.05))
    out = np.array(disks)
    out[:, 0] -= _screw_offset(kind)
    return out


def _make_item(kind: int) -> _Item:
    """Return an undamaged part of ``kind``."""
    if kind in SHANK_L:
        return _Item(kind, _screw_disks(kind, None))
    r = NUT_R if kind == NUT else WASHER_R
    return _Item(kind, np.array([[0.0, 0.0, r]]))


def _layout(rng: np.random.Generator, items: list[_Item], s: float, tries: int = 300) -> bool:
    """Return whether every item got a non-overlapping pose inside LAYOUT (placed largest first, set in place)."""
    x0, y0, x1, y1 = LAYOUT
    placed: list[np.ndarray] = []
    order = sorted(range(len(items)), key=lambda i: -float(np.ptp(items[i].disks[:, 0])))
    for i in order:
        item = items[i]
        for _ in range(tries):
            angle = float(rng.uniform(0.0, 360.0))
            centre = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            xy = transform_points(item.disks[:, :2], centre, angle)
            r = item.disks[:, 2]
            if (
                (xy[:, 0] - r).min() < x0
                or (xy[:, 0] + r).max() > x1
                or (xy[:, 1] - r).min() < y0
                or (xy[:, 1] + r).max() > y1
            ):
                continue
            mine = np.concatenate([xy, r[:, None]], axis=1)
            if any(_overlap(mine, other, GAP) for other in placed):
                continue
            placed.append(mine)
            item.centre, item.angle = centre * s, angle
            break
        else:
            return False
    return True


def _overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Return whether any disk of ``a`` comes closer than ``gap`` to any disk of ``b`` (rows x, y, r)."""
    d = np.linalg.norm(a[:, None, :2] - b[None, :, :2], axis=2)
    return bool((d < a[:, None, 2] + b[None, :, 2] + gap).any())


# -- bag ------------------------------------------------------------------------------------------------------------
def _bag_outline(rng: np.random.Generator, s: float) -> np.ndarray:
    """Return the bag's outline (product-frame pixels): a rectangle with slightly wavy, softly rounded sides."""
    x0, y0, x1, y1 = BAG
    pts = []
    n = 14
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    for c in range(4):
        (ax, ay), (bx, by) = corners[c], corners[(c + 1) % 4]
        for t in np.linspace(0.0, 1.0, n, endpoint=False):
            jitter = 0.0 if c == 0 else rng.normal(0.0, 0.0012)  # the sealed top edge is straight
            nx, ny = by - ay, ax - bx
            norm = math.hypot(nx, ny)
            inset = 0.012 * (1.0 - math.sin(math.pi * t)) ** 6  # rounded corners
            pts.append(
                (
                    ax + t * (bx - ax) - (nx / norm) * (jitter - inset),
                    ay + t * (by - ay) - (ny / norm) * (jitter - inset),
                )
            )
    return np.array(pts) * s


def _seal_parts(rng: np.random.Generator, gt: GlobalTransform, s: float, film: tuple) -> list[Part]:
    """Return the welded seal along the top of the bag: a bright band with fine ribs."""
    x0, y0, x1, _ = BAG
    band = np.array([[x0, y0], [x1, y0], [x1, y0 + SEAL], [x0, y0 + SEAL]]) * s
    bright = tuple(min(255.0, c * 1.1) for c in film)
    parts = [Part(gt(band), bright, cls=-1, shading=0.0, texture=3.0, opacity=0.62)]
    ribs = []
    y_a, y_b = (y0 + 0.008) * s, (y0 + SEAL - 0.008) * s
    for x in np.arange(x0 + 0.01, x1 - 0.01, 0.012):
        xa = x * s
        ribs += [(xa, y_a), (xa, y_b), (xa + 0.004 * s, y_b), (xa + 0.004 * s, y_a)]
    parts.append(
        Part(
            gt(np.array(ribs)),
            tuple(c * 0.9 for c in bright),
            cls=-1,
            shading=0.0,
            texture=2.0,
            opacity=0.35,
            thickness=max(1.0, 0.0025 * s),
            closed=False,
        )
    )
    edge = np.array([[x0, y0 + SEAL], [x1, y0 + SEAL]]) * s
    parts.append(
        Part(
            gt(edge),
            (250, 250, 252),
            cls=-1,
            thickness=max(1.0, 0.004 * s),
            closed=False,
            shading=0.0,
            texture=1.0,
            opacity=0.5,
        )
    )
    return parts


def _wrinkles(rng: np.random.Generator, gt: GlobalTransform, s: float) -> list[Part]:
    """Return faint folds of the film across the bag: a tapered light streak with a darker one beside it."""
    x0, y0, x1, y1 = BAG
    out = []
    for _ in range(int(rng.integers(5, 10))):
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0 + SEAL, y1)])
        a = rng.uniform(0, math.pi)
        length = rng.uniform(0.12, 0.4)
        pts = [p]
        for _ in range(5):
            a += rng.normal(0.0, 0.15)
            pts.append(pts[-1] + length / 5 * np.array([math.cos(a), math.sin(a)]))
        center = np.array(pts)
        width = rng.uniform(0.004, 0.012)
        hw = width * np.sin(np.linspace(0.0, math.pi, len(center))) + 1e-4
        left, right = _strip(center, hw)
        light = np.concatenate([left, right[::-1]])
        out.append(
            Part(
                gt(light * s),
                (250.0, 251.0, 253.0),
                cls=-1,
                shading=0.0,
                texture=1.0,
                opacity=float(rng.uniform(0.08, 0.18)),
            )
        )
        if rng.random() < 0.6:
            shift = np.concatenate([left - center, right - center])[: len(center)] * 1.8
            dark = np.concatenate([left + shift, (center + shift)[::-1]])
            out.append(
                Part(
                    gt(dark * s),
                    (60.0, 64.0, 70.0),
                    cls=-1,
                    shading=0.0,
                    texture=1.0,
                    opacity=float(rng.uniform(0.05, 0.1)),
                )
            )
    return out


def _tear_polygon(rng: np.random.Generator, gt: GlobalTransform, s: float, items: list[_Item]) -> np.ndarray | None:
    """Return a ragged hole (image pixels) in a free area of the bag film, or None when there is no room."""
    x0, y0, x1, y1 = BAG
    ax, ay = rng.uniform(0.045, 0.075), rng.uniform(0.018, 0.03)
    for _ in range(200):
        c = np.array([rng.uniform(x0 + 0.02, x1 - 0.02), rng.uniform(y0 + SEAL + 0.03, y1 - 0.02)])
        ok = True
        for item in items:
            assert item.centre is not None
            xy = transform_points(item.disks[:, :2], item.centre / s, item.angle)
            if (np.linalg.norm(xy - c, axis=1) < item.disks[:, 2] + 1.3 * ax + 0.006).any():
                ok = False
                break
        if ok:
            break
    else:
        return None
    n = 22
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    rad = 1.0 + rng.uniform(-0.28, 0.28, n)
    pts = np.stack([ax * rad * np.cos(t), ay * rad * np.sin(t)], axis=1)
    return gt(transform_points(pts, c, rng.uniform(0, 180)) * s)


def _draw_tear(
    canvas: Canvas, background: np.ndarray, poly: np.ndarray, bag_ss: np.ndarray, film: tuple, s: float
) -> np.ndarray:
    """Return the mask of a tear after opening the film inside ``poly`` (within the supersampled bag region
    ``bag_ss``, so the background shows through) and drawing its bright ragged rim."""
    hole = Part(poly, (0, 0, 0))
    hole_ss = canvas.upsample_region(canvas.footprint([hole])) & bag_ss
    canvas.rgb[hole_ss] = background[hole_ss]
    rim = Part(
        poly,
        tuple(min(255.0, c * 1.15) for c in film),
        cls=-1,
        thickness=max(1.0, 0.006 * s),
        shading=0.0,
        texture=4.0,
        opacity=0.8,
    )
    canvas.draw(rim, region=bag_ss)
    return canvas.footprint([hole, rim]) & canvas.downsample_region(bag_ss)


# -- parts ------------------------------------------------------------------------------------------------------------
def _strip(center: np.ndarray, hw: np.ndarray, f: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Return the (left, right) offset lines of a polyline at ``f`` times the half-widths ``hw`` (mitred joins)."""
    d = np.diff(center, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    seg_n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    normals = np.empty_like(center)
    normals[0], normals[-1] = seg_n[0], seg_n[-1]
    for i in range(1, len(center) - 1):
        m = seg_n[i - 1] + seg_n[i]
        m /= np.linalg.norm(m)
        normals[i] = m / max(0.3, float(np.dot(m, seg_n[i])))
    off = normals * (hw * f)[:, None]
    return center + off, center - off


def _threads(center: np.ndarray, w: float) -> list[np.ndarray]:
    """Return comb polygons of slanted thread crests along every segment of the threaded centre line."""
    out = []
    for a, b in itertools.pairwise(center):
        length = float(np.linalg.norm(b - a))
        d = (b - a) / length
        n = np.array([-d[1], d[0]])
        teeth = []
        u = PITCH * 0.6
        v = w * 0.9
        while u + PITCH * 0.9 < length - w * 0.3:
            for du, dv in ((0.0, -v), (PITCH * 0.45, v), (PITCH * 0.85, v), (PITCH * 0.4, -v)):
                teeth.append(a + (u + du) * d + dv * n)
            u += PITCH
        if teeth:
            out.append(np.array(teeth))
    return out


def _part_parts(
    rng: np.random.Generator, gt: GlobalTransform, s: float, item: _Item, obj: int, steel: tuple
) -> tuple[list[Part], np.ndarray | None]:
    """Return the parts of one item (shadow first) in image pixels, and the mask of its damage (None if intact)."""
    assert item.centre is not None
    centre, angle = item.centre, item.angle

    def place(pts: np.ndarray) -> np.ndarray:
        """Return local points (units of the side) in image pixels."""
        return gt(transform_points(np.asarray(pts, dtype=float) * s, centre, angle))

    shadow_off = np.array([0.004, 0.006]) * s
    kind = item.kind
    region = None
    if kind in SHANK_L:
        col = jitter_color(rng, steel, 0.01, 0.05)
        dx = _screw_offset(kind)
        center, hw = _screw_centerline(kind, item.bend)
        center = center - [dx, 0.0]
        left, right = _strip(center, hw)
        shank = np.concatenate([left, right[::-1]])
        head = _rounded_box(-HEAD_L - dx, 0.0 - dx, HEAD_W, 0.009)
        highlight, _ = _strip(center[:-1], hw[:-1], 0.4)
        parts = [
            Part(
                place(_shadow_outline(center, hw, dx)) + shadow_off,
                (25, 25, 30),
                cls=-1,
                shading=0.0,
                texture=0.0,
                opacity=0.3,
            ),
            Part(place(shank), col, cls=kind, obj=obj, shading=0.55, texture=3.0),
        ]
        for comb in _threads(center[:-1], SHANK_W):
            parts.append(
                Part(
                    place(comb), tuple(c * 0.55 for c in col), cls=kind, obj=obj, shading=0.0, texture=2.0, opacity=0.55
                )
            )
        parts.append(
            Part(
                place(highlight),
                (250, 250, 252),
                cls=-1,
                thickness=max(1.0, 0.004 * s),
                closed=False,
                shading=0.0,
                texture=1.0,
                opacity=0.3,
            )
        )
        parts.append(
            Part(place(head), tuple(c * 1.04 for c in col), cls=kind, obj=obj, shading=0.5, texture=3.0, highlight=0.12)
        )
        # the hex socket / slot edge seen from the side: a darker band on the head's top face
        band = np.array(
            [
                [-HEAD_L - dx, -HEAD_W * 0.45],
                [-HEAD_L * 0.75 - dx, -HEAD_W * 0.45],
                [-HEAD_L * 0.75 - dx, HEAD_W * 0.45],
                [-HEAD_L - dx, HEAD_W * 0.45],
            ]
        )
        parts.append(Part(place(band), tuple(c * 0.7 for c in col), cls=kind, obj=obj, shading=0.2, texture=2.0))
        if item.bend is not None:
            # damaged region: the shank from the bend to the tip
            tail = center[1:]
            tl, tr = _strip(tail, hw[1:])
            tail_poly = np.concatenate([tl, tr[::-1]])
            tmp = Canvas(gt.size[0], gt.size[1], np.random.default_rng(0))
            region = tmp.footprint(
                [Part(place(tail_poly), (0, 0, 0)), Part(place(tail_poly), (0, 0, 0), thickness=max(2.0, 0.006 * s))]
            )
        return parts, region
    if kind == NUT:
        col = jitter_color(rng, tuple(c * 0.56 for c in steel), 0.01, 0.05)
        t = np.radians(np.arange(6) * 60.0 + 30.0)
        rounded = []
        for a in t:  # slightly rounded hexagon corners
            for da in (-5.0, 5.0):
                rr = NUT_R * (0.97 if da else 1.0)
                rounded.append((rr * math.cos(a + math.radians(da)), rr * math.sin(a + math.radians(da))))
        hexagon = np.array(rounded)
        hole = ellipse_polygon((0, 0), (NUT_HOLE, NUT_HOLE), 0.0, 32)
        thread = ellipse_polygon((0, 0), (NUT_HOLE * 1.12, NUT_HOLE * 1.12), 0.0, 32)
        parts = [
            Part(
                place(hexagon) + shadow_off,
                (25, 25, 30),
                cls=-1,
                shading=0.0,
                texture=0.0,
                opacity=0.3,
                holes=[place(hole) + shadow_off],
            ),
            Part(place(hexagon), col, cls=NUT, obj=obj, shading=0.2, texture=3.0, highlight=0.1, holes=[place(hole)]),
            Part(
                place(hexagon * 0.97),
                tuple(min(255.0, c * 1.6) for c in col),
                cls=NUT,
                obj=obj,
                thickness=max(1.0, 0.004 * s),
                shading=0.0,
                texture=2.0,
                opacity=0.6,
            ),
            Part(
                place(thread),
                tuple(c * 0.6 for c in col),
                cls=NUT,
                obj=obj,
                thickness=max(1.0, 0.005 * s),
                shading=0.0,
                texture=2.0,
                opacity=0.8,
            ),
        ]
        return parts, None
    col = jitter_color(rng, tuple(min(255.0, c * 1.12) for c in steel), 0.01, 0.04)
    n = 48
    if item.gap is None:
        outer = ellipse_polygon((0, 0), (WASHER_R, WASHER_R), 0.0, n)
        inner = ellipse_polygon((0, 0), (WASHER_HOLE, WASHER_HOLE), 0.0, n)
        ring, holes = outer, [inner]
    else:
        start, span = item.gap
        ring = _arc_ring(start + span, 360.0 - span, rng, jagged=True)
        holes = []
        missing = _arc_ring(start - 4.0, span + 8.0, rng, jagged=False)
    edge = ellipse_polygon((0, 0), (WASHER_HOLE * 1.25, WASHER_HOLE * 1.25), 0.0, 32)
    parts = [
        Part(
            place(ring) + shadow_off,
            (25, 25, 30),
            cls=-1,
            shading=0.0,
            texture=0.0,
            opacity=0.3,
            holes=[place(h) + shadow_off for h in holes],
        ),
        Part(
            place(ring),
            col,
            cls=WASHER,
            obj=obj,
            shading=0.35,
            texture=2.5,
            highlight=0.1,
            holes=[place(h) for h in holes],
        ),
    ]
    if item.gap is None:
        parts.append(
            Part(
                place(edge),
                tuple(c * 0.88 for c in col),
                cls=WASHER,
                obj=obj,
                thickness=max(1.0, 0.003 * s),
                shading=0.0,
                texture=1.5,
                opacity=0.6,
            )
        )
    else:
        tmp = Canvas(gt.size[0], gt.size[1], np.random.default_rng(0))
        region = tmp.footprint([Part(place(missing), (0, 0, 0))])
    return parts, region


def _shadow_outline(center: np.ndarray, hw: np.ndarray, dx: float) -> np.ndarray:
    """Return the outline of a whole screw (head and shank) for its shadow."""
    c = np.concatenate([[[-HEAD_L - dx, 0.0], [-dx - 0.002, 0.0]], center])
    left, right = _strip(c, np.concatenate([[HEAD_W, HEAD_W], hw]))
    return np.concatenate([left, right[::-1]])


def _rounded_box(xa: float, xb: float, hw: float, r: float) -> np.ndarray:
    """Return a rounded rectangle spanning x in [xa, xb] and y in [-hw, hw] (bottom half first, then top half)."""
    pts = []
    for cx, cy, a0 in ((xb - r, hw - r, 0), (xa + r, hw - r, 90), (xa + r, -hw + r, 180), (xb - r, -hw + r, 270)):
        for a in np.linspace(a0, a0 + 90, 5):
            pts.append((cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a))))
    return np.array(pts)


def _arc_ring(start: float, span: float, rng: np.random.Generator, jagged: bool) -> np.ndarray:
    """Return a washer segment from ``start`` over ``span`` degrees (outer arc, then inner arc back)."""
    n = max(6, int(span / 6))
    a = np.radians(np.linspace(start, start + span, n))
    outer = np.stack([WASHER_R * np.cos(a), WASHER_R * np.sin(a)], axis=1)
    inner = np.stack([WASHER_HOLE * np.cos(a[::-1]), WASHER_HOLE * np.sin(a[::-1])], axis=1)
    if not jagged:
        return np.concatenate([outer, inner])
    mid = (WASHER_R + WASHER_HOLE) / 2  # ragged fracture faces at both ends
    ends = [a[-1] + math.radians(rng.uniform(-5.0, 5.0)), a[0] + math.radians(rng.uniform(-5.0, 5.0))]
    m_end, m_start = (np.array([[mid * math.cos(e), mid * math.sin(e)]]) for e in ends)
    return np.concatenate([outer, m_end, inner, m_start])


def _union(canvas: Canvas, objs: list[int]) -> np.ndarray:
    """Return the union of the footprints of the objects ``objs``."""
    out = np.zeros((canvas.height, canvas.width), dtype=bool)
    for o in objs:
        out |= canvas.object_mask(o)
    return out
