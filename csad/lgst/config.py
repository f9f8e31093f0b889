"""Settings of LGST training and map normalisation (docs/method.md 5.4 and 5.5; EfficientAD recipe,
docs/evaluation.md 2).

:class:`LgstConfig` fixes the whole training schedule in advance (no selection on the test set, docs/method.md 9.15),
the seed and the map-normalisation quantiles; its defaults are the paper's (released code) values.
:func:`config_from_params` reads it, with the teacher's :class:`~csad.models.spec.BackboneSpec`, from the ``lgst``
params section. This module imports no torch (the ``settings`` stage checks the params with it,
:mod:`csad.pipeline.settings`); :meth:`LgstConfig.build_model` imports the networks when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from csad.models.spec import BackboneSpec
from csad.params import NOT_A_PARAM, build_with_kwargs

if TYPE_CHECKING:
    from csad.models.lgst import LgstModel

#: torch.quantile refuses inputs with more elements than this.
QUANTILE_MAX_ELEMENTS = 2**24


@dataclass
class LgstConfig:
    """Settings of LGST training and map normalisation; defaults are the paper's (released code) values."""

    image_size: int = 256  # network input side (train/test images are resized to it)
    feat_size: int = 64  # side of teacher / student / AE maps (paper text: 56, code: 64)
    channels: int = 512  # teacher projection / student / AE output channels
    student_widths: tuple[int, int, int] = (256, 512, 512)  # local student conv widths
    ae_base_dim: int = 64  # AE bottleneck channels (encoder starts at half)
    iterations: int = 60000
    batch_size: int = 2
    lr: float = 2e-4
    weight_decay: float = 1e-4
    lr_step_fraction: float = 0.95  # StepLR step = int(fraction * iterations)
    lr_gamma: float = 0.1
    hard_quantile: float = 0.999
    quantile_subsample: int = QUANTILE_MAX_ELEMENTS  # subsample D to this many elements before torch.quantile
    penalty_dir: str | None = None  # folder of any images (paper: Tiny-ImageNet train); None = no penalty
    loss_weights: dict[str, float] = field(default_factory=lambda: {"st": 1.0, "ae": 1.0, "stae": 1.0})
    ae_jitter: float = 0.2  # one of brightness / contrast / saturation, factor U(1 - j, 1 + j)
    map_qa: float = 0.9  # map normalisation: quantile mapped to 0
    map_qb: float = 0.995  # quantile mapped to 0.1
    feature_batch_size: int = 8  # batch of the teacher cache and of inference
    seed: int = 0
    device: str = field(default="auto", metadata=NOT_A_PARAM)  # auto | cpu | cuda[:i] (from runtime.device)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float":
                try:  # YAML reads 2e-4 (no dot) as a string
                    setattr(self, f.name, float(value))
                except (TypeError, ValueError):
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
            elif f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{f.name} must be an int, got {value!r}")
        self.student_widths = tuple(int(w) for w in self.student_widths)  # type: ignore[assignment]
        self.loss_weights = {str(k): float(v) for k, v in dict(self.loss_weights).items()}
        if len(self.student_widths) != 3 or min(self.student_widths) < 1:
            raise ValueError(f"student_widths must be 3 positive ints, got {list(self.student_widths)}")
        if set(self.loss_weights) != {"st", "ae", "stae"}:
            raise ValueError(f"loss_weights must have exactly the keys st, ae, stae, got {sorted(self.loss_weights)}")
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        for name in ("feat_size", "channels", "ae_base_dim", "batch_size", "feature_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if not 1 <= self.quantile_subsample <= QUANTILE_MAX_ELEMENTS:
            raise ValueError(f"quantile_subsample must be in 1..{QUANTILE_MAX_ELEMENTS}, got {self.quantile_subsample}")
        if not (0 <= self.map_qa < self.map_qb <= 1 and 0 < self.hard_quantile <= 1):
            raise ValueError("need 0 <= map_qa < map_qb <= 1 and 0 < hard_quantile <= 1")

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-able dict."""
        out = asdict(self)
        out["student_widths"] = list(self.student_widths)
        return out

    def build_model(self, spec: BackboneSpec) -> LgstModel:
        """Return a fresh :class:`LgstModel` of this config's sizes (on CPU) with the frozen backbone of ``spec``;
        the projection and the networks are drawn from ``seed`` (:func:`csad.models.lgst.build_lgst_model`)."""
        from csad.models.lgst import build_lgst_model

        return build_lgst_model(
            spec, self.image_size, self.feat_size, self.channels, self.student_widths, self.ae_base_dim, self.seed
        )


def config_from_params(section: Mapping[str, Any], param: str = "lgst") -> tuple[LgstConfig, BackboneSpec]:
    """Return (config, backbone spec) of the params section ``param`` (its ``backbone`` sub-mapping: name, weights,
    seed; the rest are :class:`LgstConfig` fields).

    Raises:
        ParamsError: an unknown key or a bad value, named ``param.<key>``.
    """
    values = dict(section)
    backbone = values.pop("backbone", None)
    config = build_with_kwargs(LgstConfig, values, param)
    if backbone is None:  # the teacher's default backbone
        return config, BackboneSpec(param=f"{param}.backbone.weights")
    return config, BackboneSpec.from_params(backbone, param)
