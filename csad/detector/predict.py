"""Scoring images of any size with a detector, through one of three backends that share all pre- and
post-processing: PyTorch (:class:`TorchRunner`), ONNX Runtime (:class:`OnnxRunner`) and OpenVINO
(:class:`OpenVinoRunner`, optional).

Pre-processing is the training pipeline's: each uint8 RGB image is resized to the detector's input side S (bilinear
with antialiasing, rounded to uint8, aspect ratio not kept) and
scaled to [0, 1] (:func:`csad.imaging.model_input`). Post-processing brings the maps back to each image's original
size (:mod:`csad.imaging`): the anomaly map bilinearly (as the official MVTec LOCO maps are written), the
segmentation by nearest neighbour. The verdict is
"anomalous" when the fused score is above the detector's threshold, else "good".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from csad.data.loco import read_image
from csad.errors import CheckpointError, CsadError
from csad.imaging import model_input, resize_label, resize_map
from csad.runtime import check_device

if TYPE_CHECKING:
    from csad.detector.model import CsadDetector

log = logging.getLogger(__name__)

#: Output names, in the order of :class:`csad.detector.model.DetectorOutput` (and of the ONNX graph's outputs).
OUTPUT_NAMES: tuple[str, ...] = (
    "score",
    "anomaly_map",
    "segmentation",
    "patch_hist",
    "lgst",
    "patch_hist_raw",
    "lgst_raw",
)
#: The per-image scalar outputs.
SCALAR_OUTPUTS: tuple[str, ...] = ("score", "patch_hist", "lgst", "patch_hist_raw", "lgst_raw")
GOOD, ANOMALOUS = "good", "anomalous"
#: File suffixes (lower case) that ``csad predict`` reads from folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class Runner(Protocol):
    """A backend: runs the detector graph on preprocessed batches."""

    image_size: int
    threshold: float
    config: dict[str, Any]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Return ``{output name: (B, ...) array}`` of the float32 (B, 3, S, S) RGB [0, 1] batch ``x``."""
        ...


