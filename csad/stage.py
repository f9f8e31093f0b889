"""Entry-point helper for the stage scripts: logging set-up and one-line errors.

A :class:`~csad.errors.CsadError` (bad input, bad params, missing checkpoint) becomes ``error: <message>`` on
stderr and exit status 1, without a traceback wall; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from csad.data.loco import LocoCategory
from csad.errors import CsadError, ParamsError
from csad.params import load_params


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's ``main(argv)``; exit 1 with one clear line on a :class:`CsadError`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(argv)
    except CsadError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def category_parser(doc: str | None) -> argparse.ArgumentParser:
    """Return the argument parser shared by the per-category stages (``--category``, ``--params``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", required=True, help="category folder name under dataset.root")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def load_stage(argv: list[str] | None, doc: str | None) -> tuple[argparse.Namespace, dict[str, Any], LocoCategory]:
    """Return (args, params, validated category) for a per-category stage.

    Raises:
        ParamsError: the category is not listed in ``categories`` of the params file.
        DatasetError: the dataset layout is wrong.
    """
    args = category_parser(doc).parse_args(argv)
    params = load_params(args.params)
    if args.category not in params["categories"]:
        raise ParamsError(
            f"{args.params}: category {args.category!r} is not in categories ({', '.join(params['categories'])})"
        )
    category = LocoCategory.open(params["dataset"]["root"], args.category)
    return args, params, category


def select_device(runtime: dict[str, Any]) -> str:
    """Return the torch device of ``runtime.device`` (auto: cuda when available, else cpu); set CPU threads."""
    import torch

    if runtime.get("num_threads", 0):
        torch.set_num_threads(int(runtime["num_threads"]))
    device = runtime.get("device", "auto")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError("runtime.device is 'cuda' but no CUDA device is available; use auto or cpu")
    return str(device)


def write_timing(category: str, stage: str, summary: dict[str, Any]) -> None:
    """Write ``metrics/<category>/timing/<stage>.json``: images, seconds and seconds per image of a stage run."""
    from csad.io import write_json

    keys = ("images", "components", "seconds", "seconds_per_image")
    write_json(Path("metrics") / category / "timing" / f"{stage}.json", {k: summary[k] for k in keys if k in summary})
