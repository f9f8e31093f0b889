"""Builders of the foundation models used for pseudo-labels (SAM, Grounding DINO), loading local files only.

The heavy packages (segment-anything, groundingdino-py, transformers) are imported lazily inside the functions that
need them; when one is missing, :class:`FoundationMissingError` says how to install it.
"""

from __future__ import annotations

from pathlib import Path

from csad.errors import CheckpointError, CsadError


class FoundationMissingError(CsadError, ImportError):
    """An optional foundation-model package (segment-anything, groundingdino-py, transformers) is not installed."""


def missing_package(package: str, err: ImportError) -> FoundationMissingError:
    """Return the error to raise when the optional ``package`` cannot be imported."""
    return FoundationMissingError(
        f"{package} is not installed ({err}): install the foundation extras with pip install -e '.[foundation]'"
    )


def require_local_file(path: object, message: str) -> Path:
    """Return ``path`` as a Path when it names an existing local file.

    Raises:
        CheckpointError: ``path`` is None, empty or not an existing file; the error text is ``message`` (which should
            name the param to set and the file expected there).
    """
    if path is None or str(path) == "" or not Path(str(path)).is_file():
        raise CheckpointError(message)
    return Path(str(path))
