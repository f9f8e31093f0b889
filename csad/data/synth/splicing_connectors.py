"""``splicing_connectors``: two lever splicing connectors joined by one cable.

Both connectors have the same number N of slots (2, 3 or 5, drawn per image; a connector grows with N). Exactly
one cable runs from slot i of the left connector to slot i of the right one, and its colour is tied to N:
2 slots -> yellow, 3 -> blue, 5 -> red.
"""

from __future__ import annotations

import math
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

CONNECTOR, CABLE_YELLOW, CABLE_BLUE, CABLE_RED = 1, 2, 3, 4
SLOT_COUNTS = (2, 3, 5)
COLOR_OF_N = {2: "yellow", 3: "blue", 5: "red"}
CABLE_CLS = {"yellow": CABLE_YELLOW, "blue": CABLE_BLUE, "red": CABLE_RED}
CABLE_RGB: dict[str, Color] = {"yellow": (236, 198, 34), "blue": (34, 84, 206), "red": (204, 32, 38)}

# Geometry in units of the image side. A connector's local frame: x points towards the other connector.
PITCH, MARGIN, BODY_W = 0.08, 0.03, 0.19
LEVER_W, LEVER_H = 0.106, 0.057
OPEN_W, OPEN_H = 0.05, 0.048
CABLE_W, STUB = 0.034, 0.045
CABLE_LENGTH = 0.6  # nominal cable length (for the absolute saturation thresholds)
LEFT_X, RIGHT_X = 0.16, 0.84


def connector_height(n: int) -> float:
    """Return the height (units of the side) of a connector with ``n`` slots."""
    return n * PITCH + 2 * MARGIN


