"""Overlay pictures of predictions, for a person to look at: the image, its anomaly heat map and its component
segmentation side by side, under a header with the score, the threshold and the verdict.

>>> import numpy as np
>>> from csad.detector.predict import Prediction
>>> p = Prediction("a.png", score=3.0, verdict="anomalous", threshold=2.0, patch_hist=0.5, lgst=2.5,
...                anomaly_map=np.zeros((40, 60), np.float32), segmentation=np.zeros((40, 60), np.uint8),
...                image=np.zeros((40, 60, 3), np.uint8))
>>> overlay_picture(p, height=40).shape
(62, 600, 3)
"""

from __future__ import annotations

import cv2
import numpy as np

from csad.detector.predict import ANOMALOUS, Prediction
from csad.viz import colorize, heat_overlay

HEADER = 22
MIN_WIDTH = 600  # pixels: the header line fits
RED, GREEN = (200, 30, 30), (20, 140, 40)


def overlay_picture(pred: Prediction, height: int = 320) -> np.ndarray:
    """Return the (HEADER + height, W, 3) uint8 RGB picture of a scored prediction (image, heat map on the image,
    segmentation on the image), each panel scaled to fit ``height`` x ``2 * height`` pixels, aspect ratio kept, W at
    least :data:`MIN_WIDTH`.

    Raises:
        ValueError: the prediction has no image or maps (an error row, or predicted without ``keep_image``).
    """
    if pred.image is None or pred.anomaly_map is None or pred.segmentation is None:
        raise ValueError(f"{pred.source}: no image or maps to draw (error: {pred.error})")
    image = pred.image
    seg = (0.5 * image + 0.5 * colorize(pred.segmentation)).astype(np.uint8)
    panels = [image, heat_overlay(image, pred.anomaly_map), seg]
    h, w = image.shape[:2]
    scale = min(height / h, 2 * height / w)  # each panel fits a height x 2 height box (very long images too)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    cells = []
    for panel in panels:
        cell = np.full((height, size[0], 3), 255, np.uint8)
        small = cv2.resize(panel, size, interpolation=cv2.INTER_AREA)
        top = (height - size[1]) // 2
        cell[top : top + size[1]] = small
        cells.append(cell)
    row = np.concatenate(cells, axis=1)
    if row.shape[1] < MIN_WIDTH:  # room for the header text under thin images
        row = np.concatenate([row, np.full((height, MIN_WIDTH - row.shape[1], 3), 255, np.uint8)], axis=1)
    header = np.full((HEADER, row.shape[1], 3), 255, np.uint8)
    colour = RED if pred.verdict == ANOMALOUS else GREEN
    text = (
        f"{str(pred.verdict).upper()}  score {pred.score:.2f} (threshold {pred.threshold:.2f})  "
        f"patch_hist {pred.patch_hist:.2f}  lgst {pred.lgst:.2f}"
    )
    cv2.putText(header, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return np.concatenate([header, row], axis=0)
