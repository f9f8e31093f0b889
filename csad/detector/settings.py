"""The settings of building and running the deployed detector, importable without torch: the fused branches
(:data:`BRANCHES`), the ``detector`` params section (:class:`DetectorSettings`, read by
:func:`csad.detector.build.build_detector`) and the ``score`` params section (:class:`ScoreSettings`, read by
:mod:`csad.pipeline.score`).

The settings stage checks every params section against its typed config (:mod:`csad.pipeline.settings`) and must not
spend seconds importing torch to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Branch names, in the order of :attr:`csad.detector.model.CsadDetector.fusion_stats` rows.
BRANCHES: tuple[str, str] = ("patch_hist", "lgst")


@dataclass(frozen=True)
class DetectorSettings:
    """The ``detector`` params section (one category's values).

    Attributes:
        weights: fusion weight per branch (``patch_hist``, ``lgst``); the paper sums them (1, 1).
        lower: trimmed normalisation of the branch scores: lower quantile of the kept validation scores.
        upper: upper quantile of the kept validation scores.
        threshold_quantile: the decision threshold is this quantile of the fused validation/good scores.
        batch_size: images per forward pass while fitting.
    """

    weights: dict[str, float] = field(default_factory=lambda: {"patch_hist": 1.0, "lgst": 1.0})
    lower: float = 0.2
    upper: float = 0.8
    threshold_quantile: float = 0.99
    batch_size: int = 8

    def __post_init__(self) -> None:
        if set(self.weights) != set(BRANCHES):
            raise ValueError(f"weights must have exactly the keys {list(BRANCHES)}, got {sorted(self.weights)}")
        if not 0.0 <= self.lower < self.upper <= 1.0:
            raise ValueError(f"need 0 <= lower < upper <= 1, got {self.lower}, {self.upper}")
        if not 0.0 < self.threshold_quantile <= 1.0:
            raise ValueError(f"threshold_quantile must be in (0, 1], got {self.threshold_quantile}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class ScoreSettings:
    """The ``score`` params section.

    Attributes:
        batch_size: images per forward pass of the detector (speed and memory).

    Raises:
        ValueError: ``batch_size`` below 1.
    """

    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
