"""What the networks are built from, importable without torch: the backbone spec (:class:`BackboneSpec`) and the
released decoder's BatchNorm momentum.

The settings stage checks every params section against its typed config (:mod:`csad.pipeline.settings`) and must not
spend seconds importing torch and timm to do so; :mod:`csad.models.backbone` builds the networks these describe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from csad.errors import ParamsError
from csad.params import NOT_A_PARAM, build_with_kwargs

if TYPE_CHECKING:
    from csad.models.backbone import FeatureExtractor

#: BatchNorm momentum of the released decoder (PyTorch semantics: running stats ~ the last batch's stats).
RELEASED_BN_MOMENTUM = 0.999


@dataclass(frozen=True)
class BackboneSpec:
    """Which frozen backbone a network uses: the one params shape ``backbone: {name, weights, seed}`` of every
    section that runs a CNN (``ground.pretrained``, ``features``, ``segment``, ``lgst``), as
    :func:`~csad.models.backbone.build_backbone`'s arguments. The strides are the consumer's, given to :meth:`build`.

    Fields:
        name: one of :data:`csad.models.backbone.BACKBONES`.
        weights: ``"bundled"``, a checkpoint path, ``"download"`` or ``"none"`` (:mod:`csad.models.backbone`).
        seed: torch seed of a random initialisation (``weights: none`` only).
        param: the params key of ``weights``, named in error messages (not a params key itself).
    """

    name: str = "wide_resnet50_2"
    weights: str = "none"
    seed: int = 0
    param: str = field(default="backbone.weights", metadata=NOT_A_PARAM)

    @classmethod
    def from_params(cls, value: Any, section: str) -> BackboneSpec:
        """Return the spec of the params mapping ``value`` found at ``<section>.backbone`` (keys name, weights and,
        optionally, seed).

        Raises:
            ParamsError: ``value`` is not a mapping, lacks ``name`` or ``weights``, has another key (with the
                closest known one) or a value of the wrong type; every message names ``<section>.backbone.<key>``.
        """
        key = f"{section}.backbone"
        if not isinstance(value, Mapping):
            raise ParamsError(f"params.yaml: {key} must be a mapping with name, weights and seed, got {value!r}")
        missing = [k for k in ("name", "weights") if k not in value]
        if missing:
            raise ParamsError(f"params.yaml: {key} lacks {', '.join(missing)}")
        if "param" in value:
            raise ParamsError(f"params.yaml: unknown key {key}.param; known: name, weights, seed")
        return build_with_kwargs(cls, {**value, "param": f"{key}.weights"}, key)

    def build(self, strides: Sequence[int]) -> FeatureExtractor:
        """Return the frozen :class:`~csad.models.backbone.FeatureExtractor` of this spec at ``strides``
        (:func:`~csad.models.backbone.build_backbone`)."""
        from csad.models.backbone import build_backbone

        return build_backbone(self.name, self.weights, strides, param=self.param, seed=self.seed)
