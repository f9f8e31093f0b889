"""The contact sheet of a synthetic category: good images, then one image of every defect type."""

from __future__ import annotations

import numpy as np

from csad.data.synth.writer import CategorySummary
from csad.viz import outline, tile_grid


def contact_sheet(summary: CategorySummary, columns: int = 6) -> np.ndarray:
    """Return an RGB grid of the summary's example images, defect regions outlined in green."""
    tiles = [(name, outline(sample.image, sample.defect_masks)) for name, sample in summary.examples]
    return tile_grid(tiles, columns=columns)
