"""The ``tag`` stage: the text prompt of a category.

Backend ``params``: the tag list ``tag.tags.<category>``; backend ``ram``: RAM++ tags over all train images
(:mod:`csad.pseudo.tags`). Writes ``data/tags/<category>.json``: the final prompt and where each tag came from.
"""

from __future__ import annotations

from typing import Any

from csad.artifacts import stage_output
from csad.data.loco import read_image
from csad.errors import ParamsError
from csad.io import write_json
from csad.pipeline.stage import StageInputs
from csad.pseudo.tags import tags_from_params, tags_from_ram


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``tag`` stage for one category; return the written tag file's content.

    Raises:
        ParamsError: ``tag.backend`` is unknown, or the ``params`` backend has no tag list for the category.
    """
    name, cfg, params_file = inputs.category.name, inputs.config, inputs.args.params
    if cfg["backend"] == "params":
        if cfg["tags"] is None:
            raise ParamsError(f"{params_file}: tag.tags has no list for {name!r}; add one (component names)")
        result = tags_from_params(cfg["tags"])
    elif cfg["backend"] == "ram":
        ram = cfg["ram"]
        images = [read_image(r.path) for r in inputs.category.split("train")]
        result = tags_from_ram(
            images,
            ram["checkpoint"],
            ram["image_size"],
            ram["min_frequency"],
            ram["exclude"],
            ram["extra"],
            inputs.device(),
        )
    else:
        raise ParamsError(f"{params_file}: tag.backend must be 'params' or 'ram', got {cfg['backend']!r}")
    written = result.to_json()
    write_json(stage_output("tag", name), written)
    return written