class SplicingConnectors(CategoryRenderer):
    """Renderer of the ``splicing_connectors`` category."""

    name = "splicing_connectors"
    component_classes = ("connector", "cable_yellow", "cable_blue", "cable_red")

    def defect_specs(self, size: int) -> list[DefectSpec]:
        """Return the defect types with saturation = nominal object areas at ``size``."""
        s2 = float(size) ** 2
        cable = int(CABLE_W * CABLE_LENGTH * s2)
        small_connector = int(BODY_W * connector_height(min(SLOT_COUNTS)) * s2)
        return [
            DefectSpec("wrong_cable_color", "logical", cable, False),
            DefectSpec("mismatched_connectors", "logical", small_connector, False),
            DefectSpec("wrong_slot", "logical", cable, False),
            DefectSpec("extra_cable", "logical", cable, False),
            DefectSpec("missing_cable", "logical", cable, False),
            DefectSpec("cable_cut", "structural", 1.0, True),
            DefectSpec("connector_chipped", "structural", 1.0, True),
            DefectSpec("contamination", "structural", 1.0, True),
        ]

    def violations(self, facts: dict[str, Any]) -> list[str]:
        """Return the broken constraints among slot counts, cable count, cable colour and slot pairing."""
        out = []
        n_left, n_right = facts["n_left"], facts["n_right"]
        if n_left != n_right:
            out.append(f"connectors with {n_left} and {n_right} slots")
        colors = facts["cable_colors"]
        if len(colors) != 1:
            out.append(f"{len(colors)} cables, expected 1")
        for color in colors:
            for n in sorted({n_left, n_right}):
                if color != COLOR_OF_N.get(n):
                    out.append(f"{color} cable on a {n}-slot connector (expected {COLOR_OF_N.get(n)})")
        for i, j in facts["slots"]:
            if i != j:
                out.append(f"cable from left slot {i} to right slot {j}")
        return out

    # ------------------------------------------------------------------------------------------------------
    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one splicing connectors image, optionally with ``defect``."""
        for _ in range(50):
            sample = self._try_render(rng, size, defect)
            if sample is not None:
                return sample
        raise RuntimeError(f"splicing_connectors: no layout found for defect {defect!r} at size {size}")

    def _try_render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample | None:
        s = float(size)
        gt = GlobalTransform.random(rng, (size, size), max_angle=2.0, max_scale=0.03, max_shift=0.02)
        canvas = Canvas(size, size, rng)
        bg_col = jitter_color(rng, (92, 96, 100), 0.025)
        canvas.fill_background(bg_col, texture=5.0, blotches=10.0, cells=6)

        # --- the logical content ---------------------------------------------------------------------------
        n_left = int(rng.choice(SLOT_COUNTS))
        n_right = n_left
        if defect == "mismatched_connectors":
            n_right = int(rng.choice([n for n in SLOT_COUNTS if n != n_left]))
        n_min = min(n_left, n_right)
        slot = int(rng.integers(n_min))
        color = COLOR_OF_N[n_left if rng.random() < 0.5 else n_right]
        if defect == "wrong_cable_color":
            color = [c for c in CABLE_RGB if c != color][int(rng.integers(2))]
        pairs = [(slot, slot)]  # the cables actually present (left slot, right slot)
        if defect == "wrong_slot":
            pairs = [(slot, int(rng.choice([j for j in range(n_right) if j != slot])))]
        elif defect == "extra_cable":
            pairs.append((k := int(rng.choice([j for j in range(n_min) if j != slot])), k))
        elif defect == "missing_cable":
            pairs = []

        # --- layout: connectors, then the nominal cable and the actual ones --------------------------------
        left = _Connector(
            n_left,
            ((LEFT_X + rng.uniform(-0.015, 0.015)) * s, (0.5 + rng.uniform(-0.06, 0.06)) * s),
            float(rng.uniform(-4.0, 4.0)),
            1.0,
            s,
        )
        right = _Connector(
            n_right,
            ((RIGHT_X + rng.uniform(-0.015, 0.015)) * s, (0.5 + rng.uniform(-0.06, 0.06)) * s),
            float(rng.uniform(-4.0, 4.0)),
            -1.0,
            s,
        )
        shape = _cable_shape(rng, s)
        nominal_path = gt(_cable_path(left, right, slot, slot, shape))
        paths = []
        for k, (i, j) in enumerate(pairs):
            sh = shape if k == 0 else _cable_shape(rng, s)
            paths.append(gt(_cable_path(left, right, i, j, sh)))
        lo, hi = 0.03 * s, 0.97 * s
        if any(p.min() < lo or p.max() > hi for p in [nominal_path, *paths]):
            return None

        # --- draw: connectors ----------------------------------------------------------------------------------
        body_col = jitter_color(rng, (208, 210, 206), 0.02, 0.05)
        lever_col = jitter_color(rng, (238, 122, 32), 0.04, 0.05)
        hole_col = jitter_color(rng, (46, 44, 42), 0.05)
        left_parts = left.parts(rng, gt, body_col, lever_col, hole_col, obj=0)
        right_parts = right.parts(rng, gt, body_col, lever_col, hole_col, obj=1)
        canvas.draw_all(left_parts)
        canvas.draw_all(right_parts)

        # --- cables --------------------------------------------------------------------------------------------
        width = CABLE_W * s * gt.scale
        cable_col = jitter_color(rng, CABLE_RGB[color], 0.04, 0.05)
        cut = None
        if defect == "cable_cut":
            n_pts = len(paths[0])
            mid = int(rng.uniform(0.3, 0.7) * n_pts)
            gap = max(2, round(_points_per_length(paths[0], 0.045 * s + width)))
            cut = (mid - gap // 2, mid - gap // 2 + gap)
        for k, path in enumerate(paths):
            cls = CABLE_CLS[color]
            if k == 0 and cut is not None:
                _draw_cable(canvas, path[: cut[0] + 1], cable_col, cls, width, obj=10 + k)
                _draw_cable(canvas, path[cut[1] :], cable_col, cls, width, obj=10 + k)
            else:
                _draw_cable(canvas, path, cable_col, cls, width, obj=10 + k)

        # --- structural defects ---------------------------------------------------------------------------------
        masks: list[np.ndarray] = []
        if cut is not None:
            masks.append(_fray(canvas, rng, paths[0], cut, width))
        elif defect == "connector_chipped":
            victim = int(rng.integers(2))
            masks.append(_chip(canvas, rng, gt, (left, right)[victim], victim, bg_col, s))
        elif defect == "contamination":
            masks.append(_smudge(canvas, rng, gt, s))

        # --- logical GT (MVTec LOCO policy) ---------------------------------------------------------------------
        if defect == "wrong_cable_color":
            masks.append(canvas.object_mask(10) | canvas.object_mask(0) | canvas.object_mask(1))
        elif defect == "mismatched_connectors":
            masks.append(canvas.object_mask(0) | canvas.object_mask(1))
        elif defect == "wrong_slot":
            nominal = canvas.footprint([Part(nominal_path, (0, 0, 0), thickness=width, closed=False)])
            masks.append(canvas.object_mask(10) | nominal)
        elif defect == "extra_cable":
            masks.append(canvas.object_mask(10) | canvas.object_mask(11))
        elif defect == "missing_cable":
            masks.append(canvas.footprint([Part(nominal_path, (0, 0, 0), thickness=width, closed=False)]))

        image, classes = canvas.finish(
            light=0.12, blur_sigma=float(rng.uniform(0.4, 0.9)), noise_sigma=float(rng.uniform(2.0, 4.0))
        )
        facts = {
            "n_left": n_left,
            "n_right": n_right,
            "cable_colors": [color] * len(pairs),
            "slots": pairs,
        }
        return Sample(image=image, component_gt=classes, defect_masks=[m for m in masks if m.any()], facts=facts)


# -- connectors -----------------------------------------------------------------------------------------------------
class _Connector:
    """Geometry of one connector: ``side`` = +1 for the left one (slots open to the right), -1 for the right."""

    def __init__(self, n: int, centre: tuple[float, float], angle: float, side: float, s: float):
        self.n, self.centre, self.angle, self.side, self.s = n, centre, angle, side, s
        self.height = connector_height(n)

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        """Return local points (units of the side, x towards the other connector) in product-frame pixels."""
        local = np.asarray(pts, dtype=np.float64) * np.array([self.side, 1.0]) * self.s
        return transform_points(local, self.centre, self.angle)

    def slot_y(self, k: int) -> float:
        """Return the local y of slot ``k`` (0 = top)."""
        return -self.height / 2 + MARGIN + PITCH * (k + 0.5)

    def anchors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (point inside the opening of slot ``k``, end of the straight cable stub) in pixels."""
        y = self.slot_y(k)
        pts = self.to_px(np.array([[BODY_W / 2 - OPEN_W * 0.75, y], [BODY_W / 2 + STUB, y]]))
        return pts[0], pts[1]

    def body(self) -> np.ndarray:
        """Return the body outline in local coordinates."""
        return _rounded_rect(BODY_W, self.height, 0.018)

    def parts(
        self,
        rng: np.random.Generator,
        gt: GlobalTransform,
        body_col: Color,
        lever_col: Color,
        hole_col: Color,
        obj: int,
    ) -> list[Part]:
        """Return the body, edge, levers and slot openings as image-pixel parts."""

        def px(pts: np.ndarray) -> np.ndarray:
            return gt(self.to_px(pts))

        edge_col = tuple(c * 0.7 for c in body_col)
        parts = [
            Part(
                px(self.body()),
                jitter_color(rng, body_col, 0.01, 0.02),
                cls=CONNECTOR,
                obj=obj,
                shading=0.2,
                texture=3.0,
            ),
            Part(
                px(self.body()),
                edge_col,
                cls=CONNECTOR,
                obj=obj,
                thickness=max(1.0, 0.005 * self.s),
                shading=0.0,
                texture=2.0,
            ),
        ]
        grip_col = tuple(c * 0.7 for c in lever_col)
        for k in range(self.n):
            y = self.slot_y(k)
            lx = -BODY_W / 2 + 0.012 + LEVER_W / 2
            lever = _rounded_rect(LEVER_W, LEVER_H, 0.01) + np.array([lx, y])
            grip = np.array(
                [[lx - LEVER_W / 2 + 0.02, y - LEVER_H * 0.3], [lx - LEVER_W / 2 + 0.02, y + LEVER_H * 0.3]]
            )
            hole = rect_polygon((BODY_W / 2 - OPEN_W / 2 + 0.002, y), (OPEN_W, OPEN_H))
            parts += [
                Part(
                    px(lever),
                    jitter_color(rng, lever_col, 0.02, 0.03),
                    cls=CONNECTOR,
                    obj=obj,
                    shading=0.35,
                    texture=3.0,
                ),
                Part(
                    px(grip),
                    grip_col,
                    cls=CONNECTOR,
                    obj=obj,
                    thickness=max(1.0, 0.006 * self.s),
                    closed=False,
                    shading=0.0,
                    texture=1.0,
                ),
                Part(px(hole), hole_col, cls=CONNECTOR, obj=obj, shading=-0.2, texture=2.0),
            ]
        return parts


