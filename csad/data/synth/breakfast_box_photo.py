"""``breakfast_box_photo``: the breakfast box with cereal-coloured banana chips and glossy fruit, as a photograph.

The category's module (the registry and the ``synth`` stage's dependencies name ``csad/data/synth/<category>.py``);
the renderer lives in :mod:`csad.data.synth.photo_categories`.
"""

from __future__ import annotations

from csad.data.synth.photo_categories import BreakfastBoxPhoto

__all__ = ["BreakfastBoxPhoto"]
