"""The deployable CSAD detector: one fused inference model (:class:`CsadDetector`), its construction from trained
artifacts (:mod:`csad.detector.build`), prediction on images of any size through PyTorch, ONNX Runtime or OpenVINO
(:mod:`csad.detector.predict`), ONNX export (:mod:`csad.detector.export`) and overlay pictures
(:mod:`csad.detector.overlay`)."""

from csad.detector.model import BRANCHES, CsadDetector, DetectorConfig, DetectorOutput

__all__ = ["BRANCHES", "CsadDetector", "DetectorConfig", "DetectorOutput"]
