"""The two "hard" synthetic categories: existing products as a camera sees them, with same-colour parts.

On real MVTec LOCO photographs the weight-free pseudo-label backend fails in ways the clean renders do not show:
the juice bottle's front label can have nearly the colour of the juice (orange juice, orange label), so grouping
by colour merges the label into the liquid; and real photographs have glossy highlights, uneven light,
vignetting, sensor noise and slight blur. Each class here is an existing renderer with its own ``name``, the same
component classes, defects and logic, a hard-variant option of the base renderer switched on, and the photo layer
(:func:`csad.data.synth.photo.photograph`) applied after the base render with the image's own generator.

Both live in this one module (each category's module, ``juice_bottle_photo.py`` / ``breakfast_box_photo.py``,
re-exports its class) so that the two categories import the same code and one ``csad/data/synth/${item}.py``
dependency template of the ``synth`` DVC stage covers both.
"""

from __future__ import annotations

import numpy as np

from csad.data.synth.base import Sample
from csad.data.synth.breakfast_box import BreakfastBox
from csad.data.synth.juice_bottle import JuiceBottle
from csad.data.synth.photo import HighlightStyle, class_ids, photograph


class JuiceBottlePhoto(JuiceBottle):
    """``juice_bottle_photo``: the juice bottle whose front label shares the juice's colour (texture differs),
    with highlights on the glassy liquid and the photo layer."""

    name = "juice_bottle_photo"
    label_matches_liquid = True
    #: classes that get specular highlights: the juice seen through the glass (the glass itself has no class)
    glossy_classes: tuple[str, ...] = ("liquid_orange", "liquid_red", "liquid_yellow")
    highlight_style: HighlightStyle = "streak"

    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one photo-like juice bottle image, optionally with ``defect`` (ground truth as the base's)."""
        sample = super().render(rng, size, defect)
        glossy = class_ids(self.component_classes, self.glossy_classes)
        return photograph(sample, rng, glossy, self.highlight_style)


class BreakfastBoxPhoto(BreakfastBox):
    """``breakfast_box_photo``: the breakfast box with banana chips of the cereal's colour (texture differs),
    glossy fruit and the photo layer."""

    name = "breakfast_box_photo"
    chips_match_cereal = True
    #: classes that get specular highlights: the fruit skins
    glossy_classes: tuple[str, ...] = ("tangerine", "nectarine")
    highlight_style: HighlightStyle = "spot"

    def render(self, rng: np.random.Generator, size: int, defect: str | None) -> Sample:
        """Return one photo-like breakfast box image, optionally with ``defect`` (ground truth as the base's)."""
        sample = super().render(rng, size, defect)
        glossy = class_ids(self.component_classes, self.glossy_classes)
        return photograph(sample, rng, glossy, self.highlight_style)
