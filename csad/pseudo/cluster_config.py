"""The ``cluster`` params section, importable without scikit-learn: :class:`ClusterConfig`. The clustering itself is
:mod:`csad.pseudo.cluster`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ClusterConfig:
    """The ``cluster`` params section (one category's values); defaults are the paper's (docs/method.md 2.5).

    Attributes:
        proj_dim: seeded random projection N(0, 0.01^2) to this dimension before MeanShift; 0 = off.
        seed: seed of the projection and of the bandwidth estimate.
        bandwidth: MeanShift bandwidth in the (projected) descriptor units, or ``"auto"``:
            :func:`~csad.pseudo.cluster.auto_bandwidth` of this category's components at ``bandwidth_quantile``.
        bandwidth_quantile: quantile of ``"auto"``, in (0, 1].
        alpha: clusters with fewer than ``alpha`` x (number of train images) members are dropped
            (:func:`~csad.pseudo.cluster.alpha_min_members`).
        n_jobs: MeanShift worker processes (speed only).
        merge_max_std_ratio: after MeanShift, merge two kept clusters whose summed per-image area varies at most
            this many times as much as the steadier of the two (:func:`~csad.pseudo.cluster.merge_steady_clusters`);
            0 = off (the paper).
        merge_min_copresence: ... and that are both present in at least this share of the train images, in [0, 1].

    Raises:
        ValueError: a bandwidth that is neither ``"auto"`` nor a finite number > 0, a quantile outside (0, 1], a
            negative ``alpha``, ``proj_dim`` or ``merge_max_std_ratio``, ``merge_min_copresence`` outside [0, 1], or
            ``n_jobs`` of 0.
    """

    proj_dim: int = 512
    seed: int = 0
    bandwidth: float | str = 3.5
    bandwidth_quantile: float = 0.1
    alpha: float = 0.5
    n_jobs: int = 1
    merge_max_std_ratio: float = 0.0
    merge_min_copresence: float = 0.75

    def __post_init__(self) -> None:
        bandwidth = self.bandwidth
        numeric = isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool)
        if bandwidth != "auto" and not (numeric and 0 < bandwidth < math.inf):
            raise ValueError(f"bandwidth must be a finite number > 0 or 'auto', got {bandwidth!r}")
        if not 0 < self.bandwidth_quantile <= 1:
            raise ValueError(f"bandwidth_quantile must be in (0, 1], got {self.bandwidth_quantile}")
        if self.alpha < 0 or self.proj_dim < 0:
            raise ValueError(f"alpha and proj_dim must be >= 0, got {self.alpha} and {self.proj_dim}")
        if self.n_jobs == 0:
            raise ValueError("n_jobs must be >= 1 or -1 (all cores), got 0")
        if not 0 <= self.merge_max_std_ratio < math.inf:
            raise ValueError(f"merge_max_std_ratio must be a finite number >= 0, got {self.merge_max_std_ratio}")
        if not 0 <= self.merge_min_copresence <= 1:
            raise ValueError(f"merge_min_copresence must be in [0, 1], got {self.merge_min_copresence}")

    def bandwidth_for(self, features: np.ndarray) -> float:
        """Return the MeanShift bandwidth for the (N, D) ``features``: the set number, or
        :func:`~csad.pseudo.cluster.auto_bandwidth`."""
        if self.bandwidth == "auto":
            from csad.pseudo.cluster import auto_bandwidth

            return auto_bandwidth(features, self.bandwidth_quantile, self.proj_dim, self.seed)
        return float(self.bandwidth)
