"""DVC stage ``tag@<category>``: the text prompt of a category.

    python stages/tag.py --category pushpins

Backend ``params`` (default): the tag list ``tag.tags.<category>`` (the paper's refined lists for MVTec LOCO).
Backend ``ram``: RAM++ tags over all train images (needs the recognize-anything package and tag.ram.checkpoint).
Writes ``data/tags/<category>.json``: the final prompt and where each tag came from.
"""

from __future__ import annotations

from csad.artifacts import stage_output
from csad.data.loco import read_image
from csad.errors import ParamsError
from csad.io import write_json
from csad.pseudo.tags import tags_from_params, tags_from_ram
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Write the tag file of one category."""
    run = load_stage(argv, __doc__, "tag")
    args, category, cfg = run.args, run.category, run.config
    listed = cfg["tags"]
    if cfg["backend"] == "params":
        if listed is None:
            raise ParamsError(f"{args.params}: tag.tags has no list for {args.category!r}; add one (component names)")
        result = tags_from_params(listed)
    elif cfg["backend"] == "ram":
        ram = cfg["ram"]
        images = [read_image(r.path) for r in category.split("train")]
        result = tags_from_ram(
            images,
            ram["checkpoint"],
            ram["image_size"],
            ram["min_frequency"],
            ram["exclude"],
            ram["extra"],
            run.device(),
        )
    else:
        raise ParamsError(f"{args.params}: tag.backend must be 'params' or 'ram', got {cfg['backend']!r}")
    write_json(stage_output("tag", args.category), result.to_json())


if __name__ == "__main__":
    run_stage(main)
