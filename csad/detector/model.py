"""``CsadDetector``: the deployable CSAD model, inference in exactly one place (docs/method.md sections 3-6).

One ``nn.Module`` holds everything a trained category needs to score an image: the frozen CNN encoder (shared by
the segmenter and the LGST teacher when both use the same network at the same input size), the component
segmenter's DeepLabV3+ decoder, the Patch Histogram statistics, the LGST teacher head, local student and
autoencoder, every normalisation statistic and the decision threshold. Every statistic is a registered buffer, so
``state_dict()`` is the whole model and :meth:`CsadDetector.save` / :meth:`CsadDetector.load` need no other file
(no weight package, no download).

:meth:`CsadDetector.forward` is batched all the way (no per-sample Python loop, so it traces and exports to ONNX
with a dynamic batch axis). For a (B, 3, S, S) RGB batch in [0, 1] at the model's input side S it returns a
:class:`DetectorOutput`:

- ``segmentation`` (B, S, S) int64: argmax component labels (0 = background);
- Patch Histogram (docs/method.md 4): per grid, class-area histograms of the segmentation, Mahalanobis distance to the
  train histograms (mean and pseudo-inverse covariance, float64), trimmed z-normalised with validation/good
  statistics and summed over grids: ``patch_hist_raw`` (B,);
- LGST (docs/method.md 5): local map = channel mean of ``(T - S_st)^2``, global map = channel mean of ``(A - S_ae)^2``,
  each quantile-normalised (``0.1 (M - q_a) / (q_b - q_a)``), summed: ``anomaly_map`` (B, F, F) at the feature
  side F; ``lgst_raw`` (B,) is its maximum after bilinear upsampling to the LGST input side, as released;
- fusion (docs/method.md 6): each branch score trimmed z-normalised with its validation/good statistics
  (``patch_hist``, ``lgst``, (B,) float64) and summed with the fusion weights: ``score`` (B,) float64.

A score above :attr:`CsadDetector.threshold` is the verdict "anomalous" (the threshold is derived from
validation/good only, :mod:`csad.detector.build`).

>>> det = CsadDetector(DetectorConfig.tiny())
>>> out = det(torch.rand(2, 3, 64, 64))
>>> tuple(out.score.shape), tuple(out.anomaly_map.shape), tuple(out.segmentation.shape)
((2,), (2, 16, 16), (2, 64, 64))
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import timm
import torch
from torch import nn

from csad.detector.settings import BRANCHES
from csad.errors import CheckpointError, CsadError
from csad.io import load_checkpoint, save_checkpoint
from csad.models.backbone import FeatureExtractor
from csad.models.lgst import TEACHER_STRIDES, AutoEncoder, LocalStudent, TeacherHead, lgst_anomaly_maps
from csad.models.ops import resize_bilinear
from csad.models.segmenter import SEGMENTER_STRIDES, DeepLabV3PlusDecoder
from csad.runtime import check_device
from csad.scoring.patch_hist import (
    Grid,
    cell_matrices,
    component_counts_torch,
    grid_key,
    histograms_torch,
    mahalanobis_torch,
)

#: Format tag of ``detector.pt``.
DETECTOR_FORMAT = "csad-detector-1"


class DetectorOutput(NamedTuple):
    """What :meth:`CsadDetector.forward` returns for a batch of B images (all tensors on the model's device)."""

    score: torch.Tensor  # (B,) float64 fused anomaly score; > threshold means "anomalous"
    anomaly_map: torch.Tensor  # (B, F, F) float32 LGST anomaly map (normalised local + global)
    segmentation: torch.Tensor  # (B, S, S) int64 component labels, 0 = background
    patch_hist: torch.Tensor  # (B,) float64 Patch Histogram score, z-normalised on validation/good
    lgst: torch.Tensor  # (B,) float64 LGST score, z-normalised on validation/good
    patch_hist_raw: torch.Tensor  # (B,) float64 sum over grids of the normalised Mahalanobis distances
    lgst_raw: torch.Tensor  # (B,) float32 maximum of the upsampled anomaly map


@dataclass(frozen=True)
class DetectorConfig:
    """The architecture of a :class:`CsadDetector` (JSON-able; the tensors are in its state dict).

    Attributes:
        category: the product category it was trained on (informative).
        image_size: input side S of :meth:`CsadDetector.forward` (the segmenter's training size).
        num_classes: segmentation classes, background 0 included.
        seg_backbone: timm name of the segmenter's encoder.
        decoder: DeepLabV3+ widths: ``aspp_channels``, ``decoder_channels``, ``reduce_channels``, ``bn_momentum``.
        lgst_backbone: timm name of the LGST teacher's encoder.
        lgst_image_size: LGST input side (the batch is resized to it when it differs from ``image_size``).
        feat_size: side F of the LGST maps.
        channels: teacher / student / AE channels.
        student_widths: the local student's widths.
        ae_base_dim: the autoencoder's base width.
        shared_backbone: one encoder forward feeds both branches (same network, weights and input size).
        student_padding: the local student's convolutions are padded (trained models: always; the authors' speed
            script times an unpadded student at feat_size 56).
        grids: Patch Histogram grids (rows, cols).
        component_counts: the Patch Histogram has the component-count term
            (:class:`csad.scoring.patch_hist.PatchHistogramScorer`; False in detectors built before it existed).
        weights: fusion weights ``{"patch_hist": w, "lgst": w}``.
        threshold_rule: how the decision threshold was derived (informative, e.g. ``{"quantile": 0.99}``).
    """

    category: str
    image_size: int
    num_classes: int
    seg_backbone: str
    decoder: dict[str, float]
    lgst_backbone: str
    lgst_image_size: int
    feat_size: int
    channels: int
    student_widths: tuple[int, int, int]
    ae_base_dim: int
    shared_backbone: bool
    grids: tuple[Grid, ...]
    weights: dict[str, float] = field(default_factory=lambda: {"patch_hist": 1.0, "lgst": 1.0})
    threshold_rule: dict[str, Any] = field(default_factory=dict)
    student_padding: bool = True
    component_counts: bool = False

    def to_json(self) -> str:
        """Return the config as a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DetectorConfig:
        """Return the config of :meth:`to_json`'s string."""
        values = json.loads(text)
        values["student_widths"] = tuple(values["student_widths"])
        values["grids"] = tuple((int(g[0]), int(g[1])) for g in values["grids"])
        return cls(**values)

    @classmethod
    def tiny(cls, shared: bool = True) -> DetectorConfig:
        """Return a small ResNet18 config (64 px input, 16 x 16 maps) for tests and doctests."""
        return cls(
            category="tiny",
            image_size=64,
            num_classes=4,
            seg_backbone="resnet18",
            decoder={"aspp_channels": 8, "decoder_channels": 8, "reduce_channels": 8, "bn_momentum": 0.1},
            lgst_backbone="resnet18",
            lgst_image_size=64,
            feat_size=16,
            channels=8,
            student_widths=(8, 8, 8),
            ae_base_dim=8,
            shared_backbone=shared,
            grids=((1, 1), (2, 2)),
        )


def _encoder(name: str, strides: Sequence[int]) -> FeatureExtractor:
    """Return the frozen timm encoder ``name`` with initial weights (the detector's state dict overwrites them)."""
    return FeatureExtractor(timm.create_model(name, pretrained=False), name, strides)


class CsadDetector(nn.Module):
    """The fused CSAD detector (segmenter + Patch Histogram + LGST + fusion + threshold); see the module docs.

    Build it from trained artifacts with :func:`csad.detector.build.build_detector`; reload it with :meth:`load`.
    A freshly constructed detector has initial weights and neutral statistics (identity normalisations, threshold
    +inf).
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        c = config
        if c.shared_backbone and (c.seg_backbone != c.lgst_backbone or c.image_size != c.lgst_image_size):
            raise ValueError("a shared backbone needs the same network and input size for both branches")
        self.config = c
        self.meta: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[]):  # initial weights only: the global RNG is left untouched
            torch.manual_seed(0)
            self._build_networks(c)
        self._register_statistics(c)
        self.eval()

    def _build_networks(self, c: DetectorConfig) -> None:
        seg_strides = set(SEGMENTER_STRIDES) | (set(TEACHER_STRIDES) if c.shared_backbone else set())
        self.backbone = _encoder(c.seg_backbone, sorted(seg_strides))
        self.lgst_backbone = None if c.shared_backbone else _encoder(c.lgst_backbone, TEACHER_STRIDES)
        teacher_encoder = self.backbone if self.lgst_backbone is None else self.lgst_backbone
        self.decoder = DeepLabV3PlusDecoder(
            in_low=self.backbone.channels[SEGMENTER_STRIDES[0]],
            in_high=self.backbone.channels[SEGMENTER_STRIDES[1]],
            num_classes=c.num_classes,
            aspp_channels=int(c.decoder["aspp_channels"]),
            decoder_channels=int(c.decoder["decoder_channels"]),
            reduce_channels=int(c.decoder["reduce_channels"]),
            bn_momentum=float(c.decoder["bn_momentum"]),
        )
        in_teacher = sum(teacher_encoder.channels[s] for s in TEACHER_STRIDES)
        self.teacher_head = TeacherHead(in_teacher, c.channels, c.feat_size)
        self.student = LocalStudent(
            tuple(c.student_widths),  # type: ignore[arg-type]
            c.channels,
            c.feat_size,
            padding=c.student_padding,
        )
        self.autoencoder = AutoEncoder(c.ae_base_dim, c.channels, c.feat_size, c.lgst_image_size)

    def _register_statistics(self, c: DetectorConfig) -> None:
        # ---- statistics (buffers: the state dict is the whole model) ----
        self.register_buffer("teacher_mean", torch.zeros(1, c.channels, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, c.channels, 1, 1))
        # LGST map normalisation: rows local, global; columns q_a, spread (q_b - q_a, or 1 when degenerate)
        self.register_buffer("map_norm", torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        self.grid_keys = [grid_key(g) for g in c.grids]
        dim = {g: g[0] * g[1] * c.num_classes for g in c.grids}
        for g in c.grids:
            key = grid_key(g)
            self.register_buffer(f"ph_mean_{key}", torch.zeros(dim[g], dtype=torch.float64))
            self.register_buffer(f"ph_invcov_{key}", torch.eye(dim[g], dtype=torch.float64))
            rows, cols = cell_matrices((c.image_size, c.image_size), g)
            self.register_buffer(f"ph_rows_{key}", rows, persistent=False)
            self.register_buffer(f"ph_cols_{key}", cols, persistent=False)
        # per grid: mean, spread of the validation distances (trimmed z-normalisation)
        self.register_buffer("ph_norm", torch.tensor([[0.0, 1.0]] * len(c.grids), dtype=torch.float64))
        if c.component_counts:  # smallest counted area per class, count mean / inverse covariance, mean and spread
            self.register_buffer("ph_count_min_area", torch.zeros(c.num_classes, dtype=torch.float64))
            self.register_buffer("ph_count_mean", torch.zeros(c.num_classes, dtype=torch.float64))
            self.register_buffer("ph_count_invcov", torch.eye(c.num_classes, dtype=torch.float64))
            self.register_buffer("ph_count_norm", torch.tensor([0.0, 1.0], dtype=torch.float64))
        # fusion: rows patch_hist, lgst; columns mean, spread of the validation branch scores; then the weights
        self.register_buffer("fusion_stats", torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64))
        weights = [float(c.weights.get(b, 1.0)) for b in BRANCHES]
        self.register_buffer("fusion_weights", torch.tensor(weights, dtype=torch.float64))
        self.register_buffer("threshold", torch.tensor(float("inf"), dtype=torch.float64))

    # ---------------------------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """Return the input side S that :meth:`forward` expects."""
        return int(self.config.image_size)

    @property
    def device(self) -> torch.device:
        """Return the device of the model's tensors."""
        return self.threshold.device

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        """Return the :class:`DetectorOutput` of the RGB [0, 1] batch ``x`` (B, 3, S, S), S = :attr:`image_size`.

        Raises:
            ValueError: ``x`` is not (B, 3, S, S).
        """
        c = self.config
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (c.image_size, c.image_size):
            raise ValueError(f"expected a (B, 3, {c.image_size}, {c.image_size}) batch, got {tuple(x.shape)}")
        xs = self.backbone.normalize(x)
        feats = self.backbone.forward_normalized(xs)
        size = (c.image_size, c.image_size)
        logits = self.decoder(feats[SEGMENTER_STRIDES[0]], feats[SEGMENTER_STRIDES[1]], size)
        segmentation = logits.argmax(dim=1)
        patch_hist_raw = self.patch_histogram(segmentation)
        if self.lgst_backbone is None:
            xl, teacher_feats = xs, feats
        else:
            x_l = x
            if c.lgst_image_size != c.image_size:
                x_l = nn.functional.interpolate(
                    x, size=(c.lgst_image_size,) * 2, mode="bilinear", align_corners=False, antialias=True
                )
            xl = self.lgst_backbone.normalize(x_l)
            teacher_feats = self.lgst_backbone.forward_normalized(xl)
        t = (self.teacher_head(teacher_feats) - self.teacher_mean) / self.teacher_std
        s_st, s_ae = self.student(xl)
        local, global_ = lgst_anomaly_maps(t, s_st, s_ae, self.autoencoder(xl))
        anomaly_map = 0.1 * (local - self.map_norm[0, 0]) / self.map_norm[0, 1]
        anomaly_map = anomaly_map + 0.1 * (global_ - self.map_norm[1, 0]) / self.map_norm[1, 1]
        up = resize_bilinear(anomaly_map[:, None], (c.lgst_image_size, c.lgst_image_size))
        lgst_raw = up.flatten(1).amax(dim=1)
        ph = (patch_hist_raw - self.fusion_stats[0, 0]) / self.fusion_stats[0, 1]
        lg = (lgst_raw.double() - self.fusion_stats[1, 0]) / self.fusion_stats[1, 1]
        score = self.fusion_weights[0] * ph + self.fusion_weights[1] * lg
        return DetectorOutput(score, anomaly_map, segmentation, ph, lg, patch_hist_raw, lgst_raw)

    def patch_histogram(self, segmentation: torch.Tensor) -> torch.Tensor:
        """Return the (B,) float64 Patch Histogram scores of (B, S, S) label maps (docs/method.md 4): per grid the
        Mahalanobis distance of the class histograms, trimmed z-normalised, summed over grids; plus the same for the
        component counts when the config has them."""
        total = torch.zeros(segmentation.shape[0], dtype=torch.float64, device=segmentation.device)
        for i, key in enumerate(self.grid_keys):
            hist = histograms_torch(
                segmentation, self.config.num_classes, getattr(self, f"ph_rows_{key}"), getattr(self, f"ph_cols_{key}")
            )
            dist = mahalanobis_torch(hist, getattr(self, f"ph_mean_{key}"), getattr(self, f"ph_invcov_{key}"))
            total = total + (dist - self.ph_norm[i, 0]) / self.ph_norm[i, 1]
        if self.config.component_counts:
            counts = component_counts_torch(segmentation, self.config.num_classes, self.ph_count_min_area)
            dist = mahalanobis_torch(counts, self.ph_count_mean, self.ph_count_invcov)
            total = total + (dist - self.ph_count_norm[0]) / self.ph_count_norm[1]
        return total

    # ---------------------------------------------------------------------------------------------------------
    def verdicts(self, scores: torch.Tensor | np.ndarray) -> np.ndarray:
        """Return a (B,) bool array: True where the score is above the decision threshold ("anomalous")."""
        return np.asarray(scores, dtype=np.float64) > float(self.threshold)

    def save(self, path: Path | str, meta: Mapping[str, Any] | None = None) -> None:
        """Write the detector to ``path`` atomically: ``{"format", "config" (JSON), "meta" (JSON), "state_dict"}``,
        tensors only (loadable with ``torch.load(weights_only=True)``)."""
        payload = {
            "format": DETECTOR_FORMAT,
            "config": self.config.to_json(),
            "meta": json.dumps(dict(meta or {}), sort_keys=True),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
        }
        save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: Path | str, device: str | torch.device = "cpu") -> CsadDetector:
        """Return the detector saved by :meth:`save`, in eval mode on ``device``.

        Raises:
            CheckpointError: the file is missing, unreadable, not a detector, or its tensors do not fit its config.
            CsadError: ``device`` is unknown or not available here.
        """
        check_device(str(device))
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            raise CheckpointError(f"{path} is an ONNX export, not a detector checkpoint: use --backend onnx")
        payload = load_checkpoint(path, "detector", "CSAD detector", DETECTOR_FORMAT)
        try:
            model = cls(DetectorConfig.from_json(payload["config"]))
            model.load_state_dict(payload["state_dict"], strict=True)
            meta = json.loads(payload.get("meta") or "{}")
            if not isinstance(meta, dict):
                raise TypeError(f"meta is a {type(meta).__name__}, not a mapping")
        except CsadError:  # e.g. the backbone's weights are missing: that message says why
            raise
        except KeyError as err:
            raise CheckpointError(
                f"detector {path} lacks the entry {err} (payload or config); rebuild it (dvc repro detector)"
            ) from None
        except (RuntimeError, TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            raise CheckpointError(f"detector {path} does not fit its config: {err}") from err
        model.meta = meta
        return model.to(device).eval()

    def predict(self, images: Any, batch_size: int = 8, progress: bool = False) -> list[Any]:
        """Return one :class:`csad.detector.predict.Prediction` per image (uint8 RGB arrays of any size, or paths).

        Images are resized to the input side as in training; maps come back at each image's original size. A
        path that cannot be read gives a prediction with ``error`` set; the others are still scored.
        """
        from csad.detector.predict import TorchRunner, predict_images

        return predict_images(TorchRunner(self), images, batch_size=batch_size, progress=progress)
