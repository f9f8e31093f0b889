"""The networks of LGST (Local-Global Student-Teacher, docs/method.md section 5): teacher head, local student,
autoencoder ("global student"), and :class:`LgstModel`, which bundles them with the frozen backbone.

:class:`LgstModel` takes RGB batches in [0, 1] of side ``image_size``; it normalises them once as its backbone's
weights expect (:meth:`csad.models.backbone.FeatureExtractor.normalize`) and feeds that normalised batch to the
teacher, the student and the autoencoder, which output ``(B, channels, feat_size, feat_size)`` maps. Paper sizes:
image 256, feat 64, 512 channels, student widths 256/512/512, AE base dim 64.

>>> student = LocalStudent(widths=(8, 16, 16), out_channels=8, feat_size=32)
>>> st, ae = student(torch.zeros(1, 3, 128, 128))
>>> tuple(st.shape), tuple(ae.shape)
((1, 8, 32, 32), (1, 8, 32, 32))
>>> receptive_field(student)
33
>>> decoder_sizes(64)
(3, 8, 15, 32, 63, 127)
>>> tuple(AutoEncoder(base_dim=8, out_channels=4, out_size=32, image_size=128)(torch.zeros(1, 3, 128, 128)).shape)
(1, 4, 32, 32)
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from csad.models.backbone import FeatureExtractor, feature_channels
from csad.models.ops import resize_bilinear
from csad.models.spec import BackboneSpec
from csad.normalize import safe_spread_tensor

log = logging.getLogger(__name__)

#: Backbone strides the teacher reads (paper section 3.4: WRN50-2 layer2 + layer3 = strides 8 + 16).
TEACHER_STRIDES: tuple[int, int] = (8, 16)
#: Decoder resize targets of the released AutoEncoder (for out_size 64; EfficientAD uses them for 56 too).
PAPER_DECODER_SIZES: tuple[int, ...] = (3, 8, 15, 32, 63, 127)


class TeacherHead(nn.Module):
    """Maps the backbone's stride-8 + stride-16 features to the teacher output ``(B, channels, feat_size, feat_size)``.

    Both stages are resized bilinearly (align_corners False) to ``feat_size``, concatenated, smoothed by
    ``AvgPool2d(3, 1, 1)`` and projected by a FROZEN random 1x1 convolution (PyTorch's default init drawn from a
    ``torch.Generator`` seeded with ``seed``; bias included). The projection is never trained but is part of the
    state dict, bias too (the released export dropped the bias, docs/method.md 9.20).
    """

    def __init__(self, in_channels: int, channels: int = 512, feat_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.feat_size = feat_size
        self.pool = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.proj = nn.Conv2d(in_channels, channels, kernel_size=1)
        gen = torch.Generator().manual_seed(seed)
        # Same distribution as nn.Conv2d.reset_parameters, but from our generator (the global RNG is untouched).
        nn.init.kaiming_uniform_(self.proj.weight, a=5**0.5, generator=gen)
        bound = 1.0 / in_channels**0.5
        nn.init.uniform_(self.proj.bias, -bound, bound, generator=gen)
        self.proj.requires_grad_(False)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return the projected teacher features of the backbone outputs ``{8: ..., 16: ...}``."""
        size = (self.feat_size, self.feat_size)
        maps = [F.interpolate(features[k], size=size, mode="bilinear", align_corners=False) for k in TEACHER_STRIDES]
        return self.proj(self.pool(torch.cat(maps, dim=1)))


