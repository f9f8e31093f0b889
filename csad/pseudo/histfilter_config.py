"""The ``filter`` params section, importable without scikit-learn: :class:`FilterConfig`, the arguments of
:func:`csad.pseudo.histfilter.filter_histograms`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The image sets a class's mean area can be measured over (:func:`csad.pseudo.histfilter.filter_histograms` step 4).
PRUNE_OVER = ("largest", "labeled", "all")


@dataclass(frozen=True)
class FilterConfig:
    """The ``filter`` params section (one category's values): the arguments of
    :func:`~csad.pseudo.histfilter.filter_histograms`, whose defaults (the paper's) it shares.

    Raises:
        ValueError: ``top_ratio`` outside (0, 1], a negative ``min_cluster_fraction`` or ``min_class_area``, or an
            unknown ``prune_over``.
    """

    min_cluster_fraction: float = 0.1
    top_ratio: float = 0.5
    largest_only: bool = True
    min_class_area: float = 0.001
    prune_over: str = "largest"

    def __post_init__(self) -> None:
        if not 0 < self.top_ratio <= 1:
            raise ValueError(f"top_ratio must be in (0, 1], got {self.top_ratio}")
        if self.min_cluster_fraction < 0 or self.min_class_area < 0:
            raise ValueError(
                f"min_cluster_fraction and min_class_area must be >= 0, got {self.min_cluster_fraction} and "
                f"{self.min_class_area}"
            )
        if self.prune_over not in PRUNE_OVER:
            raise ValueError(f"prune_over must be one of {', '.join(PRUNE_OVER)}, got {self.prune_over!r}")
