"""DVC stage ``synth@<category>``: render one synthetic category in the MVTec LOCO AD layout.

    python stages/synth.py --category pushpins

Reads params ``synth``; writes ``<synth.root>/<category>/`` and the contact sheet
``metrics/<category>/synth_contact_sheet.png``.
"""

from __future__ import annotations

from pathlib import Path

from csad.params import load_params
from csad.pipeline import synth
from csad.pipeline.stage import category_parser, run_stage


def main(argv: list[str] | None = None) -> None:
    """Render the category named on the command line."""
    parser = category_parser(__doc__)
    parser.add_argument("--metrics-dir", default="metrics", help="where the contact sheet goes (default: metrics)")
    args = parser.parse_args(argv)
    synth.run(load_params(args.params), args.category, args.params, Path(args.metrics_dir))


if __name__ == "__main__":
    run_stage(main)
