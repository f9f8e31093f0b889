"""Component segmenter (docs/method.md 3.2) and its semi-supervised training (docs/method.md 3.3-3.6), on tiny CPU
sizes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from csad.imaging import to_input
from csad.models.segmenter import ComponentSegmenter, DeepLabV3PlusDecoder, predict_labels
from csad.models.spec import BackboneSpec
from csad.seg import losses
from csad.seg.config import AugmentConfig, LossWeights, LSAConfig, SegTrainConfig
from csad.seg.data import fill_holes, prepare_data
from csad.seg.train import epoch_batches, train_segmenter

PAPER = {"in_low": 256, "in_high": 1024, "aspp_channels": 256, "decoder_channels": 256, "reduce_channels": 48}
CPU = {"in_low": 64, "in_high": 256, "aspp_channels": 64, "decoder_channels": 128, "reduce_channels": 48}
TINY = {"aspp_channels": 8, "decoder_channels": 16, "reduce_channels": 8}


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded(caplog: pytest.LogCaptureFixture) -> None:
    """Keep the random-weights warning out of the output and torch on one thread."""
    caplog.set_level(logging.ERROR, logger="csad.models.backbone")
    torch.set_num_threads(1)


def tiny_model(num_classes: int = 3, seed: int = 0) -> ComponentSegmenter:
    """Return a resnet18 segmenter with random weights and tiny decoder widths."""
    return ComponentSegmenter(num_classes, backbone="resnet18", weights="none", seed=seed, **TINY)


@pytest.mark.parametrize("widths", [PAPER, CPU], ids=["paper", "cpu"])
@pytest.mark.parametrize("size", [64, 96, 128, 256])
def test_decoder_output_shape(widths: dict[str, int], size: int) -> None:
    decoder = DeepLabV3PlusDecoder(num_classes=5, **widths).eval()
    low = torch.randn(1, widths["in_low"], size // 4, size // 4)
    high = torch.randn(1, widths["in_high"], size // 16, size // 16)
    with torch.no_grad():
        out = decoder(low, high, (size, size))
    assert out.shape == (1, 5, size, size)


def test_decoder_structure_matches_the_paper() -> None:
    decoder = DeepLabV3PlusDecoder(num_classes=4, **PAPER)
    assert decoder.aspp.out_channels == 1280
    dilations = [stage[0].dilation[0] for stage in decoder.aspp.stages]
    assert dilations == [1, 6, 12, 18]
    assert decoder.fc1[0].in_channels == 1280 and decoder.fc1[0].out_channels == 256
    assert decoder.reduce[0].out_channels == 48 and decoder.fc2[0][0].in_channels == 304
    last = decoder.fc2[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.bias is not None and last.out_channels == 4
    bns = [m for m in decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.momentum == 0.999 for bn in bns)
    assert all(m.bias is None for m in decoder.modules() if isinstance(m, torch.nn.Conv2d) and m is not last)
    assert DeepLabV3PlusDecoder(num_classes=2, bn_momentum=0.1, **CPU).fc1[1].momentum == 0.1


@pytest.mark.parametrize("size", [64, 96])
def test_segmenter_forward_shape(size: int) -> None:
    model = tiny_model(4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 4, size, size)


def test_training_steps_lower_the_loss_and_backbone_stays_frozen() -> None:
    model = tiny_model(3)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.train()
    assert not model.backbone.training  # the frozen backbone stays in eval mode
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 64, 64, generator=gen)
    target = torch.zeros(4, 64, 64, dtype=torch.long)
    target[:, 16:48, 16:48] = 1
    target[:, 40:, :20] = 2
    optimizer = torch.optim.Adam(model.decoder_parameters(), lr=0.01)
    values = []
    for _ in range(6):
        logits = model(x)
        loss = losses.cross_entropy(logits, target) + losses.dice_loss(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        values.append(loss.item())
    assert values[-1] < values[0]
    assert all(not p.requires_grad and p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.decoder_parameters())
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key  # BN running stats untouched


def test_checkpoint_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    model = tiny_model(3, seed=5)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))  # move the BN running stats away from their init
    model.eval()
    assert all(k.startswith("decoder.") for k in model.state_dict())
    torch.save(model.checkpoint(), tmp_path / "seg.pt")
    loaded = ComponentSegmenter.from_checkpoint(torch.load(tmp_path / "seg.pt", weights_only=True))
    assert loaded.config() == model.config()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_load_state_dict_rejects_foreign_keys() -> None:
    model = tiny_model(3)
    state = model.state_dict()
    state["backbone.model.conv1.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="unexpected keys"):
        model.load_state_dict(state)


def test_decoder_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = tiny_model(3, seed=1)
    assert torch.equal(torch.rand(1), before)
    b = tiny_model(3, seed=1)
    c = tiny_model(3, seed=2)
    key = "decoder.fc2.2.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])


def test_predict_labels_shapes_and_argmax() -> None:
    model = tiny_model(3).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), rng.integers(0, 255, (50, 80, 3), dtype=np.uint8)]
    maps = predict_labels(model, images, image_size=64, batch_size=1)
    assert [(m.shape, m.dtype) for m in maps] == [((64, 64), np.uint8)] * 2
    with torch.no_grad():
        expected = model(to_input(images[0][None])).argmax(1)[0].numpy()
    np.testing.assert_array_equal(maps[0], expected)
    batch = predict_labels(model, np.stack([images[0]] * 3), image_size=64, batch_size=2)
    assert len(batch) == 3 and all(np.array_equal(m, maps[0]) for m in batch)


def test_fill_holes_keeps_class_ids_and_only_fills_background() -> None:
    label = np.zeros((40, 40), np.int64)
    label[2:20, 2:20] = 3  # big ring of class 3 ...
    label[6:16, 6:16] = 0  # ... with a hole ...
    label[9:12, 9:12] = 1  # ... holding a tiny class-1 blob (9 px, too small to be filled itself)
    label[25:38, 25:38] = 2  # solid class 2
    filled = fill_holes(label)
    assert filled[7, 7] == 3  # the hole takes its enclosing class
    np.testing.assert_array_equal(filled[label != 0], label[label != 0])  # labelled pixels never change
    assert set(np.unique(filled).tolist()) == {0, 1, 2, 3}


def test_epoch_batches() -> None:
    rng = np.random.default_rng(0)
    batches = epoch_batches(10, 4, rng)
    assert len(batches) == 2 and all(len(b) == 4 for b in batches) and len(set(np.concatenate(batches))) == 8
    small = epoch_batches(3, 4, rng)
    assert len(small) == 1 and len(small[0]) == 4 and set(small[0].tolist()) == {0, 1, 2}


def test_config_dict_round_trip() -> None:
    config = SegTrainConfig(
        epochs=3, loss_weights=LossWeights(dice=10.0, focal=1.0), augment=AugmentConfig(lsa_config=LSAConfig(0, 3))
    )
    assert SegTrainConfig(**config.to_dict()) == config
    assert SegTrainConfig(
        augment={"lsa": False, "lsa_config": {"accept_overlap": [0.4, 0.8]}}
    ).augment == AugmentConfig(lsa=False, lsa_config=LSAConfig(accept_overlap=(0.4, 0.8)))


def toy_category(n: int = 6, size: int = 64) -> tuple[list[np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Return (images, labels of the even images, instances): coloured squares on a dark background."""
    rng = np.random.default_rng(0)
    images, labels, instances = [], {}, {}
    for i in range(n):
        image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        label = np.zeros((size, size), np.int64)
        for k, color in ((1, (230, 30, 30)), (2, (30, 230, 30))):
            y, x = rng.integers(4, size - 20, size=2)
            image[y : y + 14, x : x + 14] = color
            label[y : y + 14, x : x + 14] = k
        images.append(image)
        if i % 2 == 0:
            labels[i] = label
            instances[i] = label.copy()
    return images, labels, instances