class LocalStudent(nn.Module):
    """Returns ``(S_st, S_ae)``, the two heads of the PDN-M-like local student (docs/method.md 5.2).

    Trunk (p = 1 with padding): Conv(3->w1, k4, pad 3p) ReLU AvgPool(2, 2, pad p); Conv(w1->w2, k4, pad 3p) ReLU
    AvgPool(2, 2, pad p); Conv(w2->w3, k1) ReLU; Conv(w3->w3, k3, pad p) ReLU; Conv(w3->w3, k4) ReLU; bilinear
    resize to ``feat_size`` (a no-op at image 256 / feat 64 with padding); then two 1x1 heads ``conv_st`` and
    ``conv_ae`` (w3 -> out_channels), without activation. Receptive field 33 x 33. Paper: widths (256, 512, 512),
    out 512 (the released conv5 outputs ``out_dim``, equal to w3 there; here conv5 keeps w3 and the heads map to
    ``out_channels``, identical at paper sizes).
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (256, 512, 512),
        out_channels: int = 512,
        feat_size: int = 64,
        padding: bool = True,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        p = 1 if padding else 0
        self.feat_size = feat_size
        self.trunk = nn.Sequential(
            nn.Conv2d(3, w1, kernel_size=4, padding=3 * p),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=2, stride=2, padding=p),
            nn.Conv2d(w1, w2, kernel_size=4, padding=3 * p),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=2, stride=2, padding=p),
            nn.Conv2d(w2, w3, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w3, w3, kernel_size=3, padding=p),
            nn.ReLU(inplace=True),
            nn.Conv2d(w3, w3, kernel_size=4),
            nn.ReLU(inplace=True),
        )
        self.conv_st = nn.Conv2d(w3, out_channels, kernel_size=1)
        self.conv_ae = nn.Conv2d(w3, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(S_st, S_ae)``, each ``(B, out_channels, feat_size, feat_size)``."""
        h = self.trunk(x)
        if h.shape[-2:] != (self.feat_size, self.feat_size):
            h = resize_bilinear(h, (self.feat_size, self.feat_size))
        return self.conv_st(h), self.conv_ae(h)


def decoder_sizes(out_size: int) -> tuple[int, ...]:
    """Return the six resize targets of the AE decoder for ``out_size``.

    The released AE (out_size 64) resizes to 3, 8, 15, 32, 63, 127 (each conv adds a pixel: 4, 9, 16, 33, 64, 128)
    and finally to ``out_size``. For another ``out_size`` the sizes are scaled by ``out_size / 64`` (rounded half
    up, at least 1 and non-decreasing), so the last stage stays at about twice the output side: 32 gives
    2, 4, 8, 16, 32, 64. Sizes 56..71 keep the released values (EfficientAD uses them for 56).
    """
    if out_size < 1:
        raise ValueError(f"AE out_size must be positive, got {out_size}")
    if 56 <= out_size <= 71:
        return PAPER_DECODER_SIZES
    sizes: list[int] = []
    for s in PAPER_DECODER_SIZES:
        sizes.append(max(1, int(s * out_size / 64 + 0.5), sizes[-1] if sizes else 1))
    return tuple(sizes)


