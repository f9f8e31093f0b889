"""Package exports imported on first use (PEP 562): a package whose ``__init__`` would otherwise import torch lets
its light modules (its settings) be imported alone.

A package lists its exports in ``__all__``, under ``if TYPE_CHECKING:`` as plain imports (what type checkers and
``tests/stage_imports.py`` read) and as a mapping name -> module given to :func:`lazy_exports`;
``tests/test_light_imports.py`` checks that the three agree.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the module-level ``__getattr__`` and ``__dir__`` of ``package`` that import each name of ``exports``
    (name -> the module that defines it) on first use and keep it in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
