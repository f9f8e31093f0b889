"""The ``csad`` command line.

    csad evaluate --dataset-root DATA --maps MAPS --category pushpins [--output metrics.json]

``evaluate`` scores a folder of ``.tiff`` / ``.tif`` anomaly maps (suffix in any case) in the official MVTec LOCO
AD layout (``MAPS/<category>/test/<type>/<stem>.tiff``) against a dataset root, with the official AU-sPRO
definition and image AUROC (image score = max of the map), and writes the official-style ``metrics.json``.
Any subset of test image types works: a metric that cannot be computed is ``null`` with ``"<key>_reason"``
beside it. Hidden and system entries of MAPS (``.ipynb_checkpoints``, ``.DS_Store``, ``__MACOSX``) are ignored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from csad.errors import CsadError
from csad.io import json_text, list_dir, write_json


def _evaluate(args: argparse.Namespace) -> int:
    """Run ``csad evaluate``; return the exit status.

    Raises:
        CsadError: the maps root is missing or holds no category folder, or the dataset or a map is bad
            (one line naming the file).
    """
    from csad.eval.evaluate import evaluate_maps

    maps = Path(args.maps)
    if not maps.is_dir():
        raise CsadError(f"anomaly maps root {maps} does not exist: pass --maps <folder holding <category>/test/...>")
    categories = args.category or [p.name for p in list_dir(maps, kind="dir")]
    if not categories:
        raise CsadError(f"anomaly maps root {maps} holds no category folder: expected {maps}/<category>/test/<type>/")
    results = {}
    for category in categories:
        results[category] = evaluate_maps(args.dataset_root, category, args.maps, progress=not args.quiet)
    if args.output:
        write_json(args.output, results if len(results) > 1 else results[categories[0]])
    print(json_text(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="csad", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="score a folder of anomaly maps against an MVTec LOCO style dataset")
    ev.add_argument("--dataset-root", required=True, help="folder holding the category folders")
    ev.add_argument(
        "--maps", required=True, help="anomaly maps root: <maps>/<category>/test/<type>/<stem>.tiff (or .tif)"
    )
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
