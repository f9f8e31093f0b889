"""Entry-point helper for the stage scripts: logging set-up and one-line errors.

A :class:`~csad.errors.CsadError` (bad input, bad params, missing checkpoint) becomes ``error: <message>`` on
stderr and exit status 1, without a traceback wall; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from csad.artifacts import SETTINGS_DIR, timing_file
from csad.errors import CsadError, ParamsError
from csad.io import read_json
from csad.params import load_params
from csad.settings import stage_config, tracked_settings

if TYPE_CHECKING:
    from csad.data.loco import LocoCategory


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


def settings_path(category: str, stage: str) -> Path:
    """Return ``data/settings/<category>/<stage>.json``, the file of :func:`csad.settings.tracked_settings`."""
    return SETTINGS_DIR / category / f"{stage}.json"


@dataclass
class StageInputs:
    """What a per-category stage runs with.

    Attributes:
        args: the parsed command line (``--category``, ``--params``).
        params: the whole checked params file (only speed-only knobs are read from it directly).
        category: the validated dataset category.
        config: the stage's params section resolved for the category (:func:`csad.settings.stage_config`).
    """

    args: argparse.Namespace
    params: dict[str, Any]
    category: LocoCategory
    config: dict[str, Any]

    def device(self) -> str:
        """Return the torch device of ``runtime`` (see :func:`select_device`)."""
        return select_device(self.params["runtime"])


def load_stage(argv: list[str] | None, doc: str | None, stage: str) -> StageInputs:
    """Return the inputs of the per-category stage ``stage``, after checking that its settings file is current.

    DVC tracks what a stage reads through ``data/settings/<category>/<stage>.json`` (written by the ``settings``
    stage, see :mod:`csad.settings`), not through whole params sections. A stage run by hand after an edit of the
    params file, without the ``settings`` stage, would run on values DVC has not recorded, so it refuses to.

    Raises:
        ParamsError: the category is not listed in ``categories`` of the params file, or its settings file is
            missing or differs from the params file (run ``dvc repro settings@<category>``, or ``dvc repro``).
        DatasetError: the dataset layout is wrong.
    """
    args = category_parser(doc).parse_args(argv)
    params = load_params(args.params)
    if args.category not in params["categories"]:
        raise ParamsError(
            f"{args.params}: category {args.category!r} is not in categories ({', '.join(params['categories'])})"
        )
    path = settings_path(args.category, stage)
    expected = tracked_settings(params, stage, args.category)
    if not path.is_file():
        raise ParamsError(f"{path} is missing: run `dvc repro settings@{args.category}` first (dvc repro does)")
    if read_json(path) != expected:
        raise ParamsError(
            f"{path} does not match {args.params}: run `dvc repro settings@{args.category}` first (dvc repro does)"
        )
    from csad.data.loco import LocoCategory  # here: the settings stage imports this module and opens no dataset

    category = LocoCategory.open(params["dataset"]["root"], args.category)
    return StageInputs(args, params, category, stage_config(params, stage, args.category))


def select_device(runtime: dict[str, Any]) -> str:
    """Return the torch device of ``runtime.device`` (auto: cuda when available, else cpu).

    Also sets the CPU thread count (``runtime.num_threads``, 0 = torch's default) and, on CUDA, deterministic
    algorithms when ``runtime.deterministic`` is on (:func:`csad.models.backbone.set_deterministic`).

    Raises:
        ParamsError: ``runtime.device`` asks for CUDA on a machine without it.
    """
    import torch

    from csad.runtime import set_deterministic

    if runtime.get("num_threads", 0):
        torch.set_num_threads(int(runtime["num_threads"]))
    device = str(runtime.get("device", "auto"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError("runtime.device is 'cuda' but no CUDA device is available; use auto or cpu")
    set_deterministic(device, bool(runtime.get("deterministic", True)))
    return device


def write_timing(category: str, stage: str, summary: dict[str, Any]) -> None:
    """Write ``metrics/<category>/timing/<stage>.json``: images, seconds and seconds per image of a stage run."""
    from csad.io import write_json

    keys = ("images", "components", "seconds", "seconds_per_image")
    write_json(timing_file(category, stage), {k: summary[k] for k in keys if k in summary})
