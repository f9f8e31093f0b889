"""DVC stage ``tag@<category>``: the text prompt of a category.

    python stages/tag.py --category pushpins

Backend ``params`` (default): the tag list ``tag.tags.<category>`` (the paper's refined lists for MVTec LOCO).
Backend ``ram``: RAM++ tags over all train images (needs the recognize-anything package and tag.ram.checkpoint).
Writes ``data/tags/<category>.json``: the final prompt and where each tag came from.
"""

from __future__ import annotations

from csad.pipeline import tag
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Write the tag file of one category."""
    tag.run(load_stage(argv, __doc__, "tag"))


if __name__ == "__main__":
    run_stage(main)
