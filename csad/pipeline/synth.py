"""The ``synth`` stage: one synthetic category rendered in the MVTec LOCO AD layout.

Writes ``<synth.root>/<category>/`` (:func:`csad.data.synth.writer.generate_category`) and the contact sheet
``metrics/<category>/synth_contact_sheet.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csad.data.synth import SYNTH_CATEGORIES
from csad.data.synth.contact_sheet import contact_sheet
from csad.data.synth.writer import generate_category
from csad.errors import ParamsError
from csad.io import write_png


def run(params: dict[str, Any], category: str, params_file: str, metrics_dir: Path) -> dict[str, Any]:
    """Render ``category`` with the checked ``params`` (``synth`` section); return the render summary.

    Raises:
        ParamsError: ``category`` has no synthetic renderer, or a ``synth`` value is out of range.
    """
    if category not in SYNTH_CATEGORIES:
        raise ParamsError(
            f"{params_file}: category {category!r} has no synthetic renderer; choose from {', '.join(SYNTH_CATEGORIES)}"
        )
    synth = params["synth"]
    out = Path(synth["root"]) / category
    try:
        summary = generate_category(category, out, synth["image_size"], synth["seed"], synth["counts"])
    except ValueError as err:
        raise ParamsError(f"{params_file}: synth: {err}") from err
    write_png(Path(metrics_dir) / category / "synth_contact_sheet.png", contact_sheet(summary))
    return summary
