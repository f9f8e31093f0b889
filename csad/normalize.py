"""The one rule every normaliser of the project applies to its spread (a std or a quantile range).

A spread at or below :data:`SPREAD_FLOOR` (1e-3) is a constant or rounding-error spread, not a scale: dividing by
it would blow a difference of 1e-6 up to millions and let one branch swamp the fused score. Such a spread is
replaced by 1 (the released CSAD code does this for its trimmed z-normalisation: ``std <= 1e-3`` becomes 1), so the
values are only shifted. Used by :class:`csad.scoring.patch_hist.TrimmedNormalizer` (Patch Histogram and score
fusion), :class:`csad.lgst.maps.MapNormalizer` (LGST map quantiles) and the LGST teacher's channel statistics.

>>> safe_spread(1.4e-17), safe_spread(0.5)
(1.0, 0.5)
"""

from __future__ import annotations

import torch

#: Spreads at or below this are replaced by 1.
SPREAD_FLOOR = 1e-3


def safe_spread(spread: float) -> float:
    """Return ``spread``, or 1.0 when it is at most :data:`SPREAD_FLOOR` (or not finite)."""
    spread = float(spread)
    return spread if spread > SPREAD_FLOOR and spread < float("inf") else 1.0


def safe_spread_tensor(spread: torch.Tensor) -> torch.Tensor:
    """Return ``spread`` (any shape) with every entry at most :data:`SPREAD_FLOOR` (or not finite) replaced by 1."""
    bad = ~torch.isfinite(spread) | (spread <= SPREAD_FLOOR)
    return torch.where(bad, torch.ones_like(spread), spread)
