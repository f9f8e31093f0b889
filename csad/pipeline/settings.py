"""The ``settings`` stage: what every per-category stage reads from the params file, one file each.

Writes ``data/settings/<category>/<stage>.json`` for every stage of :data:`csad.settings.STAGE_SECTIONS`
(:func:`csad.settings.tracked_settings`). The other stages depend on their file, not on params sections, so DVC
reruns exactly the stages whose values changed.
"""

from __future__ import annotations

from typing import Any

from csad.errors import ParamsError
from csad.io import write_json
from csad.pipeline.stage import settings_path
from csad.settings import STAGE_SECTIONS, tracked_settings


def run(params: dict[str, Any], category: str, params_file: str) -> None:
    """Write the settings files of ``category`` from the checked ``params`` (read from ``params_file``).

    Raises:
        ParamsError: ``category`` is not listed in ``categories``.
    """
    if category not in params["categories"]:
        raise ParamsError(
            f"{params_file}: category {category!r} is not in categories ({', '.join(params['categories'])})"
        )
    for stage in STAGE_SECTIONS:
        write_json(settings_path(category, stage), tracked_settings(params, stage, category))
