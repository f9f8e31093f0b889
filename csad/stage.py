"""Entry-point helper for the stage scripts: logging set-up and one-line errors.

A :class:`~csad.errors.CsadError` (bad input, bad params, missing checkpoint) becomes ``error: <message>`` on
stderr and exit status 1, without a traceback wall; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from csad.errors import CsadError


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's ``main(argv)``; exit 1 with one clear line on a :class:`CsadError`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(argv)
    except CsadError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