def _rounded_rect(w: float, h: float, r: float) -> np.ndarray:
    """Return the vertices of a w x h rounded rectangle centred at 0."""
    pts = []
    for (qx, qy), start in zip(((1, 1), (-1, 1), (-1, -1), (1, -1)), (0, 90, 180, 270), strict=True):
        ccx, ccy = qx * (w / 2 - r), qy * (h / 2 - r)
        for a in np.linspace(start, start + 90, 5):
            pts.append((ccx + r * math.cos(math.radians(a)), ccy + r * math.sin(math.radians(a))))
    return np.array(pts)


# -- cables ---------------------------------------------------------------------------------------------------------
CableShape = tuple[float, float, float, float, float, float]


def _cable_shape(rng: np.random.Generator, s: float) -> CableShape:
    """Return a random cable shape (pixels): pull out of the left slot, pull into the right one, position of the
    middle point along the span (fraction) and its vertical offset, tangent length and slope at the middle."""
    return (
        float(rng.uniform(0.06, 0.16)) * s,
        float(rng.uniform(0.06, 0.16)) * s,
        float(rng.uniform(0.4, 0.6)),
        float(rng.uniform(-0.26, 0.26)) * s,
        float(rng.uniform(0.2, 0.38)),
        float(rng.uniform(-0.5, 0.5)),
    )


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, n: int) -> np.ndarray:
    """Return ``n`` points of the cubic Bezier curve with control points p0..p3."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _cable_path(left: _Connector, right: _Connector, i: int, j: int, shape: CableShape, n: int = 48) -> np.ndarray:
    """Return the centre line (product-frame pixels) of a cable from left slot ``i`` to right slot ``j``: a
    straight stub out of each slot joined by two smoothly connected cubic Bezier segments."""
    a_in, a_out = left.anchors(i)
    b_in, b_out = right.anchors(j)
    da = (a_out - a_in) / np.linalg.norm(a_out - a_in)
    db = (b_out - b_in) / np.linalg.norm(b_out - b_in)
    pull_a, pull_b, frac, bend, tlen, slope = shape
    mid = a_out + frac * (b_out - a_out) + np.array([0.0, bend])
    span = float(b_out[0] - a_out[0])
    tangent = np.array([1.0, slope]) / math.hypot(1.0, slope) * tlen * span
    first = _bezier(a_out, a_out + da * pull_a, mid - tangent, mid, n)
    second = _bezier(mid, mid + tangent, b_out + db * pull_b, b_out, n)[1:]
    stub_a = a_in + np.linspace(0.0, 1.0, 6, endpoint=False)[:, None] * (a_out - a_in)
    stub_b = b_out + np.linspace(0.0, 1.0, 6)[1:, None] * (b_in - b_out)
    return _resample(np.concatenate([stub_a, first, second, stub_b]), 0.004 * float(left.s))


def _resample(path: np.ndarray, step: float) -> np.ndarray:
    """Return ``path`` resampled at about equal arc-length ``step``."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    m = max(2, int(cum[-1] / max(step, 1e-6)) + 1)
    t = np.linspace(0.0, cum[-1], m)
    return np.stack([np.interp(t, cum, path[:, 0]), np.interp(t, cum, path[:, 1])], axis=1)


