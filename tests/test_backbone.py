"""The shared backbone factory: names, layers, channels, the three weight sources, freezing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from csad.errors import CheckpointError
from csad.models import backbone as bb
from csad.models.backbone import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYER_STRIDES,
    LAYERS,
    build_backbone,
    feature_channels,
    normalize,
)

EXPECTED_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "wide_resnet50_2": (256, 512, 1024, 2048),
}


@pytest.fixture(autouse=True)
def _quiet_random_weights(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="csad.models.backbone")


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_returns_the_requested_layers_with_documented_channels(name: str) -> None:
    fe = build_backbone(name, "none", ["layer3", "layer1", "layer2", "layer4"], seed=0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = fe(x)
    assert list(out) == list(LAYERS)  # forward order, whatever the request order
    for layer, channels in zip(LAYERS, EXPECTED_CHANNELS[name], strict=True):
        side = 64 // LAYER_STRIDES[layer]
        assert tuple(out[layer].shape) == (2, channels, side, side)
        assert feature_channels(name, layer) == channels
        assert fe.channels[layer] == channels


def test_only_requested_layers_are_returned_and_later_stages_are_not_run() -> None:
    fe = build_backbone("resnet18", "none", ["layer2"])
    calls: list[str] = []
    fe.model.layer3.register_forward_hook(lambda *_: calls.append("layer3"))
    out = fe(torch.zeros(1, 3, 64, 64))
    assert list(out) == ["layer2"] and calls == []


def test_random_init_is_deterministic_in_the_seed_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_backbone("resnet18", "none", ["layer1"], seed=7)
    after = torch.rand(1)
    b = build_backbone("resnet18", "none", ["layer1"], seed=7)
    c = build_backbone("resnet18", "none", ["layer1"], seed=8)
    assert torch.equal(before, after)
    assert torch.equal(a.model.conv1.weight, b.model.conv1.weight)
    assert not torch.equal(a.model.conv1.weight, c.model.conv1.weight)


def test_random_weights_warn_loudly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="csad.models.backbone")
    build_backbone("resnet18", "none", ["layer1"], param="segmenter.backbone_weights")
    assert any("RANDOM weights" in r.message and "segmenter.backbone_weights" in r.message for r in caplog.records)


def test_checkpoint_path_reloads_identical_outputs(tmp_path: Path) -> None:
    fe = build_backbone("resnet18", "none", ["layer2", "layer4"], seed=3)
    path = tmp_path / "resnet18.pth"
    torch.save(fe.model.state_dict(), path)
    loaded = build_backbone("resnet18", str(path), ["layer2", "layer4"], seed=99)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = fe(x), loaded(x)
    for layer in ("layer2", "layer4"):
        assert torch.equal(a[layer], b[layer])


def test_missing_checkpoint_names_the_param_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "wrn.pth"
    with pytest.raises(CheckpointError) as err:
        build_backbone("wide_resnet50_2", str(path), ["layer1"], param="lgst.teacher_weights")
    assert "lgst.teacher_weights" in str(err.value) and str(path) in str(err.value)


def test_checkpoint_of_another_architecture_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(build_backbone("resnet18", "none", ["layer1"]).model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"features\.weights"):
        build_backbone("resnet34", str(path), ["layer1"], param="features.weights")


def test_failed_download_becomes_a_checkpoint_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**_: object) -> nn.Module:
        raise OSError("no network")

    monkeypatch.setattr(bb.torchvision.models, "resnet18", offline)
    with pytest.raises(CheckpointError, match=r"my\.weights.*download"):
        build_backbone("resnet18", "download", ["layer1"], param="my.weights")


def test_unknown_name_or_layer_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        build_backbone("vgg16", "none", ["layer1"])
    with pytest.raises(ValueError, match="layer5"):
        build_backbone("resnet18", "none", ["layer5"])
    with pytest.raises(ValueError):
        build_backbone("resnet18", "none", [])


def test_backbone_is_frozen_and_stays_in_eval_mode_but_passes_gradients_to_a_head() -> None:
    fe = build_backbone("resnet18", "none", ["layer1", "layer3"], seed=0)
    head = nn.Conv2d(64 + 256, 3, kernel_size=1)
    model = nn.ModuleDict({"backbone": fe, "head": head})
    model.train()
    assert not fe.training and not fe.model.layer1[0].bn1.training  # BatchNorm statistics never update
    running = fe.model.bn1.running_mean.clone()
    x = torch.randn(2, 3, 64, 64)
    feats = fe(x)
    up = nn.functional.interpolate(feats["layer3"], size=feats["layer1"].shape[-2:], mode="bilinear")
    loss = head(torch.cat([feats["layer1"], up], dim=1)).square().mean()
    loss.backward()
    assert head.weight.grad is not None and torch.count_nonzero(head.weight.grad) > 0
    assert all(p.grad is None and not p.requires_grad for p in fe.parameters())
    assert torch.equal(fe.model.bn1.running_mean, running)


def test_normalize_uses_the_imagenet_statistics() -> None:
    x = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(normalize(x), torch.zeros(1, 3, 2, 2))
    y = normalize(torch.ones(1, 3, 1, 1))
    expected = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert torch.allclose(y.view(3), expected)