class AutoEncoder(nn.Module):
    """Returns ``A``, the EfficientAD autoencoder's ``(B, out_channels, out_size, out_size)`` reconstruction of the
    teacher features (the global student, docs/method.md 5.3).

    Encoder: five Conv(k4, s2, p1) + ReLU (3 -> b/2 -> b/2 -> b -> b -> b) and a Conv(b -> b) whose kernel is the
    remaining side (8 at image 256: ``image_size // 32``) giving a 1x1 code without activation. Decoder: for each
    of :func:`decoder_sizes` bilinear resize -> Conv(k4, p2) -> ReLU -> Dropout(0.2); then resize to ``out_size``
    -> Conv(k3, p1) -> ReLU -> Conv(b -> out_channels, k3, p1).
    """

    def __init__(self, base_dim: int = 64, out_channels: int = 512, out_size: int = 64, image_size: int = 256) -> None:
        super().__init__()
        if image_size % 32 or image_size < 32:
            raise ValueError(f"AE image_size must be a positive multiple of 32, got {image_size}")
        b, h = base_dim, base_dim // 2
        self.out_size = out_size
        self.sizes = decoder_sizes(out_size)
        enc: list[nn.Module] = []
        for cin, cout in ((3, h), (h, h), (h, b), (b, b), (b, b)):
            enc += [nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1), nn.ReLU(inplace=True)]
        enc.append(nn.Conv2d(b, b, kernel_size=image_size // 32))
        self.encoder = nn.Sequential(*enc)
        self.decoder_convs = nn.ModuleList(nn.Conv2d(b, b, kernel_size=4, padding=2) for _ in self.sizes)
        self.dropout = nn.Dropout(p=0.2)
        self.head = nn.Sequential(
            nn.Conv2d(b, b, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(b, out_channels, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction ``(B, out_channels, out_size, out_size)`` of the image batch ``x``."""
        h = self.encoder(x)
        for size, conv in zip(self.sizes, self.decoder_convs, strict=True):
            h = resize_bilinear(h, (size, size))
            h = self.dropout(F.relu(conv(h)))
        h = resize_bilinear(h, (self.out_size, self.out_size))
        return self.head(h)


def receptive_field(student: LocalStudent) -> int:
    """Return the side of the receptive field of one output pixel of ``student``'s trunk, measured numerically.

    A float64 copy gets every conv weight 1 / fan_in and bias 0 (so every ReLU is active on a positive input);
    the gradient of the centre output pixel with respect to an all-ones input is non-zero exactly on the
    receptive field, whose height is returned.
    """
    trunk = copy.deepcopy(student.trunk).double().cpu()
    for m in trunk.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]))
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64).expand(1, 3, 97, 97).clone().requires_grad_(True)
    out = trunk(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[0, :, i, j].sum().backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad[0].abs().sum(dim=(0, 2)) > 0)
    return int(rows.max() - rows.min() + 1)


def lgst_anomaly_maps(
    teacher: torch.Tensor, student_st: torch.Tensor, student_ae: torch.Tensor, autoencoder: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the raw (local, global) anomaly maps, each ``(B, F, F)``, of the network outputs ``(B, C, F, F)``
    (paper section 3.4; EfficientAD's map definitions): local = channel mean of ``(T - S_st)^2``, global = channel
    mean of ``(A - S_ae)^2``, with ``T`` the channel-normalised teacher output. Used by :class:`LgstModel` and by
    the deployed detector (:class:`csad.detector.model.CsadDetector`)."""
    return (teacher - student_st).pow(2).mean(dim=1), (autoencoder - student_ae).pow(2).mean(dim=1)


class LgstModel(nn.Module):
    """The trained LGST: frozen backbone + teacher head + channel statistics, local student and autoencoder.

    :meth:`forward` returns the raw ``(local, global)`` anomaly maps ``(B, feat_size, feat_size)`` of an RGB
    [0, 1] batch (paper section 3.4; EfficientAD's map definitions): local = channel mean of ``(T - S_st)^2``,
    global = channel mean of ``(A - S_ae)^2``, with ``T`` the channel-normalised teacher output. The teacher, the
    student and the autoencoder all see the batch normalised by the backbone's own input normalisation
    (:meth:`normalize`); :meth:`teacher_raw` and :meth:`teacher` take that normalised batch. The backbone is not
    part of :meth:`lgst_state` (it is rebuilt from :attr:`spec`).
    """

    def __init__(
        self,
        spec: BackboneSpec,
        backbone: FeatureExtractor,
        head: TeacherHead,
        student: LocalStudent,
        autoencoder: AutoEncoder,
        image_size: int,
        feat_size: int,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.head = head
        self.student = student
        self.autoencoder = autoencoder
        self.image_size = image_size
        self.feat_size = feat_size
        channels = head.proj.out_channels
        self.register_buffer("teacher_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, channels, 1, 1))

    @property
    def device(self) -> torch.device:
        """Return the device of the model's tensors."""
        return self.teacher_mean.device

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Return the RGB [0, 1] batch ``x01`` normalised as the backbone's weights expect (the networks' input)."""
        return self.backbone.normalize(x01)

    @torch.no_grad()
    def teacher_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Return the un-normalised teacher output ``(B, channels, feat_size, feat_size)`` of the
        :meth:`normalize`-d batch ``x``."""
        return self.head(self.backbone.forward_normalized(x))

    @torch.no_grad()
    def teacher(self, x: torch.Tensor) -> torch.Tensor:
        """Return the channel-normalised teacher output ``(T - mean) / std`` of the :meth:`normalize`-d batch."""
        return (self.teacher_raw(x) - self.teacher_mean) / self.teacher_std

    @torch.no_grad()
    def set_teacher_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the teacher's channel statistics: copy ``mean`` (C,) and ``std`` (C,) into the ``teacher_mean`` and
        ``teacher_std`` buffers, each ``(1, C, 1, 1)``, which :meth:`teacher` normalises with.

        ``std`` goes through :func:`csad.normalize.safe_spread_tensor` first: a channel whose std is at most 1e-3
        (or not finite) gets std 1, so a constant channel is only shifted, not blown up.

        Raises:
            ValueError: ``mean`` or ``std`` is not of shape (C,), C the teacher's channels.
        """
        channels = self.teacher_mean.shape[1]
        for name, value in (("mean", mean), ("std", std)):
            if tuple(value.shape) != (channels,):
                raise ValueError(f"teacher {name} must have shape ({channels},), got {tuple(value.shape)}")
        self.teacher_mean.copy_(mean.view(1, -1, 1, 1))
        self.teacher_std.copy_(safe_spread_tensor(std).view(1, -1, 1, 1))

    @torch.no_grad()
    def normalize_teacher_(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``features`` (N, C, F, F), raw teacher outputs (:meth:`teacher_raw`), channel-normalised IN PLACE
        as :meth:`teacher` does: ``(T - mean) / std`` (no copy: a cache of teacher targets can reach GBs)."""
        return features.sub_(self.teacher_mean.to(features.device)).div_(self.teacher_std.to(features.device))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Return the parameters LGST training optimises: the local student's, then the autoencoder's (in
        ``parameters()`` order; conv weights ``(out, in, k, k)`` and biases ``(out,)``). The backbone and the
        teacher projection are frozen and not included."""
        return list(self.student.parameters()) + list(self.autoencoder.parameters())

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the raw (local, global) anomaly maps, each ``(B, feat_size, feat_size)``, of the RGB [0, 1]
        batch ``x01`` (B, 3, image_size, image_size)."""
        x = self.normalize(x01)
        t = self.teacher(x)
        s_st, s_ae = self.student(x)
        return lgst_anomaly_maps(t, s_st, s_ae, self.autoencoder(x))

    def lgst_state(self) -> dict[str, torch.Tensor]:
        """Return the state dict without the backbone's tensors (head incl. projection bias, stats, students)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_lgst_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a :meth:`lgst_state` dict; every non-backbone tensor must be present and no other one.

        Raises:
            RuntimeError: missing or unexpected keys, or shape mismatches.
        """
        missing, unexpected = self.load_state_dict(dict(state), strict=False)
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            raise RuntimeError(f"LGST state: missing keys {missing}, unexpected keys {list(unexpected)}")

    def backbone_fingerprint(self) -> torch.Tensor:
        """Return a float64 ``(n, 2)`` tensor of the sum and sum of squares of every backbone tensor (for checks)."""
        rows = [
            torch.stack([v.detach().double().sum(), v.detach().double().square().sum()]).cpu()
            for v in self.backbone.state_dict().values()
        ]
        return torch.stack(rows)


def build_lgst_model(
    spec: BackboneSpec,
    image_size: int = 256,
    feat_size: int = 64,
    channels: int = 512,
    student_widths: tuple[int, int, int] = (256, 512, 512),
    ae_base_dim: int = 64,
    seed: int = 0,
) -> LgstModel:
    """Return a fresh :class:`LgstModel` (on CPU): backbone from ``spec``, projection and networks from ``seed``.

    The global torch RNG is left untouched: the student and AE are initialised inside a forked RNG seeded with
    ``seed`` (+1), the projection from its own generator.
    """
    backbone = spec.build(TEACHER_STRIDES)
    in_channels = sum(feature_channels(spec.name, stride) for stride in TEACHER_STRIDES)
    head = TeacherHead(in_channels, channels, feat_size, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        student = LocalStudent(tuple(student_widths), channels, feat_size)  # type: ignore[arg-type]
        autoencoder = AutoEncoder(ae_base_dim, channels, feat_size, image_size)
    return LgstModel(spec, backbone, head, student, autoencoder, image_size, feat_size)
