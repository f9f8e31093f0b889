"""Training, inference and checkpoints of LGST (method.md 5.4 and 5.5; EfficientAD recipe, evaluation.md 2).

Training (:func:`train_lgst`) runs a FIXED schedule from :class:`LgstConfig` (no selection on the test set,
method.md 9.15), seeded: the same seed gives identical weights on CPU. Per iteration, on a batch ``x`` of train
images and its colour-jittered copy ``x'``::

    D = (T - S_st)^2;  L_hard = mean(D[D >= quantile(D, 0.999)])
    L_st = L_hard + mean(S_st(x_penalty)^2)          (penalty only with ``penalty_dir``)
    L_ae = mean((T' - A(x'))^2);  L_stae = mean((A(x') - S_ae(x'))^2)
    L = w_st L_st + w_ae L_ae + w_stae L_stae        (Adam over student + AE, StepLR)

``T`` are the channel-normalised teacher features. Those of the un-augmented train images are computed once per
training and cached (they never change); ``T'`` is computed every iteration. Inference (:func:`anomaly_maps`,
:class:`MapNormalizer`, :func:`lgst_scores`) turns the raw local / global maps into a summed, quantile-normalised
map and its maximum.

>>> d = torch.arange(1000, dtype=torch.float32)
>>> float(hard_loss(d, 0.999, 2**24))   # only the top element is >= quantile 998.001
999.0
>>> n = MapNormalizer(local_a=1.0, local_b=2.0, global_a=0.0, global_b=4.0)
>>> [round(float(v), 3) for v in n.combine(torch.tensor([2.0]), torch.tensor([4.0]))]
[0.2]
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as tvf
from tqdm import tqdm

from csad.data.loco import read_image
from csad.errors import CheckpointError, CsadError
from csad.io import atomic_path, list_dir
from csad.models.lgst import BackboneSpec, LgstModel, build_lgst_model
from csad.normalize import safe_spread, safe_spread_tensor
from csad.params import build_with_kwargs
from csad.runtime import resolve_device

log = logging.getLogger(__name__)

#: torch.quantile refuses inputs with more elements than this.
QUANTILE_MAX_ELEMENTS = 2**24
#: File suffixes (lower case) read from the penalty folder.
PENALTY_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Checkpoint format tag.
CHECKPOINT_FORMAT = "csad-lgst-1"
LOSS_NAMES = ("loss", "st", "hard", "penalty", "ae", "stae")


class PenaltyDataError(CsadError, FileNotFoundError):
    """The penalty image folder (``lgst.penalty_dir``) is missing, empty or holds an unreadable image."""


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
    device: str = "auto"  # auto | cpu | cuda[:i]
    num_threads: int = 0  # torch CPU threads during training; 0 = leave as is

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

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], param: str = "lgst") -> LgstConfig:
        """Return the config of ``values``; an unknown key raises ParamsError naming ``param.<key>``."""
        return build_with_kwargs(cls, dict(values), param)


def config_from_params(section: Mapping[str, Any], param: str = "lgst") -> tuple[LgstConfig, BackboneSpec]:
    """Return (config, backbone spec) of the params section ``param`` (its ``backbone`` sub-mapping: name, weights,
    seed; the rest are :class:`LgstConfig` fields).

    Raises:
        ParamsError: an unknown key or a bad value, named ``param.<key>``.
    """
    values = dict(section)
    backbone = dict(values.pop("backbone", {}) or {})
    backbone.setdefault("param", f"{param}.backbone.weights")
    spec = build_with_kwargs(BackboneSpec, backbone, f"{param}.backbone")
    return LgstConfig.from_dict(values, param), spec


# ---------------------------------------------------------------------------------------------------------------
# Data


def prepare_images(images: Iterable[np.ndarray], image_size: int) -> torch.Tensor:
    """Return the (N, 3, S, S) float32 [0, 1] batch of uint8 RGB images resized (bilinear, antialiased) to S.

    Raises:
        ValueError: an image is not (H, W, 3) uint8.
    """
    out = [_to_tensor(img, image_size) for img in images]
    if not out:
        return torch.empty(0, 3, image_size, image_size)
    return torch.stack(out)


def _to_tensor(img: np.ndarray, image_size: int) -> torch.Tensor:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x[None], size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
        x = x[0].clamp_(0.0, 1.0)
    return x


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Return ``x`` ((B, 3, H, W) in [0, 1]) with, per image, one of brightness / contrast / saturation (chosen
    uniformly) scaled by a factor drawn from U(1 - strength, 1 + strength), as the released ``aug_image``.

    The released code jitters the PIL image before the resize to 256; here the resized image is jittered (the
    three operations are per pixel, or use the image mean, so the order changes the result only marginally).
    """
    ops = (tvf.adjust_brightness, tvf.adjust_contrast, tvf.adjust_saturation)
    out = []
    for img in x:
        choice = int(torch.randint(3, (1,), generator=generator))
        factor = 1.0 + strength * (2.0 * float(torch.rand(1, generator=generator)) - 1.0)
        out.append(ops[choice](img, factor))
    return torch.stack(out)


