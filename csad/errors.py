"""User-facing errors: each message names the file or param at fault and the fix.

Stage scripts turn a :class:`CsadError` into one line on stderr and exit status 1; any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations


class CsadError(Exception):
    """Base class of errors caused by input or configuration, not by a bug."""


class ParamsError(CsadError, ValueError):
    """params.yaml is malformed: an unknown key, a missing key or a value of the wrong type."""


class CheckpointError(CsadError, FileNotFoundError):
    """A model checkpoint named by a param is missing or unusable."""