class TorchRunner:
    """Runs a :class:`~csad.detector.model.CsadDetector` with PyTorch (no grad), on the detector's device.

    ``channels_last`` switches the memory format of the convolutions; ``autocast`` (``"bf16"``) runs them in
    bfloat16 autocast (the float64 statistics stay float64)."""

    def __init__(self, detector: CsadDetector, channels_last: bool = False, autocast: str | None = None) -> None:
        self.detector = detector.eval()
        self.image_size = detector.image_size
        self.threshold = float(detector.threshold)
        self.config = json.loads(detector.config.to_json())
        self.channels_last = channels_last
        self.autocast = autocast
        if channels_last:
            self.detector.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the raw output tensors of the (B, 3, S, S) batch ``x`` (already on the device)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.autocast == "bf16":
                with torch.autocast(x.device.type, dtype=torch.bfloat16):
                    return tuple(self.detector(x))
            return tuple(self.detector(x))

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Return the outputs of the float32 (B, 3, S, S) batch ``x`` as numpy arrays."""
        out = self.forward(torch.from_numpy(x).to(self.detector.device))
        return {
            name: t.float().cpu().numpy() if name == "anomaly_map" else t.cpu().numpy()
            for name, t in zip(OUTPUT_NAMES, out, strict=True)
        }


class OnnxRunner:
    """Runs an exported ``.onnx`` detector with ONNX Runtime (:func:`csad.detector.export.export_onnx`).

    Raises:
        CheckpointError: the file is missing, not an ONNX model, or not a CSAD detector export.
    """

    def __init__(self, path: Path | str, threads: int = 0) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"ONNX model {path} not found: export it with `csad export --model detector.pt`")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph types
            raise CheckpointError(f"cannot load ONNX model {path}: {type(err).__name__}: {err}") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if "csad_config" not in meta:
            raise CheckpointError(f"{path} is not a CSAD detector export (no csad_config metadata)")
        self.config = json.loads(meta["csad_config"])
        self.image_size = int(self.config["image_size"])
        self.threshold = float(meta["csad_threshold"])

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Return the outputs of the float32 (B, 3, S, S) batch ``x``."""
        out = self.session.run(list(OUTPUT_NAMES), {"image": np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(OUTPUT_NAMES, out, strict=True))


class OpenVinoRunner:
    """Runs an exported ``.onnx`` detector with OpenVINO (optional extra ``openvino``) on its CPU device.

    Raises:
        CsadError: OpenVINO is not installed, or the model cannot be read.
    """

    def __init__(self, path: Path | str) -> None:
        try:
            import openvino as ov
        except ImportError as err:
            raise CsadError("OpenVINO is not installed: pip install 'csad-pipeline[openvino]'") from err
        meta_runner = OnnxRunner(path)  # reads and checks the metadata
        self.config, self.image_size, self.threshold = meta_runner.config, meta_runner.image_size, meta_runner.threshold
        core = ov.Core()
        self.model = core.compile_model(core.read_model(str(path)), "CPU")

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Return the outputs of the float32 (B, 3, S, S) batch ``x``."""
        result = self.model(np.ascontiguousarray(x, dtype=np.float32))
        return {name: np.asarray(result[self.model.output(name)]) for name in OUTPUT_NAMES}


def open_runner(model: Path | str, backend: str = "auto", device: str = "cpu") -> Runner:
    """Return the runner of ``model``: a ``detector.pt`` (backend torch) or an exported ``.onnx`` (backend onnx or
    openvino). ``backend="auto"`` picks by suffix; ``onnx``/``openvino`` on a ``.pt`` exports it first (to a
    temporary file, deleted once the runtime has loaded it). ``device`` applies to the torch backend only.

    Raises:
        CsadError: an unknown backend or device, or a model that the backend cannot load.
    """
    import tempfile

    from csad.detector.model import CsadDetector

    model = Path(model)
    is_onnx = model.suffix.lower() == ".onnx"
    if backend == "auto":
        backend = "onnx" if is_onnx else "torch"
    if backend == "torch":
        if is_onnx:
            raise CsadError(f"{model}: the torch backend needs a detector.pt; use --backend onnx for .onnx files")
        return TorchRunner(CsadDetector.load(model, check_device(device)))
    if backend not in ("onnx", "openvino"):
        raise CsadError(f"unknown backend {backend!r}: use torch, onnx or openvino")
    if device != "cpu":
        log.warning("device %s is ignored by the %s backend (it runs on the CPU)", device, backend)
    factory = OnnxRunner if backend == "onnx" else OpenVinoRunner
    if is_onnx:
        return factory(model)
    from csad.detector.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="csad-onnx-") as tmp:
        path = export_onnx(CsadDetector.load(model), Path(tmp) / "detector.onnx")
        return factory(path)


# ---------------------------------------------------------------------------------------------------------------
def preprocess(images: Sequence[np.ndarray], image_size: int) -> np.ndarray:
    """Return the float32 (B, 3, S, S) [0, 1] batch of uint8 RGB ``images`` (any sizes) resized to S.

    Raises:
        ValueError: an image is not (H, W, 3) uint8.
    """
    return model_input(images, image_size).numpy()  # contiguous: to_input returns NCHW C-order


def run_batches(
    runner: Runner, images: Sequence[np.ndarray], batch_size: int = 8, progress: bool = False, desc: str = "score"
) -> dict[str, np.ndarray]:
    """Return the outputs of ``runner`` on all ``images`` (uint8 RGB, any sizes) concatenated over batches.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUT_NAMES}
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=not progress):
        out = runner.run(preprocess(images[start : start + batch_size], runner.image_size))
        for name in OUTPUT_NAMES:
            parts[name].append(out[name])
    return {name: np.concatenate(v) if v else np.zeros((0,)) for name, v in parts.items()}


