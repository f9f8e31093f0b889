"""Command-line scaffolding shared by the category benchmarks (``lgst_backbones.py``, ``patch_knn_probe.py``).

Imported as ``_cli`` by scripts run as ``python benchmarks/<name>.py`` (their folder is then on ``sys.path``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from csad.io import read_json
from csad.params import load_params


def category_parser(doc: str | None, out: str) -> argparse.ArgumentParser:
    """Return a parser with the options every category benchmark takes: ``--categories`` (default: params.yaml's),
    ``--params``, ``--threads`` (torch CPU threads, default 2) and ``--out`` (the JSON file, default ``out``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--categories", nargs="*", default=None)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=out)
    return parser


def start_benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """Set logging and the torch thread count from parsed ``args``; return the params, the categories to run and
    the results already in ``args.out`` (empty when the file does not exist yet)."""
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    out = Path(args.out)
    return params, list(args.categories or params["categories"]), (read_json(out) if out.is_file() else {})
