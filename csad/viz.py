"""Pictures for DVC image plots and the README: captioned tile grids, outlines, a fixed label palette.

>>> import numpy as np
>>> sheet = tile_grid([("a", np.zeros((32, 32, 3), np.uint8))] * 3, columns=2)
>>> sheet.shape[2]
3
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# A fixed palette (class k -> colour) so pseudo-label and prediction pictures are comparable across runs.
PALETTE = np.array(
    [
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
    ],
    dtype=np.uint8,
)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Return an RGB picture of an integer label map in the fixed palette (labels past it wrap around)."""
    idx = np.asarray(labels).astype(np.int64)
    out = PALETTE[np.where(idx == 0, 0, (idx - 1) % (len(PALETTE) - 1) + 1)]
    return out


#: Display range of normalised LGST anomaly maps in heat overlays: 0 = the 0.9 quantile of validation pixels and
#: 0.1 = their 0.995 quantile, per branch (csad.detector.model), so 0.4 is far above anything a good image shows.
HEAT_MAX = 0.4


def heat_overlay(image: np.ndarray, anomaly_map: np.ndarray, vmax: float = HEAT_MAX) -> np.ndarray:
    """Return the uint8 RGB ``image`` (H, W, 3) blended half and half with the JET heat map of ``anomaly_map``
    (H, W), on one fixed scale [0, vmax] for every image so that colours compare across images."""
    norm = np.clip(np.asarray(anomaly_map, dtype=np.float32) / vmax, 0.0, 1.0)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (0.5 * image + 0.5 * heat).astype(np.uint8)


def outline(
    image: np.ndarray, masks: Sequence[np.ndarray], color: tuple[int, int, int] = (0, 255, 0), thickness: int = 1
) -> np.ndarray:
    """Return a copy of ``image`` with the outlines of the boolean ``masks`` drawn on it."""
    out = np.ascontiguousarray(image.copy())
    for mask in masks:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, color, thickness)
    return out


def tile_grid(tiles: Sequence[tuple[str, np.ndarray]], columns: int = 6, tile_size: int = 192) -> np.ndarray:
    """Return one RGB picture with the captioned ``tiles`` (caption, RGB image) laid out in a grid."""
    if not tiles:
        raise ValueError("tile_grid needs at least one tile")
    cells = []
    for caption, img in tiles:
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        h, w = img.shape[:2]
        scale = tile_size / max(h, w)
        small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        cell = np.full((tile_size + 18, tile_size, 3), 255, dtype=np.uint8)
        y0, x0 = 18 + (tile_size - small.shape[0]) // 2, (tile_size - small.shape[1]) // 2
        cell[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
        cv2.putText(cell, caption[:28], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cells.append(cell)
    columns = max(1, min(columns, len(cells)))
    while len(cells) % columns:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.concatenate(cells[i : i + columns], axis=1) for i in range(0, len(cells), columns)]
    return np.concatenate(rows, axis=0)
