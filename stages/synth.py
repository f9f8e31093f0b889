"""DVC stage ``synth@<category>``: render one synthetic category in the MVTec LOCO AD layout.

    python stages/synth.py --category pushpins

Reads params ``synth``; writes ``<synth.root>/<category>/`` and the contact sheet
``metrics/<category>/synth_contact_sheet.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from csad.data.synth import SYNTH_CATEGORIES
from csad.data.synth.contact_sheet import contact_sheet
from csad.data.synth.writer import generate_category
from csad.errors import ParamsError
from csad.io import write_png
from csad.params import load_params
from csad.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    """Render the category named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics-dir", default="metrics")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if args.category not in SYNTH_CATEGORIES:
        raise ParamsError(
            f"{args.params}: category {args.category!r} has no synthetic renderer; "
            f"choose from {', '.join(SYNTH_CATEGORIES)}"
        )
    synth = params["synth"]
    out = Path(synth["root"]) / args.category
    try:
        summary = generate_category(args.category, out, synth["image_size"], synth["seed"], synth["counts"])
    except ValueError as err:
        raise ParamsError(f"{args.params}: synth: {err}") from err
    write_png(Path(args.metrics_dir) / args.category / "synth_contact_sheet.png", contact_sheet(summary))


if __name__ == "__main__":
    run_stage(main)