def _points_per_length(path: np.ndarray, length: float) -> float:
    """Return how many consecutive path points span about ``length`` pixels."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    return length / max(float(seg.mean()), 1e-6)


def _normals(path: np.ndarray) -> np.ndarray:
    """Return unit normals of a polyline."""
    d = np.gradient(path, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return np.stack([-d[:, 1], d[:, 0]], axis=1)


def _draw_cable(canvas: Canvas, path: np.ndarray, col: Color, cls: int, width: float, obj: int) -> None:
    """Draw a round cable (shaded tube with darker edges and a glossy streak) along ``path``."""
    if len(path) < 2:
        return
    canvas.draw(
        Part(
            path,
            tuple(c * 0.55 for c in col),
            cls=cls,
            obj=obj,
            thickness=width,
            closed=False,
            shading=0.0,
            texture=2.0,
        )
    )
    canvas.draw(Part(path, col, cls=cls, obj=obj, thickness=width * 0.72, closed=False, shading=0.35, texture=3.0))
    streak = path - _normals(path) * width * 0.16
    canvas.draw(
        Part(
            streak,
            (255, 255, 255),
            cls=-1,
            thickness=max(1.0, width * 0.14),
            closed=False,
            shading=0.0,
            texture=0.0,
            opacity=0.3,
        )
    )


# -- structural defects ---------------------------------------------------------------------------------------------
def _ragged(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, n: int, amp: float) -> np.ndarray:
    """Return a jagged path from ``a`` to ``b`` with ``n`` inner points displaced sideways by up to ``amp``."""
    t = np.linspace(0.0, 1.0, n + 2)[:, None]
    d = b - a
    normal = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
    off = rng.uniform(-amp, amp, size=(n + 2, 1))
    off[0] = off[-1] = 0.0
    return a + t * d + off * normal


def _fray(canvas: Canvas, rng: np.random.Generator, path: np.ndarray, cut: tuple[int, int], width: float) -> np.ndarray:
    """Draw copper strands sticking out of both cut ends; return the region of the gap and the frayed ends."""
    copper = jitter_color(rng, (200, 136, 70), 0.05)
    strands = []
    for end, nxt in ((cut[0], cut[0] + 1), (cut[1], cut[1] - 1)):
        p = path[end]
        d = path[nxt] - p
        d /= max(float(np.linalg.norm(d)), 1e-9)
        normal = np.array([-d[1], d[0]])
        for _ in range(int(rng.integers(4, 7))):
            base = p + d * width * 0.3 + normal * rng.uniform(-0.25, 0.25) * width
            ang = rng.uniform(-0.6, 0.6)
            dirv = d * math.cos(ang) + normal * math.sin(ang)
            tip = base + dirv * rng.uniform(0.2, 0.5) * width
            strands.append(
                Part(
                    np.stack([base, tip]),
                    copper,
                    cls=-1,
                    thickness=max(1.0, width * 0.08),
                    closed=False,
                    shading=0.0,
                    texture=2.0,
                )
            )
    canvas.draw_all(strands)
    lo, hi = max(0, cut[0] - 1), min(len(path), cut[1] + 2)
    return canvas.footprint([Part(path[lo:hi], (0, 0, 0), thickness=width * 1.25, closed=False)])


def _chip(
    canvas: Canvas,
    rng: np.random.Generator,
    gt: GlobalTransform,
    conn: _Connector,
    obj: int,
    bg_col: Color,
    s: float,
) -> np.ndarray:
    """Break a corner off a connector (the table shows through, a grey fracture edge); return its region."""
    qx, qy = float(rng.choice([-1.0, 1.0])), float(rng.choice([-1.0, 1.0]))
    w, h = BODY_W / 2, conn.height / 2
    d1, d2 = rng.uniform(0.05, 0.08), rng.uniform(0.05, 0.08)
    a = np.array([qx * (w - d1), qy * (h + 0.005)])
    b = np.array([qx * (w + 0.005), qy * (h - d2)])
    edge = _ragged(rng, a, b, 6, 0.007)
    poly = np.concatenate([edge, [[qx * (w + 0.03), qy * (h + 0.03)]]])
    poly_px, edge_px = gt(conn.to_px(poly)), gt(conn.to_px(edge))
    body = canvas.object_mask(obj)
    region = canvas.upsample_region(body)
    canvas.draw(Part(poly_px, bg_col, cls=0, shading=0.0, texture=5.0), region=region)
    canvas.draw(
        Part(
            edge_px,
            (150, 150, 146),
            cls=CONNECTOR,
            thickness=max(1.0, 0.008 * s),
            closed=False,
            shading=0.0,
            texture=6.0,
        ),
        region=region,
    )
    return canvas.footprint([Part(poly_px, (0, 0, 0))]) & body


def _smudge(canvas: Canvas, rng: np.random.Generator, gt: GlobalTransform, s: float) -> np.ndarray:
    """Draw a dark greasy smudge with a few droplets somewhere in the scene; return its mask."""
    cx, cy = float(rng.uniform(0.15, 0.85)) * s, float(rng.uniform(0.2, 0.8)) * s
    r = float(rng.uniform(0.02, 0.032)) * s
    t = np.linspace(0, 2 * math.pi, 28, endpoint=False)
    rad = r * (1.0 + 0.22 * np.sin(3 * t + rng.uniform(0, 6.28)) + 0.1 * np.sin(5 * t + rng.uniform(0, 6.28)))
    blobs = [np.stack([cx + rad * np.cos(t), cy + rad * 0.8 * np.sin(t)], axis=1)]
    for _ in range(int(rng.integers(1, 4))):
        ang = rng.uniform(0, 2 * math.pi)
        d = r * rng.uniform(1.3, 1.9)
        blobs.append(
            ellipse_polygon(
                (cx + d * math.cos(ang), cy + d * math.sin(ang)), (r * 0.35, r * 0.28), float(rng.uniform(0, 180)), 12
            )
        )
    col = jitter_color(rng, (58, 46, 34), 0.1)
    parts = [Part(gt(b), col, cls=0, shading=0.3, texture=4.0, opacity=0.9) for b in blobs]
    canvas.draw_all(parts)
    return canvas.footprint(parts)
