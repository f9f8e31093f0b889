"""The grounding and proposal backends named by the ``ground`` and ``propose`` params sections, built in one place
(the ``ground`` and ``propose`` stages and ``benchmarks/pseudo_labels.py`` use it).

The weight-free backends (``ground.pretrained``, ``ground.classical``, ``propose.classical``) share one part
segmentation, the params section ``parts`` (:class:`csad.pseudo.regions_config.PartSegmentation`); the stage's resolved
section carries it under the key ``parts`` (:func:`csad.settings.stage_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csad.errors import ParamsError
from csad.pseudo.types import GroundingBackend, ProposalBackend

#: ``ground.backend`` values: pretrained features + colour, colour only, Grounding DINO + SAM (the paper).
GROUND_BACKENDS: tuple[str, ...] = ("pretrained", "classical", "grounded_sam")

#: ``propose.backend`` values: colour parts, SAM automatic masks (the paper).
PROPOSE_BACKENDS: tuple[str, ...] = ("classical", "sam")


def build_ground_backend(cfg: Mapping[str, Any], device: str, source: str = "params.yaml") -> GroundingBackend:
    """Return the backend of one category's resolved ``ground`` section ``cfg`` on ``device`` (``cfg["parts"]``: the
    ``parts`` section, read by the weight-free backends).

    Raises:
        ParamsError: ``cfg["backend"]`` is not one of :data:`GROUND_BACKENDS` or its section is missing (the
            message names ``source``), or a backend's own params are wrong; CheckpointError: unusable weights.
    """
    backend = _chosen(cfg, "ground", GROUND_BACKENDS, source)
    if backend == "pretrained":
        from csad.pseudo.pretrained import build_pretrained_grounding

        return build_pretrained_grounding(cfg["pretrained"], device, _parts(cfg, "ground", source))
    if backend == "classical":
        from csad.params import build_with_kwargs
        from csad.pseudo.classical import ClassicalGrounding

        return build_with_kwargs(
            ClassicalGrounding, {**cfg["classical"], "parts": _parts(cfg, "ground", source)}, "ground.classical"
        )
    if backend == "grounded_sam":
        from csad.pseudo.grounding import build_grounded_sam

        return build_grounded_sam(cfg["grounded_sam"], device)
    raise ParamsError(f"{source}: ground.backend must be one of {', '.join(GROUND_BACKENDS)}, got {backend!r}")


def build_proposal_backend(cfg: Mapping[str, Any], device: str, source: str = "params.yaml") -> ProposalBackend:
    """Return the backend of one category's resolved ``propose`` section ``cfg`` on ``device`` (``cfg["parts"]``:
    the ``parts`` section, read by the classical backend).

    Raises:
        ParamsError: ``cfg["backend"]`` is not one of :data:`PROPOSE_BACKENDS` or its section is missing (the
            message names ``source``), or a backend's own params are wrong; CheckpointError: unusable weights.
    """
    backend = _chosen(cfg, "propose", PROPOSE_BACKENDS, source)
    if backend == "sam":
        from csad.pseudo.proposals import build_sam_proposals

        return build_sam_proposals(cfg["sam"], device)
    if backend == "classical":
        from csad.params import build_with_kwargs
        from csad.pseudo.classical import ClassicalProposals

        return build_with_kwargs(
            ClassicalProposals, {**cfg["classical"], "parts": _parts(cfg, "propose", source)}, "propose.classical"
        )
    raise ParamsError(f"{source}: propose.backend must be one of {', '.join(PROPOSE_BACKENDS)}, got {backend!r}")


def _chosen(cfg: Mapping[str, Any], section: str, backends: tuple[str, ...], source: str) -> Any:
    """Return ``cfg["backend"]`` after checking that the sub-section of a known backend is a mapping."""
    backend = cfg.get("backend")
    if backend in backends and not isinstance(cfg.get(backend), Mapping):
        raise ParamsError(
            f"{source}: {section}.backend is {backend!r} but {section}.{backend} is {cfg.get(backend)!r}, not a "
            f"mapping of that backend's params (see the embedded default params)"
        )
    return backend


def _parts(cfg: Mapping[str, Any], section: str, source: str) -> Any:
    """Return the part-segmentation settings carried by a resolved section, checked against their dataclass.

    Raises:
        ParamsError: they are missing, or the chosen backend's sub-section still sets one of them (they live in the
            ``parts`` section since one segmentation serves every weight-free backend).
    """
    from dataclasses import fields

    from csad.params import build_with_kwargs
    from csad.pseudo.regions_config import PartSegmentation

    backend = cfg["backend"]
    moved = sorted({f.name for f in fields(PartSegmentation)} & set(cfg[backend]))
    if moved:
        raise ParamsError(
            f"{source}: {section}.{backend}.{moved[0]} belongs in the parts section now (parts.{moved[0]}: one part "
            f"segmentation serves ground.pretrained, ground.classical and propose.classical); move "
            f"{', '.join(moved)} there"
        )
    parts = cfg.get("parts")
    if not isinstance(parts, Mapping):
        raise ParamsError(f"{source}: the parts section is missing or not a mapping (see the embedded default params)")
    return build_with_kwargs(PartSegmentation, dict(parts), "parts")
