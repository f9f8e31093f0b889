"""``juice_bottle_photo``: the juice bottle with a front label of the juice's own colour, as a photograph.

The category's module (the registry and the ``synth`` stage's dependencies name ``csad/data/synth/<category>.py``);
the renderer lives in :mod:`csad.data.synth.photo_categories`.
"""

from __future__ import annotations

from csad.data.synth.photo_categories import JuiceBottlePhoto

__all__ = ["JuiceBottlePhoto"]