def test_train_segmenter_is_deterministic_and_reports_losses() -> None:
    images, labels, instances = toy_category()
    config = SegTrainConfig(
        image_size=64,
        batch_size_labeled=2,
        batch_size_unlabeled=2,
        epochs=3,
        sup_only_epochs=1,
        device="cpu",
        seed=3,
        channels_last=True,
        **TINY,
    )
    steps: list[tuple[int, dict[str, float]]] = []
    spec = BackboneSpec("resnet18", "none")
    data = prepare_data(images, labels, instances, None, config.image_size)
    model_a, history = train_segmenter(data, 3, config, spec, callback=lambda s, v: steps.append((s, v)))
    model_b, _ = train_segmenter(data, 3, config, spec)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert [h["epoch"] for h in history] == [0.0, 1.0, 2.0]
    assert [s for s, _ in steps] == list(range(3))  # 3 labelled / batch 2 -> 1 iteration per epoch
    assert history[0]["hist"] == 0.0 and history[0]["entropy"] == 0.0  # supervised-only epoch
    assert history[2]["hist"] > 0.0 and history[2]["entropy"] > 0.0
    assert not model_a.training
    other, _ = train_segmenter(data, 3, SegTrainConfig(**{**config.to_dict(), "seed": 4}))
    key = "decoder.fc2.2.weight"
    assert not torch.equal(other.state_dict()[key], state_a[key])


def test_train_segmenter_validates_inputs() -> None:
    images, labels, _ = toy_category(2)
    data = prepare_data(images, labels, None, None, 64)
    with pytest.raises(ValueError, match="outside"):
        train_segmenter(data, 2, SegTrainConfig(image_size=64, epochs=1, **TINY))
    with pytest.raises(ValueError, match="batch sizes"):
        train_segmenter(data, 3, SegTrainConfig(batch_size_labeled=1, **TINY))
    with pytest.raises(ValueError, match="image_size 32"):
        train_segmenter(data, 3, SegTrainConfig(image_size=32, epochs=1, **TINY))