class PenaltyImages:
    """The penalty images of ``penalty_dir`` (searched recursively, sorted, hidden and system files skipped),
    drawn one at a time and decoded by :func:`csad.data.loco.read_image` (which refuses what it cannot decode).

    Each draw is transformed like EfficientAD's ImageNet images: the short side resized to ``2 * image_size``,
    grayscale (3 channels) with probability 0.3, centre crop ``image_size``.

    Raises:
        PenaltyDataError: the folder is missing or holds no image (the message names ``param``).
    """

    def __init__(self, folder: Path | str, image_size: int, param: str = "lgst.penalty_dir") -> None:
        self.folder = Path(folder)
        self.image_size = image_size
        self.param = param
        if not self.folder.is_dir():
            raise PenaltyDataError(
                f"{param}: penalty image folder {self.folder} not found; point it to a folder of natural images "
                "(the paper uses Tiny-ImageNet train) or set it to null to train without the penalty"
            )
        # hidden/system entries (.DS_Store, ._x.jpg, .ipynb_checkpoints/, __MACOSX/) are never penalty images
        self.paths = list_dir(self.folder, kind="file", suffixes=PENALTY_SUFFIXES, recursive=True)
        if not self.paths:
            raise PenaltyDataError(
                f"{param}: penalty image folder {self.folder} holds no image ({', '.join(PENALTY_SUFFIXES)}); "
                "fill it or set it to null to train without the penalty"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """Return one random transformed penalty image, (1, 3, S, S) float32 in [0, 1]."""
        path = self.paths[int(torch.randint(len(self.paths), (1,), generator=generator))]
        try:
            img = read_image(path)
        except CsadError as err:
            raise PenaltyDataError(f"{self.param}: {err}") from err
        x = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        x = tvf.resize(x, [2 * self.image_size], antialias=True).clamp_(0.0, 1.0)
        if float(torch.rand(1, generator=generator)) < 0.3:
            x = tvf.rgb_to_grayscale(x, num_output_channels=3)
        return tvf.center_crop(x, [self.image_size, self.image_size])[None]


def _batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield index batches forever from a stream of seeded random permutations of ``range(n)``."""
    buf: list[int] = []
    while True:
        while len(buf) < batch_size:
            buf += torch.randperm(n, generator=generator).tolist()
        yield torch.tensor(buf[:batch_size])
        buf = buf[batch_size:]


# ---------------------------------------------------------------------------------------------------------------
# Teacher statistics and losses


def teacher_statistics(features: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-channel (mean, std), each (C,) float32, of teacher features (N, C, H, W) (or a list of batches).

    Exact population statistics over all images and pixels, accumulated in float64 (two passes). The released
    code averages batch means and batch mean squared deviations (batch 2); with equal-sized batches this is the
    same number, otherwise it differs only by the weighting of the last short batch.
    """
    chunks = list(features.split(8)) if isinstance(features, torch.Tensor) else list(features)
    count = sum(c.shape[0] * c.shape[2] * c.shape[3] for c in chunks)
    if count == 0:
        raise ValueError("teacher_statistics needs at least one feature map")
    mean = sum(c.double().sum(dim=(0, 2, 3)) for c in chunks) / count
    var = sum((c.double() - mean.view(1, -1, 1, 1)).square().sum(dim=(0, 2, 3)) for c in chunks) / count
    return mean.float(), var.sqrt().float()


def subsample_quantile(
    values: torch.Tensor, q: float, max_elements: int = QUANTILE_MAX_ELEMENTS, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return the ``q`` quantile (linear interpolation) of ``values``' elements as a 0-d tensor.

    With more than ``max_elements`` elements, the quantile is taken over ``max_elements`` elements drawn at random
    (with replacement, from the CPU ``generator``), since torch.quantile refuses more than 2**24 elements.
    """
    flat = values.detach().reshape(-1)
    if flat.numel() > max_elements:
        idx = torch.randint(flat.numel(), (max_elements,), generator=generator)
        flat = flat[idx.to(flat.device)]
    return torch.quantile(flat.float(), q)


def hard_loss(
    d: torch.Tensor, q: float, max_elements: int = QUANTILE_MAX_ELEMENTS, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return ``mean(d[d >= quantile(d, q)])``, the hard-feature loss of the squared differences ``d``."""
    threshold = subsample_quantile(d, q, max_elements, generator)
    return d[d >= threshold].mean()


@dataclass
class LgstBatch:
    """One training batch: images normalised for the backbone (:meth:`LgstModel.normalize`) and their
    channel-normalised teacher targets."""

    x: torch.Tensor  # (B, 3, S, S)
    t: torch.Tensor  # (B, C, F, F)
    x_aug: torch.Tensor  # colour-jittered x
    t_aug: torch.Tensor  # teacher targets of x_aug
    x_penalty: torch.Tensor | None = None  # (P, 3, S, S) penalty images, or None


def lgst_losses(
    model: LgstModel, batch: LgstBatch, config: LgstConfig, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Return the 0-d losses {loss, st, hard, penalty, ae, stae} of ``batch`` (``loss`` is the weighted total).

    The student runs once on the concatenation of x, x' and the penalty images (convolutions are per image, so
    this equals separate calls).
    """
    b, ba = batch.x.shape[0], batch.x_aug.shape[0]
    parts = [batch.x, batch.x_aug] + ([batch.x_penalty] if batch.x_penalty is not None else [])
    s_st, s_ae = model.student(torch.cat(parts))
    d = (batch.t - s_st[:b]).pow(2)
    hard = hard_loss(d, config.hard_quantile, config.quantile_subsample, generator)
    penalty = s_st[b + ba :].pow(2).mean() if batch.x_penalty is not None else hard.new_zeros(())
    a = model.autoencoder(batch.x_aug)
    ae = (batch.t_aug - a).pow(2).mean()
    stae = (a - s_ae[b : b + ba]).pow(2).mean()
    w = config.loss_weights
    st = hard + penalty
    total = w["st"] * st + w["ae"] * ae + w["stae"] * stae
    return {"loss": total, "st": st, "hard": hard, "penalty": penalty, "ae": ae, "stae": stae}


# ---------------------------------------------------------------------------------------------------------------
# Training


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    if n <= 0:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@torch.no_grad()
def _teacher_targets(model: LgstModel, x01: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Return the raw teacher features of all of ``x01`` (on the model's device), computed batch by batch."""
    out: torch.Tensor | None = None
    for start in range(0, len(x01), batch_size):
        feats = model.teacher_raw(model.normalize(x01[start : start + batch_size].to(model.device)))
        if out is None:  # preallocated: no second copy of a cache that can reach GBs at paper sizes
            out = feats.new_empty((len(x01), *feats.shape[1:]))
        out[start : start + len(feats)] = feats
    assert out is not None
    return out


def train_lgst(
    images: Iterable[np.ndarray],
    config: LgstConfig,
    backbone: BackboneSpec,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> LgstModel:
    """Return the LGST model trained on ``images`` (uint8 RGB train/good images) with ``config``, in eval mode.

    Args:
        images: the train images, any sizes (resized to ``config.image_size``).
        config: the settings; ``seed`` fixes every random choice (init, projection, batches, augmentation,
            penalty draws, quantile subsampling, dropout). The global RNG state is restored afterwards.
        backbone: the frozen teacher backbone.
        callback: called after every iteration with (iterations done, {loss names: float, "lr": float}).
        progress: show a tqdm bar.

    Raises:
        PenaltyDataError: ``penalty_dir`` is set but missing or empty.
        CsadError: no train image.
        CheckpointError: the backbone weights are missing or unusable.
    """
    device = resolve_device(config.device)
    penalty = PenaltyImages(config.penalty_dir, config.image_size) if config.penalty_dir is not None else None
    x01 = prepare_images(images, config.image_size)
    if len(x01) == 0:
        raise CsadError("LGST training needs at least one train image; the train/good folder is empty")
    rng_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with _torch_threads(config.num_threads), torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        model = build_lgst_model(
            backbone,
            config.image_size,
            config.feat_size,
            config.channels,
            config.student_widths,
            config.ae_base_dim,
            config.seed,
        ).to(device)
        targets = _teacher_targets(model, x01, config.feature_batch_size)
        mean, std = teacher_statistics(targets)
        model.teacher_mean.copy_(mean.view(1, -1, 1, 1))
        model.teacher_std.copy_(safe_spread_tensor(std).view(1, -1, 1, 1))  # a constant channel is only shifted
        targets.sub_(model.teacher_mean).div_(model.teacher_std)
        x01 = x01.to(device)
        log.info(
            "LGST: %d train images, %d iterations, batch %d, device %s, teacher cache %.0f MiB, penalty %s",
            len(x01),
            config.iterations,
            config.batch_size,
            device,
            targets.numel() * targets.element_size() / 2**20,
            f"{len(penalty)} images" if penalty else "off",
        )
        _fit(model, x01, targets, penalty, config, callback, progress)
    model.eval()
    return model


def _fit(
    model: LgstModel,
    x01: torch.Tensor,
    targets: torch.Tensor,
    penalty: PenaltyImages | None,
    config: LgstConfig,
    callback: Callable[[int, dict[str, float]], None] | None,
    progress: bool,
) -> None:
    gen = torch.Generator().manual_seed(config.seed)
    params = list(model.student.parameters()) + list(model.autoencoder.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    step = max(1, int(config.lr_step_fraction * config.iterations))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=config.lr_gamma)
    batches = _batch_indices(len(x01), config.batch_size, gen)
    model.train()
    bar = tqdm(range(config.iterations), desc="lgst", unit="it", disable=not progress, mininterval=2.0)
    for it in bar:
        idx = next(batches).to(x01.device)
        clean = x01[idx]
        x_aug = model.normalize(color_jitter(clean, config.ae_jitter, gen))
        x_pen = model.normalize(penalty.sample(gen).to(x01.device)) if penalty is not None else None
        batch = LgstBatch(model.normalize(clean), targets[idx], x_aug, model.teacher(x_aug), x_pen)
        losses = lgst_losses(model, batch, config, gen)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if callback is not None or (progress and it % 50 == 0):
            values = dict(zip(LOSS_NAMES, torch.stack([losses[k].detach() for k in LOSS_NAMES]).tolist(), strict=True))
            if not all(math.isfinite(v) for v in values.values()):
                raise FloatingPointError(f"LGST loss is not finite at iteration {it + 1}: {values}")
            bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
            if callback is not None:
                callback(it + 1, {**values, "lr": lr})


# ---------------------------------------------------------------------------------------------------------------
# Inference


@torch.no_grad()
def anomaly_maps(model: LgstModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the raw (local, global) maps, each (B, F, F), of an RGB [0, 1] (B, 3, S, S) batch.

    local = channel mean of (T - S_st)^2, global = channel mean of (A - S_ae)^2 (method.md 5.5). The model runs in
    eval mode (AE dropout off); its previous mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        return model(images.to(model.device))
    finally:
        model.train(was_training)


def compute_maps(
    model: LgstModel, images: Iterable[np.ndarray], batch_size: int = 8, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the raw (local, global) maps (N, F, F) on CPU of uint8 RGB ``images``, computed in batches."""
    local: list[torch.Tensor] = []
    glob: list[torch.Tensor] = []
    buf: list[np.ndarray] = []

    def flush() -> None:
        m_l, m_g = anomaly_maps(model, prepare_images(buf, model.image_size))
        local.append(m_l.cpu())
        glob.append(m_g.cpu())
        buf.clear()

    for img in tqdm(images, desc="lgst maps", unit="img", disable=not progress):
        buf.append(img)
        if len(buf) == batch_size:
            flush()
    if buf:
        flush()
    if not local:
        empty = torch.empty(0, model.feat_size, model.feat_size)
        return empty, empty.clone()
    return torch.cat(local), torch.cat(glob)


def _normalize_map(m: torch.Tensor, qa: float, qb: float) -> torch.Tensor:
    return 0.1 * (m - qa) / safe_spread(qb - qa)


@dataclass
class MapNormalizer:
    """Quantile normalisation of the local and global maps: ``0.1 (M - q_a) / (q_b - q_a)`` per map type, with
    q_a, q_b the ``qa`` / ``qb`` quantiles of the validation maps (so q_a -> 0, q_b -> 0.1). A map type with
    ``q_b - q_a <= 1e-3`` is only shifted (the range counts as 1, :func:`csad.normalize.safe_spread`; a warning
    says so)."""

    local_a: float
    local_b: float
    global_a: float
    global_b: float
    qa: float = 0.9
    qb: float = 0.995

    def __post_init__(self) -> None:
        for name, a, b in (("local", self.local_a, self.local_b), ("global", self.global_a, self.global_b)):
            if safe_spread(b - a) != b - a:
                log.warning(
                    "LGST %s map quantiles q%.3g=%.4g and q%.3g=%.4g are (nearly) equal; the %s map is only "
                    "shifted, not scaled (validation maps are constant?)",
                    name,
                    self.qa,
                    a,
                    self.qb,
                    b,
                    name,
                )

    @classmethod
    def fit(
        cls,
        local_maps: torch.Tensor,
        global_maps: torch.Tensor,
        qa: float = 0.9,
        qb: float = 0.995,
        max_elements: int = QUANTILE_MAX_ELEMENTS,
        seed: int = 0,
    ) -> MapNormalizer:
        """Return the normaliser fitted on raw validation maps (any shape; all pixels of all images pooled)."""
        if local_maps.numel() == 0 or global_maps.numel() == 0:
            raise ValueError("MapNormalizer.fit needs at least one validation map")
        gen = torch.Generator().manual_seed(seed)
        la, lb = (float(subsample_quantile(local_maps, q, max_elements, gen)) for q in (qa, qb))
        ga, gb = (float(subsample_quantile(global_maps, q, max_elements, gen)) for q in (qa, qb))
        return cls(la, lb, ga, gb, qa, qb)

    def normalize(self, local: torch.Tensor, global_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the normalised (local, global) maps."""
        return (
            _normalize_map(local, self.local_a, self.local_b),
            _normalize_map(global_, self.global_a, self.global_b),
        )

    def combine(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        """Return the sum of the normalised local and global maps (equal weights, as released)."""
        n_l, n_g = self.normalize(local, global_)
        return n_l + n_g

    def to_tensor(self) -> torch.Tensor:
        """Return ``[local_a, local_b, global_a, global_b, qa, qb]`` as a float64 tensor (for checkpoints)."""
        values = [self.local_a, self.local_b, self.global_a, self.global_b, self.qa, self.qb]
        return torch.tensor(values, dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> MapNormalizer:
        """Return the normaliser stored by :meth:`to_tensor`."""
        return cls(*(float(v) for v in values.tolist()))


def fit_map_normalizer(
    model: LgstModel, images: Iterable[np.ndarray], config: LgstConfig, progress: bool = False
) -> MapNormalizer:
    """Return the :class:`MapNormalizer` fitted on the maps of ``images`` (validation/good) at config.map_qa/qb."""
    local, glob = compute_maps(model, images, config.feature_batch_size, progress)
    return MapNormalizer.fit(local, glob, config.map_qa, config.map_qb, config.quantile_subsample, config.seed)


def lgst_scores(
    model: LgstModel,
    normalizer: MapNormalizer,
    images: Iterable[np.ndarray],
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores (N,), combined maps (N, F, F)), float32, of uint8 RGB ``images``.

    The combined map is the sum of the normalised local and global maps; the score is its maximum after bilinear
    upsampling to the network input size, as released CSAD.py does (the fused export takes the max of the F x F
    map; the two differ only by interpolation).
    """
    local, glob = compute_maps(model, images, batch_size, progress)
    combined = normalizer.combine(local, glob)
    if combined.shape[0] == 0:
        return np.zeros(0, np.float32), combined.numpy().astype(np.float32)
    size = (model.image_size, model.image_size)
    up = F.interpolate(combined[:, None], size=size, mode="bilinear", align_corners=False)
    scores = up.amax(dim=(1, 2, 3))
    return scores.numpy().astype(np.float32), combined.numpy().astype(np.float32)


def upsample_map(anomaly_map: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Return ``anomaly_map`` ((F, F) or (N, F, F)) bilinearly resized (align_corners False) to ``size`` = (H, W),
    float32, e.g. to the original image resolution for the official .tiff maps."""
    m = torch.as_tensor(np.asarray(anomaly_map, dtype=np.float32))
    single = m.ndim == 2
    m = m[None, None] if single else m[:, None]
    up = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
    return (up[0, 0] if single else up[:, 0]).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def save_lgst(path: Path | str, model: LgstModel, normalizer: MapNormalizer, config: LgstConfig) -> None:
    """Write the LGST checkpoint ``path`` atomically: one dict of tensors and JSON strings (no pickled modules).

    Holds the config, the backbone spec, every non-backbone tensor of the model (teacher projection weight AND
    bias, teacher mean/std, student, AE), the map normaliser and a fingerprint of the backbone weights.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(config.to_dict()),
        "backbone": json.dumps(asdict(model.spec)),
        "state": {k: v.detach().cpu().clone() for k, v in model.lgst_state().items()},
        "normalizer": normalizer.to_tensor(),
        "backbone_fingerprint": model.backbone_fingerprint(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_lgst(path: Path | str, device: str = "cpu") -> tuple[LgstModel, MapNormalizer, LgstConfig]:
    """Return (model in eval mode on ``device``, normaliser, config) from the checkpoint written by
    :func:`save_lgst`; the backbone is rebuilt from the stored spec and checked against the fingerprint.

    Raises:
        CheckpointError: the file is missing, unreadable, of another format, or the rebuilt backbone differs
            from the one the model was trained with.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"LGST checkpoint {path} not found; run the train_lgst stage first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read LGST checkpoint {path}: {type(err).__name__}: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an LGST checkpoint ({CHECKPOINT_FORMAT}); retrain LGST")
    known = {f.name for f in fields(LgstConfig)}
    config = LgstConfig(**{k: v for k, v in json.loads(payload["config"]).items() if k in known})
    spec = BackboneSpec(**json.loads(payload["backbone"]))
    model = build_lgst_model(
        spec,
        config.image_size,
        config.feat_size,
        config.channels,
        config.student_widths,
        config.ae_base_dim,
        config.seed,
    )
    try:
        model.load_lgst_state(payload["state"])
    except RuntimeError as err:
        raise CheckpointError(f"LGST checkpoint {path} does not fit its config: {err}") from err
    stored = payload["backbone_fingerprint"]
    current = model.backbone_fingerprint()
    if stored.shape != current.shape or not torch.allclose(stored, current, rtol=1e-6, atol=1e-6):
        raise CheckpointError(
            f"LGST checkpoint {path}: the backbone {spec.name} ({spec.param} = {spec.weights}) is not the one it "
            "was trained with; restore those weights or retrain LGST"
        )
    model.to(resolve_device(device)).eval()
    return model, MapNormalizer.from_tensor(payload["normalizer"]), config
