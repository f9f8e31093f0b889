"""DVC stage ``settings@<category>``: check params.yaml against the typed configs, then write what every stage of one
category reads from it, one file each.

    python stages/settings.py --category pushpins

Writes ``data/settings/<category>/<stage>.json`` for every per-category stage (tag, ground, propose, refine,
features, cluster, filter, train_seg, train_lgst, score): that stage's params section with the category's
overrides merged in, without the other categories' overrides, unused backends and speed-only knobs
(:mod:`csad.settings`). The other stages depend on their file, not on params sections, so DVC reruns exactly the
stages whose values changed. First it checks every typed-config section, overrides included, against its dataclass
(:func:`csad.pipeline.settings.check_configs`). This stage depends on every section and on every config's module.
The configs live in modules that import no torch, OpenCV or scikit-learn (``csad/models/spec.py``,
``csad/pseudo/*_config.py``, ``csad/seg/config.py``, ``csad/lgst/config.py``, ``csad/detector/settings.py``), so it
takes about half a second (``tests/test_light_imports.py`` checks that a run imports none of them).
"""

from __future__ import annotations

from csad.params import load_params
from csad.pipeline import settings
from csad.pipeline.stage import category_parser, run_stage


def main(argv: list[str] | None = None) -> None:
    """Write the settings files of one category."""
    args = category_parser(__doc__).parse_args(argv)
    settings.run(load_params(args.params), args.category, args.params)


if __name__ == "__main__":
    run_stage(main)
