"""The grounding backend named by the ``ground`` params section, built in one place (the ``ground`` stage and
``benchmarks/pseudo_labels.py`` use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csad.errors import ParamsError
from csad.pseudo.types import GroundingBackend

#: ``ground.backend`` values: pretrained features + colour, colour only, Grounding DINO + SAM (the paper).
GROUND_BACKENDS: tuple[str, ...] = ("pretrained", "classical", "grounded_sam")


def build_ground_backend(cfg: Mapping[str, Any], device: str, source: str = "params.yaml") -> GroundingBackend:
    """Return the backend of one category's resolved ``ground`` section ``cfg`` on ``device``.

    Raises:
        ParamsError: ``cfg["backend"]`` is not one of :data:`GROUND_BACKENDS` or its section is missing (the
            message names ``source``), or a backend's own params are wrong; CheckpointError: unusable weights.
    """
    backend = cfg.get("backend")
    if backend in GROUND_BACKENDS and not isinstance(cfg.get(backend), Mapping):
        raise ParamsError(
            f"{source}: ground.backend is {backend!r} but ground.{backend} is {cfg.get(backend)!r}, not a mapping of "
            f"that backend's params (see the embedded default params)"
        )
    if backend == "pretrained":
        from csad.pseudo.pretrained import build_pretrained_grounding

        return build_pretrained_grounding(cfg["pretrained"], device)
    if backend == "classical":
        from csad.params import build_with_kwargs
        from csad.pseudo.classical import ClassicalGrounding

        return build_with_kwargs(ClassicalGrounding, cfg["classical"], "ground.classical")
    if backend == "grounded_sam":
        from csad.pseudo.grounding import build_grounded_sam

        return build_grounded_sam(cfg["grounded_sam"], device)
    raise ParamsError(f"{source}: ground.backend must be one of {', '.join(GROUND_BACKENDS)}, got {backend!r}")
