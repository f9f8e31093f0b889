"""DVC stage ``settings@<category>``: what every stage of one category reads from params.yaml, one file each.

    python stages/settings.py --category pushpins

Writes ``data/settings/<category>/<stage>.json`` for every per-category stage (tag, ground, propose, refine,
features, cluster, filter, train_seg, train_lgst, score): that stage's params section with the category's
overrides merged in, without the other categories' overrides, unused backends and speed-only knobs
(:mod:`csad.settings`). The other stages depend on their file, not on params sections, so DVC reruns exactly the
stages whose values changed. This stage depends on every section and takes about a second.
"""

from __future__ import annotations

from csad.errors import ParamsError
from csad.io import write_json
from csad.params import load_params
from csad.settings import STAGE_SECTIONS, tracked_settings
from csad.stage import category_parser, run_stage, settings_path


def main(argv: list[str] | None = None) -> None:
    """Write the settings files of one category."""
    args = category_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    if args.category not in params["categories"]:
        raise ParamsError(
            f"{args.params}: category {args.category!r} is not in categories ({', '.join(params['categories'])})"
        )
    for stage in STAGE_SECTIONS:
        write_json(settings_path(args.category, stage), tracked_settings(params, stage, args.category))


if __name__ == "__main__":
    run_stage(main)
