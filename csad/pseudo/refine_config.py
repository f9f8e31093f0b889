"""The ``refine`` params section, importable without OpenCV: :class:`RefineConfig`, the settings of
:func:`csad.pseudo.refine.refine_instances`.
"""

from __future__ import annotations

from dataclasses import dataclass

REFINE_MODES = ("fine", "coarse")


@dataclass(frozen=True)
class RefineConfig:
    """The ``refine`` params section (one category's values): the settings of
    :func:`~csad.pseudo.refine.refine_instances` (see its arguments), with the released code's defaults (coarse mode
    with the grounding filter, as for most categories).

    Raises:
        ValueError: an unknown ``mode``, a ratio outside [0, 1], or ``max_masks`` below 1.
    """

    mode: str = "coarse"
    use_grounding_filter: bool = True
    grounding_filter_ratio: float = 0.9
    background_ratio: float = 0.95
    min_fraction: float = 0.001
    combine_overlap: float = 0.9
    max_masks: int = 255

    def __post_init__(self) -> None:
        if self.mode not in REFINE_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, REFINE_MODES))}, got {self.mode!r}")
        ratios = ("grounding_filter_ratio", "background_ratio", "min_fraction", "combine_overlap")
        for name in ratios:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_masks < 1:
            raise ValueError(f"max_masks must be >= 1, got {self.max_masks}")
