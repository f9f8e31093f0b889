"""The one backbone factory shared by every network of the pipeline: a frozen torchvision ResNet that returns the
requested stages.

>>> fe = build_backbone("resnet18", "none", ["layer1", "layer3"], seed=0)  # doctest: +SKIP
>>> {k: tuple(v.shape) for k, v in fe(torch.zeros(1, 3, 64, 64)).items()}  # doctest: +SKIP
{'layer1': (1, 64, 16, 16), 'layer3': (1, 256, 4, 4)}

Weights come from exactly one of three places, named by the ``weights`` param:

* a local checkpoint path: a state dict of the full torchvision model (``model.state_dict()``, classifier
  included), loaded with ``torch.load(path, weights_only=True)`` and ``strict=True``;
* ``"download"``: torchvision's default ImageNet weights for the name (needs internet or a filled torch hub cache);
* ``"none"``: random initialisation from ``seed`` (deterministic; a warning says results will be poor).

The paper uses ``wide_resnet50_2`` (timm's ``racm_in1k`` tag for the component features, ``tv2_in1k`` for the
segmenter and LGST); torchvision's default ``wide_resnet50_2`` weights are ``IMAGENET1K_V2`` = the tv2 ones.
Inputs are expected ImageNet-normalised (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`, :func:`normalize`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from csad.errors import CheckpointError

log = logging.getLogger(__name__)

#: ImageNet channel mean and standard deviation (RGB, for inputs scaled to [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Backbone names the factory builds.
BACKBONES: tuple[str, ...] = ("wide_resnet50_2", "resnet18", "resnet34", "resnet50")
#: Stage names, in forward order.
LAYERS: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")
#: Stride of each stage relative to the input.
LAYER_STRIDES: dict[str, int] = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}

_BASIC_CHANNELS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
_BOTTLENECK_CHANNELS = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
_CHANNELS: dict[str, dict[str, int]] = {
    "resnet18": _BASIC_CHANNELS,
    "resnet34": _BASIC_CHANNELS,
    "resnet50": _BOTTLENECK_CHANNELS,
    "wide_resnet50_2": _BOTTLENECK_CHANNELS,
}


def feature_channels(name: str, layer: str) -> int:
    """Return the number of channels of stage ``layer`` of backbone ``name``.

    Raises:
        ValueError: unknown name or layer.
    """
    _check_name(name)
    _check_layers([layer])
    return _CHANNELS[name][layer]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` ((B, 3, H, W) RGB in [0, 1]) normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class FeatureExtractor(nn.Module):
    """Frozen ResNet returning ``{layer: (B, C, H/stride, W/stride)}`` for the requested stages, in forward order.

    The network always stays in eval mode (``train()`` is a no-op for it, so a parent module switched to training
    never updates its BatchNorm statistics) and its parameters never require gradients; gradients still flow
    through it to its input if the input requires them. Stages after the last requested one are not run.
    """

    def __init__(self, model: nn.Module, name: str, layers: Sequence[str]) -> None:
        super().__init__()
        self.name = name
        self.layers: tuple[str, ...] = tuple(sorted(set(layers), key=LAYERS.index))
        self.model = model
        self.channels: dict[str, int] = {layer: _CHANNELS[name][layer] for layer in self.layers}
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Return self, kept in eval mode whatever ``mode`` (the backbone is frozen)."""
        super().train(False)
        return self

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Return the ordered dict {layer name: feature map} of the ImageNet-normalised batch ``x``."""
        m = self.model
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        last = self.layers[-1]
        for layer in LAYERS:
            x = getattr(m, layer)(x)
            if layer in self.layers:
                out[layer] = x
            if layer == last:
                break
        return out


def build_backbone(
    name: str,
    weights: str,
    layers: Sequence[str],
    param: str = "backbone.weights",
    seed: int = 0,
) -> FeatureExtractor:
    """Return a frozen :class:`FeatureExtractor` of torchvision's ``name`` that outputs ``layers``.

    Args:
        name: one of :data:`BACKBONES`.
        weights: a checkpoint path, ``"download"`` or ``"none"`` (see the module docstring).
        layers: stage names among :data:`LAYERS` (at least one).
        param: the params.yaml key that holds ``weights``, named in error messages.
        seed: torch seed of the random initialisation (used for ``"none"``; the global RNG is left untouched).

    Raises:
        CheckpointError: the checkpoint file is missing or does not fit the architecture, or the download failed.
        ValueError: unknown name or layer.
    """
    _check_name(name)
    _check_layers(layers)
    if not layers:
        raise ValueError("build_backbone needs at least one layer")
    ctor = getattr(torchvision.models, name)
    if weights == "download":
        try:
            model = ctor(weights="DEFAULT")
        except Exception as err:
            raise CheckpointError(
                f"{param}: downloading torchvision's ImageNet weights for {name} failed ({type(err).__name__}: "
                f"{err}); set {param} to a local checkpoint path, or to 'none' for random weights"
            ) from err
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ctor(weights=None)
        if weights == "none":
            log.warning(
                "%s = none: %s has RANDOM weights (seed %d); features will be poor, results far below the "
                "paper's. Set %s to a checkpoint path or 'download' for ImageNet weights.",
                param,
                name,
                seed,
                param,
            )
        else:
            _load_checkpoint(model, Path(weights), param, name)
    return FeatureExtractor(model, name, layers)


def _load_checkpoint(model: nn.Module, path: Path, param: str, name: str) -> None:
    """Load the state dict at ``path`` into ``model`` (strict), raising CheckpointError on any problem."""
    if not path.is_file():
        raise CheckpointError(
            f"{param}: checkpoint {path} not found; put the {name} state dict there, or set {param} to "
            "'download' (ImageNet weights, needs internet) or 'none' (random weights)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{param}: cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{param}: checkpoint {path} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"{param}: checkpoint {path} does not fit torchvision's {name}: {' '.join(first[:3])}"
        ) from err


def _check_name(name: str) -> None:
    if name not in _CHANNELS:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")


def _check_layers(layers: Sequence[str]) -> None:
    bad = [layer for layer in layers if layer not in LAYERS]
    if bad:
        raise ValueError(f"unknown backbone layer(s) {bad}; choose from {', '.join(LAYERS)}")


def resolve_device(name: str) -> torch.device:
    """Return the torch device of ``name`` (``auto``: cuda when available, else cpu)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
