"""The component segmenter of CSAD (paper section 3.2; the released ``Segmentor``): a frozen CNN encoder (its
stride-4 and stride-16 feature maps; WRN50-2 layer1 + layer3 in the paper) and a trainable DeepLabV3+ decoder
returning per-pixel class logits. Inputs are RGB batches in [0, 1]; the encoder normalises them as its weights
expect.

>>> import numpy as np
>>> model = ComponentSegmenter(3, backbone="resnet18", weights="none", aspp_channels=16, decoder_channels=16)
>>> tuple(model(torch.zeros(2, 3, 64, 64)).shape)
(2, 3, 64, 64)
>>> clone = ComponentSegmenter.from_checkpoint(model.checkpoint())
>>> [m.shape for m in predict_labels(clone, [np.zeros((40, 50, 3), np.uint8)], image_size=64)]
[(64, 64)]

Checkpoints (:meth:`ComponentSegmenter.checkpoint`) hold only the JSON-able :meth:`~ComponentSegmenter.config` and
the decoder's tensors, so they load with ``torch.load(path, weights_only=True)``; the frozen backbone is rebuilt
from its spec (name, weights, seed) by :func:`csad.models.backbone.build_backbone`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from csad.imaging import model_input
from csad.models.backbone import FeatureExtractor, build_backbone, feature_channels
from csad.models.ops import resize_bilinear
from csad.models.spec import RELEASED_BN_MOMENTUM

#: Encoder strides the segmenter reads: low-level (stride 4) and high-level (stride 16) features.
SEGMENTER_STRIDES: tuple[int, int] = (4, 16)


class ConvBnReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU.

    ``bn_momentum`` defaults to the released code's 0.999, a quirk inherited from a DeepLab port: in PyTorch
    semantics (running = (1 - m) * running + m * batch) the running statistics are then almost exactly the
    statistics of the last training batch. Use 0.1 for PyTorch's usual running average.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bn_momentum: float = RELEASED_BN_MOMENTUM,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-5, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: returns the concatenation of a 1x1 branch, one 3x3 branch per dilation rate
    and an image-pooling branch, ``(len(rates) + 2) * out_channels`` channels at the input's resolution."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        rates: Sequence[int] = (6, 12, 18),
        bn_momentum: float = RELEASED_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList([ConvBnReLU(in_channels, out_channels, 1, bn_momentum=bn_momentum)])
        for rate in rates:
            self.stages.append(
                ConvBnReLU(in_channels, out_channels, 3, padding=rate, dilation=rate, bn_momentum=bn_momentum)
            )
        self.pool = ConvBnReLU(in_channels, out_channels, 1, bn_momentum=bn_momentum)
        self.out_channels = out_channels * (len(rates) + 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, (len(rates) + 2) * out_channels, H, W) concatenated branch outputs."""
        outs = [stage(x) for stage in self.stages]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(resize_bilinear(pooled, x.shape[-2:]))
        return torch.cat(outs, dim=1)


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+ decoder of the released ``Segmentor`` (docs/method.md 3.2); returns logits at the requested size.

    High path: the stride-16 features resized to (out/16), ASPP (rates 6/12/18 + image pooling), ``fc1`` 1x1 to
    ``decoder_channels``, bilinear upsample to the stride-4 resolution. Low path: ``reduce`` 1x1 to
    ``reduce_channels``. Fusion: concat, ``fc2`` = two 3x3 ConvBnReLU + a 1x1 conv with bias to ``num_classes``,
    bilinear upsample to the output size. The paper's widths are aspp 256, decoder 256, reduce 48 on WRN50-2
    (in_low 256, in_high 1024).
    """

    def __init__(
        self,
        in_low: int,
        in_high: int,
        num_classes: int,
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        reduce_channels: int = 48,
        rates: Sequence[int] = (6, 12, 18),
        bn_momentum: float = RELEASED_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(in_high, aspp_channels, rates, bn_momentum=bn_momentum)
        self.fc1 = ConvBnReLU(self.aspp.out_channels, decoder_channels, 1, bn_momentum=bn_momentum)
        self.reduce = ConvBnReLU(in_low, reduce_channels, 1, bn_momentum=bn_momentum)
        self.fc2 = nn.Sequential(
            ConvBnReLU(decoder_channels + reduce_channels, decoder_channels, 3, padding=1, bn_momentum=bn_momentum),
            ConvBnReLU(decoder_channels, decoder_channels, 3, padding=1, bn_momentum=bn_momentum),
            nn.Conv2d(decoder_channels, num_classes, kernel_size=1, bias=True),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Return (B, num_classes, *size) logits from stride-4 features ``low`` and stride-16 features ``high``."""
        high_size = (max(1, size[0] // 16), max(1, size[1] // 16))
        if tuple(high.shape[-2:]) != high_size:
            high = resize_bilinear(high, high_size)
        h = self.fc1(self.aspp(high))
        h = resize_bilinear(h, low.shape[-2:])
        out = self.fc2(torch.cat([h, self.reduce(low)], dim=1))
        return resize_bilinear(out, tuple(size))


class ComponentSegmenter(nn.Module):
    """Frozen backbone (strides 4 + 16) + trainable :class:`DeepLabV3PlusDecoder`; returns per-pixel logits.

    ``state_dict()`` / ``load_state_dict()`` cover the decoder only (keys ``decoder.*``); the backbone is rebuilt
    from :meth:`config`. The decoder's initial weights are drawn from ``seed`` (the global torch RNG is untouched).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "wide_resnet50_2",
        weights: str = "none",
        param: str = "segment.backbone.weights",
        seed: int = 0,
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        reduce_channels: int = 48,
        bn_momentum: float = RELEASED_BN_MOMENTUM,
        feature_extractor: FeatureExtractor | None = None,
    ) -> None:
        """Build the segmenter; ``feature_extractor`` reuses an already built backbone (it must match the spec)."""
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self._config: dict[str, Any] = {
            "num_classes": int(num_classes),
            "backbone": str(backbone),
            "weights": str(weights),
            "param": str(param),
            "seed": int(seed),
            "aspp_channels": int(aspp_channels),
            "decoder_channels": int(decoder_channels),
            "reduce_channels": int(reduce_channels),
            "bn_momentum": float(bn_momentum),
        }
        if feature_extractor is None:
            feature_extractor = build_backbone(backbone, weights, SEGMENTER_STRIDES, param=param, seed=seed)
        elif feature_extractor.name != backbone or not set(SEGMENTER_STRIDES) <= set(feature_extractor.strides):
            raise ValueError(
                f"feature_extractor is {feature_extractor.name} strides {feature_extractor.strides}, expected "
                f"{backbone} with strides {SEGMENTER_STRIDES}"
            )
        self.backbone = feature_extractor
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.decoder = DeepLabV3PlusDecoder(
                in_low=feature_channels(backbone, SEGMENTER_STRIDES[0]),
                in_high=feature_channels(backbone, SEGMENTER_STRIDES[1]),
                num_classes=num_classes,
                aspp_channels=aspp_channels,
                decoder_channels=decoder_channels,
                reduce_channels=reduce_channels,
                bn_momentum=bn_momentum,
            )

    @property
    def num_classes(self) -> int:
        """Return the number of output classes (background 0 included)."""
        return int(self._config["num_classes"])

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the frozen (stride 4, stride 16) features of the RGB [0, 1] batch ``x``, computed without grad."""
        with torch.no_grad():
            feats = self.backbone(x)
        return feats[SEGMENTER_STRIDES[0]], feats[SEGMENTER_STRIDES[1]]

    def decode(self, low: torch.Tensor, high: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Return (B, C, *size) logits of the decoder from precomputed backbone features."""
        return self.decoder(low, high, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, num_classes, H, W) logits of the RGB [0, 1] batch ``x`` (B, 3, H, W)."""
        low, high = self.features(x)
        return self.decoder(low, high, (int(x.shape[-2]), int(x.shape[-1])))

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Return an iterator over the trainable (decoder) parameters."""
        return self.decoder.parameters()

    def config(self) -> dict[str, Any]:
        """Return a JSON-able dict of the constructor arguments that rebuild this model."""
        return dict(self._config)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """Return the module state dict without the frozen backbone's entries (decoder only)."""
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        drop = [k for k in state if k.startswith(f"{prefix}backbone.")]
        for key in drop:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Return the load result of the ``decoder.*`` entries of ``state_dict`` into the decoder."""
        decoder_state = OrderedDict(
            (k.removeprefix("decoder."), v) for k, v in state_dict.items() if k.startswith("decoder.")
        )
        if strict and len(decoder_state) != len(state_dict):
            extra = [k for k in state_dict if not k.startswith("decoder.")]
            raise RuntimeError(f"unexpected keys in segmenter state dict: {extra[:5]}")
        return self.decoder.load_state_dict(decoder_state, strict=strict, assign=assign)

    def checkpoint(self) -> dict[str, Any]:
        """Return ``{"config": config(), "state_dict": decoder tensors on cpu}``, loadable with weights_only=True."""
        state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        return {"config": self.config(), "state_dict": state}

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Mapping[str, Any],
        weights: str | None = None,
        feature_extractor: FeatureExtractor | None = None,
    ) -> ComponentSegmenter:
        """Return the segmenter rebuilt from a :meth:`checkpoint` dict, in eval mode.

        Args:
            checkpoint: ``{"config": ..., "state_dict": ...}`` as written by :meth:`checkpoint`.
            weights: overrides the backbone weights spec of the config (e.g. a moved checkpoint path).
            feature_extractor: an already built backbone to reuse.
        """
        config = dict(checkpoint["config"])
        if weights is not None:
            config["weights"] = weights
        model = cls(**config, feature_extractor=feature_extractor)
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()


def predict_labels(
    model: ComponentSegmenter,
    images: Sequence[np.ndarray] | np.ndarray,
    image_size: int = 256,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> list[np.ndarray]:
    """Return one (image_size, image_size) uint8 argmax label map per uint8 RGB image (any size, resized first).

    The model is switched to eval mode and moved to ``device``.
    """
    if model.num_classes > 256:
        raise ValueError(f"{model.num_classes} classes do not fit a uint8 label map")
    model = model.to(device).eval()
    out: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(model_input(images[start : start + batch_size], image_size, device))
            out.extend(logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
    return out
