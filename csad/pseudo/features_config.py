"""The ``features`` params section, importable without torch or OpenCV: :class:`ComponentFeatureConfig`, what
describes a component and how the descriptor blocks are weighted. The descriptors themselves are
:mod:`csad.pseudo.features`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csad.models.spec import BackboneSpec
from csad.params import NOT_A_PARAM

#: Descriptor block names accepted by :class:`ComponentFeatureConfig`.
DESCRIPTORS: tuple[str, ...] = ("cnn", "color", "shape", "area", "elongation", "solidity")


@dataclass
class ComponentFeatureConfig:
    """What describes a component and how the blocks are weighted (:mod:`csad.pseudo.features`).

    The defaults suit the synthetic benchmark: colour, area, elongation and solidity carry the separation (the
    ``cnn`` block did not improve it, see :mod:`csad.pseudo.features`). The paper's setting is ``descriptors=["cnn"]``,
    ``backbone={"name": "wide_resnet50_2", "weights": ...}`` with ImageNet weights, ``stride=32`` (layer4),
    ``canvas=65``, ``n_rotations=60``
    (then a block weight of about 3-5 puts the ``cnn`` distances on the bandwidth scale of :mod:`csad.pseudo.features`).

    Fields: ``descriptors`` (block names, in output order); ``backbone`` (the CNN: a
    :class:`csad.models.spec.BackboneSpec`, or the params mapping name / weights / seed), ``stride`` (its
    feature map); ``canvas``, ``n_rotations``, ``batch_size`` (crops per
    forward pass, times ``n_rotations`` images), ``device``; ``n_hu`` (Hu moments in ``shape``);
    ``color_lightness_weight`` (multiplies the lightness mean and std of ``color``: below 1 makes shading count less
    than hue); ``min_fraction``
    (components must cover more of the image); ``block_weights`` (descriptor -> weight, 1.0 when absent);
    ``cnn_normalize`` (L2-normalise the ``cnn`` block before its weight: True on the fixed scale of the hand-crafted
    blocks; False keeps the raw mean features, the released code's scale that ``params/paper.yaml``'s bandwidths
    assume).
    """

    descriptors: list[str] = field(default_factory=lambda: ["color", "area", "elongation", "solidity"])
    backbone: BackboneSpec = field(
        default_factory=lambda: BackboneSpec("tf_efficientnet_lite0", "bundled", param="features.backbone.weights")
    )
    stride: int = 32  # feature map averaged (32: the last stage, WRN50-2 layer4 in the paper)
    canvas: int = 65
    n_rotations: int = 60
    batch_size: int = 8
    device: str = field(default="cpu", metadata=NOT_A_PARAM)  # from runtime.device
    n_hu: int = 4
    color_lightness_weight: float = 1.0
    min_fraction: float = 0.001
    cnn_normalize: bool = True
    block_weights: dict[str, float] = field(
        default_factory=lambda: {
            "cnn": 1.0,
            "color": 1.0,
            "shape": 0.5,
            "area": 1.0,
            "elongation": 0.5,
            "solidity": 0.5,
        }
    )

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, BackboneSpec):
            self.backbone = BackboneSpec.from_params(self.backbone, "features")
        bad = [d for d in self.descriptors if d not in DESCRIPTORS]
        if bad or not self.descriptors:
            raise ValueError(f"component descriptors {bad or '[]'} unknown; choose from {', '.join(DESCRIPTORS)}")
        unknown = set(self.block_weights) - set(DESCRIPTORS)
        if unknown:
            raise ValueError(f"block weights for unknown descriptors {sorted(unknown)}")

    def weight(self, name: str) -> float:
        """Return the weight of block ``name`` (1.0 when not given)."""
        return float(self.block_weights.get(name, 1.0))

    @property
    def uses_cnn(self) -> bool:
        """Return whether the ``cnn`` block is requested (a backbone is then needed)."""
        return "cnn" in self.descriptors
