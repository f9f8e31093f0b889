"""The deployable CSAD detector: one fused inference model (:class:`CsadDetector`), its construction from trained
artifacts (:mod:`csad.detector.build`), prediction on images of any size through PyTorch, ONNX Runtime or OpenVINO
(:mod:`csad.detector.predict`), ONNX export (:mod:`csad.detector.export`) and overlay pictures
(:mod:`csad.detector.overlay`). The settings (:mod:`csad.detector.settings`) import no torch.

The names below are imported on first use (PEP 562), so importing :mod:`csad.detector.settings` alone does not pay
for torch; ``from csad.detector import CsadDetector`` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csad._lazy import lazy_exports

if TYPE_CHECKING:
    from csad.detector.model import CsadDetector, DetectorConfig, DetectorOutput
    from csad.detector.settings import BRANCHES

#: Exported name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "BRANCHES": "csad.detector.settings",
    "CsadDetector": "csad.detector.model",
    "DetectorConfig": "csad.detector.model",
    "DetectorOutput": "csad.detector.model",
}

__all__ = ["BRANCHES", "CsadDetector", "DetectorConfig", "DetectorOutput"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
