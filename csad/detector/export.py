"""ONNX export of a :class:`~csad.detector.model.CsadDetector` (``torch.onnx.export``, dynamic batch axis).

The graph has one input ``image`` (B, 3, S, S) float32 RGB in [0, 1] and the outputs of
:data:`csad.detector.predict.OUTPUT_NAMES`. The detector's config and threshold travel in the model's metadata
(``csad_config``, ``csad_threshold``), so :class:`csad.detector.predict.OnnxRunner` needs nothing else. The
Patch Histogram statistics stay float64 inside the graph, as in PyTorch.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from csad.detector.model import CsadDetector
from csad.detector.predict import OUTPUT_NAMES
from csad.errors import CsadError
from csad.io import atomic_path

log = logging.getLogger(__name__)

#: ONNX opset of the export.
OPSET = 18


class _TupleOutputs(nn.Module):
    """The detector with a plain-tuple output (the exporter names the outputs by position)."""

    def __init__(self, detector: CsadDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.detector(image))


def export_onnx(detector: CsadDetector, path: Path | str, opset: int = OPSET) -> Path:
    """Write ``detector`` as an ONNX model to ``path`` (atomically) and return the path.

    Raises:
        CsadError: the ``onnx`` package is missing or the export fails.
    """
    try:
        import onnx
    except ImportError as err:
        raise CsadError("ONNX export needs the onnx package: pip install onnx onnxruntime") from err
    path = Path(path)
    detector = detector.cpu().eval()
    wrapper = _TupleOutputs(detector).eval()
    example = torch.rand(2, 3, detector.image_size, detector.image_size, generator=torch.Generator().manual_seed(0))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper,
                (example,),
                str(tmp),
                input_names=["image"],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={"image": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}},
                opset_version=opset,
                dynamo=False,
            )
        except Exception as err:
            raise CsadError(f"ONNX export failed: {type(err).__name__}: {err}") from err
        model = onnx.load(str(tmp))
        for key, value in (
            ("csad_config", detector.config.to_json()),
            ("csad_threshold", repr(float(detector.threshold))),
            ("csad_format", "csad-detector-onnx-1"),
        ):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
    return path
