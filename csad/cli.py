"""The ``csad`` command line.

    csad evaluate --dataset-root DATA --maps MAPS --category pushpins [--output metrics.json]

``evaluate`` scores a folder of ``.tiff`` anomaly maps in the official MVTec LOCO AD layout
(``MAPS/<category>/test/<type>/<stem>.tiff``) against a dataset root, with the official AU-sPRO definition and
image AUROC (image score = max of the map), and writes the official-style ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from csad.errors import CsadError
from csad.io import write_json


def _evaluate(args: argparse.Namespace) -> int:
    from csad.eval.evaluate import evaluate_maps

    categories = args.category or sorted(p.name for p in Path(args.maps).iterdir() if p.is_dir())
    results = {}
    for category in categories:
        results[category] = evaluate_maps(args.dataset_root, category, args.maps, progress=not args.quiet)
    if args.output:
        write_json(args.output, results if len(results) > 1 else results[categories[0]])
    print(json.dumps(results, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="csad", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="score a folder of anomaly maps against an MVTec LOCO style dataset")
    ev.add_argument("--dataset-root", required=True, help="folder holding the category folders")
    ev.add_argument("--maps", required=True, help="anomaly maps root: <maps>/<category>/test/<type>/<stem>.tiff")
    ev.add_argument("--category", action="append", help="category to score (repeatable; default: all under --maps)")
    ev.add_argument("--output", help="write the metrics JSON here")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_evaluate)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CsadError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
