"""LGST inference (docs/method.md 5.5): raw anomaly maps, their quantile normalisation and the image scores.

:func:`anomaly_maps` / :func:`compute_maps` return the raw local and global maps; :class:`MapNormalizer` (fitted on
validation/good maps by :func:`fit_map_normalizer`) turns them into a summed, quantile-normalised map, and
:func:`lgst_scores` into its maximum; :func:`upsample_map` resizes a map to the original image resolution.
Nothing here imports the training code (:mod:`csad.lgst.train`, :mod:`csad.lgst.losses`).

>>> n = MapNormalizer(local_a=1.0, local_b=2.0, global_a=0.0, global_b=4.0)
>>> [round(float(v), 3) for v in n.combine(torch.tensor([2.0]), torch.tensor([4.0]))]
[0.2]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from csad.imaging import model_input
from csad.lgst.config import QUANTILE_MAX_ELEMENTS, LgstConfig
from csad.models.lgst import LgstModel
from csad.normalize import safe_spread

log = logging.getLogger(__name__)


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


@torch.no_grad()
def anomaly_maps(model: LgstModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the raw (local, global) maps, each (B, F, F), of an RGB [0, 1] (B, 3, S, S) batch.

    local = channel mean of (T - S_st)^2, global = channel mean of (A - S_ae)^2 (docs/method.md 5.5). The model runs in
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
        m_l, m_g = anomaly_maps(model, model_input(buf, model.image_size))
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

    def shifts_and_spreads(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Return ``((q_a, spread), (q_a, spread))`` of the local and global maps, spread = q_b - q_a, or 1 when
        that is at most 1e-3 (:func:`csad.normalize.safe_spread`); a map normalises to ``0.1 (M - q_a) / spread``."""
        return (
            (self.local_a, safe_spread(self.local_b - self.local_a)),
            (self.global_a, safe_spread(self.global_b - self.global_a)),
        )

    def normalize(self, local: torch.Tensor, global_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the normalised (local, global) maps."""
        (la, ls), (ga, gs) = self.shifts_and_spreads()
        return 0.1 * (local - la) / ls, 0.1 * (global_ - ga) / gs

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
