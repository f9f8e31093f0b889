"""Name -> renderer of the synthetic categories (imported lazily so one broken module names itself).

The module of category ``c`` is ``csad/data/synth/<c>.py`` (the ``synth`` DVC stage depends on it by that name).
"""

from __future__ import annotations

import importlib

from csad.data.synth.base import CategoryRenderer

_RENDERERS: dict[str, tuple[str, str]] = {
    "breakfast_box": ("csad.data.synth.breakfast_box", "BreakfastBox"),
    "juice_bottle": ("csad.data.synth.juice_bottle", "JuiceBottle"),
    "pushpins": ("csad.data.synth.pushpins", "Pushpins"),
    "screw_bag": ("csad.data.synth.screw_bag", "ScrewBag"),
    "splicing_connectors": ("csad.data.synth.splicing_connectors", "SplicingConnectors"),
    # hard, photo-like variants (csad/data/synth/photo_categories.py)
    "juice_bottle_photo": ("csad.data.synth.juice_bottle_photo", "JuiceBottlePhoto"),
    "breakfast_box_photo": ("csad.data.synth.breakfast_box_photo", "BreakfastBoxPhoto"),
}
SYNTH_CATEGORIES: tuple[str, ...] = tuple(_RENDERERS)


def get_renderer(name: str) -> CategoryRenderer:
    """Return the renderer of synthetic category ``name``.

    Raises:
        KeyError: ``name`` is not one of :data:`SYNTH_CATEGORIES` (the message lists them).
    """
    if name not in _RENDERERS:
        raise KeyError(f"unknown synthetic category {name!r}; choose from {', '.join(SYNTH_CATEGORIES)}")
    module, cls = _RENDERERS[name]
    return getattr(importlib.import_module(module), cls)()