@dataclass
class Prediction:
    """The result for one image. On failure only ``source`` and ``error`` are set.

    Attributes:
        source: the image's path, or ``"<array i>"`` for an in-memory image.
        score: fused anomaly score (validation/good z units; higher = more anomalous).
        verdict: ``"anomalous"`` when ``score`` > threshold, else ``"good"``.
        threshold: the detector's decision threshold.
        patch_hist: Patch Histogram branch score (logical anomalies), normalised.
        lgst: LGST branch score (structural and local defects), normalised.
        patch_hist_raw: Patch Histogram score before the fusion normalisation.
        lgst_raw: LGST score (maximum of the anomaly map) before the fusion normalisation.
        anomaly_map: (H, W) float32 LGST anomaly map at the original image size.
        segmentation: (H, W) uint8 component labels at the original image size (0 = background).
        image: the (H, W, 3) uint8 RGB image (kept for overlays).
        error: why the image could not be scored.
    """

    source: str
    score: float | None = None
    verdict: str | None = None
    threshold: float | None = None
    patch_hist: float | None = None
    lgst: float | None = None
    patch_hist_raw: float | None = None
    lgst_raw: float | None = None
    anomaly_map: np.ndarray | None = None
    segmentation: np.ndarray | None = None
    image: np.ndarray | None = None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        """Return the CSV / JSON row (no arrays)."""
        return {
            "path": self.source,
            "score": self.score,
            "verdict": self.verdict,
            "threshold": self.threshold,
            "patch_hist": self.patch_hist,
            "lgst": self.lgst,
            "error": self.error or "",
            "overlay": "",
        }


def _load(item: Any, index: int) -> tuple[str, np.ndarray]:
    if isinstance(item, (str, Path)):
        return str(item), read_image(Path(item))
    image = np.asarray(item)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise CsadError(
            f"array {index}: expected a non-empty (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
        )
    return f"<array {index}>", image


def iter_predictions(
    runner: Runner,
    images: Iterable[Any],
    batch_size: int = 8,
    progress: bool = False,
    total: int | None = None,
    keep_image: bool = False,
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per item of ``images`` (paths or uint8 RGB arrays), in order, scored in batches.

    An unreadable item yields a prediction with ``error`` set, and so does an image whose score is not finite
    (degenerate detector statistics); the others are still scored. A single path or (H, W, 3) array is one image.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    pending: list[tuple[str, np.ndarray | None, str | None]] = []  # (source, image, error), in input order
    bar = tqdm(total=total, desc="predict", unit="img", disable=not progress)

    def flush() -> Iterator[Prediction]:
        images = [img for _, img, _ in pending if img is not None]
        out = runner.run(preprocess(images, runner.image_size)) if images else {}
        k = 0
        for source, img, error in pending:
            if img is None:
                yield Prediction(source=source, error=error)
                continue
            score = float(out["score"][k])
            if not np.isfinite(score):
                k += 1
                yield Prediction(source=source, error=f"non-finite score {score}: degenerate detector statistics")
                continue
            h, w = img.shape[:2]
            amap = resize_map(out["anomaly_map"][k], (h, w))
            seg = resize_label(out["segmentation"][k].astype(np.uint8), (h, w))
            yield Prediction(
                source=source,
                score=score,
                verdict=ANOMALOUS if score > runner.threshold else GOOD,
                threshold=runner.threshold,
                patch_hist=float(out["patch_hist"][k]),
                lgst=float(out["lgst"][k]),
                patch_hist_raw=float(out["patch_hist_raw"][k]),
                lgst_raw=float(out["lgst_raw"][k]),
                anomaly_map=amap,
                segmentation=seg,
                image=img if keep_image else None,
            )
            k += 1
        bar.update(len(pending))
        pending.clear()

    loaded = 0
    for index, item in enumerate(images):
        try:
            source, image = _load(item, index)
            pending.append((source, image, None))
            loaded += 1
        except CsadError as err:
            source = str(item) if isinstance(item, (str, Path)) else f"<array {index}>"
            pending.append((source, None, str(err)))
        if loaded == batch_size:
            yield from flush()
            loaded = 0
    if pending:
        yield from flush()
    bar.close()


def predict_images(
    runner: Runner, images: Iterable[Any], batch_size: int = 8, progress: bool = False
) -> list[Prediction]:
    """Return :func:`iter_predictions` as a list (maps included: mind the memory for thousands of large images)."""
    return list(iter_predictions(runner, images, batch_size, progress))
