"""LGST networks, training step, map normalisation and checkpoints (tiny sizes; paper sizes on the meta device)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from csad.errors import CheckpointError, ParamsError
from csad.lgst import (
    BackboneSpec,
    LgstBatch,
    LgstConfig,
    MapNormalizer,
    PenaltyDataError,
    anomaly_maps,
    build_lgst_model,
    config_from_params,
    hard_loss,
    lgst_losses,
    lgst_scores,
    load_lgst,
    save_lgst,
    subsample_quantile,
    teacher_statistics,
    train_lgst,
    upsample_map,
)
from csad.models.lgst import AutoEncoder, LocalStudent, TeacherHead, decoder_sizes, receptive_field

SPEC = BackboneSpec("resnet18", "none", seed=0)
TINY = LgstConfig(
    image_size=64,
    feat_size=16,
    channels=8,
    student_widths=(8, 16, 16),
    ae_base_dim=8,
    iterations=3,
    feature_batch_size=4,
    device="cpu",
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (72, 80, 3), dtype=np.uint8) for _ in range(4)]


@pytest.fixture(scope="module")
def trained(images: list[np.ndarray]):
    return train_lgst(images, TINY, SPEC, progress=False)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.lgst_state().items()}


# ---------------------------------------------------------------------------------------------------------------
# Networks


@pytest.mark.parametrize(("image_size", "feat_size"), [(256, 64), (256, 32), (128, 32)])
def test_cpu_profile_shapes(image_size: int, feat_size: int) -> None:
    x = torch.zeros(2, 3, image_size, image_size)
    with torch.no_grad():
        st, ae = LocalStudent((16, 32, 32), 24, feat_size)(x)
        a = AutoEncoder(16, 24, feat_size, image_size)(x)
    assert st.shape == ae.shape == a.shape == (2, 24, feat_size, feat_size)


def test_paper_shapes_on_meta_device() -> None:
    with torch.device("meta"):
        x = torch.empty(1, 3, 256, 256)
        st, ae = LocalStudent()(x)
        a = AutoEncoder()(x)
    assert st.shape == ae.shape == a.shape == (1, 512, 64, 64)
    head = TeacherHead(512 + 1024, 512, 64, seed=0)
    t = head({8: torch.zeros(1, 512, 32, 32), 16: torch.zeros(1, 1024, 16, 16)})
    assert t.shape == (1, 512, 64, 64)


def test_decoder_sizes() -> None:
    assert decoder_sizes(64) == decoder_sizes(56) == (3, 8, 15, 32, 63, 127)
    assert decoder_sizes(32) == (2, 4, 8, 16, 32, 64)
    assert list(decoder_sizes(4)) == sorted(decoder_sizes(4))


def test_receptive_field_is_33() -> None:
    assert receptive_field(LocalStudent((4, 8, 8), 4, 16)) == 33


def test_teacher_projection_is_frozen_seeded_and_has_bias() -> None:
    a, b, c = (TeacherHead(24, 8, 16, seed=s) for s in (0, 0, 1))
    assert not any(p.requires_grad for p in a.parameters())
    assert a.proj.bias is not None and a.proj.bias.abs().sum() > 0
    assert torch.equal(a.proj.weight, b.proj.weight) and torch.equal(a.proj.bias, b.proj.bias)
    assert not torch.equal(a.proj.weight, c.proj.weight)
    bound = 1 / 24**0.5  # PyTorch's default Conv2d init range
    assert a.proj.weight.abs().max() <= bound and a.proj.bias.abs().max() <= bound


# ---------------------------------------------------------------------------------------------------------------
# Losses and statistics


def test_hard_loss_on_hand_made_tensor() -> None:
    assert float(hard_loss(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), 0.5)) == pytest.approx(3.0)  # q = 2 -> {2, 3, 4}
    d = torch.arange(1000, dtype=torch.float32).reshape(2, 5, 10, 10)
    assert float(hard_loss(d, 0.999)) == pytest.approx(999.0)  # quantile 998.001 keeps only 999
    assert float(hard_loss(d, 0.99)) == pytest.approx(994.5)  # quantile 989.01 keeps 990..999


def test_subsampled_quantile_is_seeded_and_close() -> None:
    values = torch.rand(100_000, generator=torch.Generator().manual_seed(0))
    exact = float(torch.quantile(values, 0.9))
    draws = [float(subsample_quantile(values, 0.9, 10_000, torch.Generator().manual_seed(3))) for _ in range(2)]
    assert draws[0] == draws[1]
    assert draws[0] == pytest.approx(exact, abs=0.02)


def test_teacher_statistics_exact() -> None:
    feats = torch.randn(5, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 7
    mean, std = teacher_statistics(feats)
    ref = feats.permute(1, 0, 2, 3).reshape(3, -1)
    assert torch.allclose(mean, ref.mean(1), atol=1e-5)
    assert torch.allclose(std, ref.std(1, unbiased=False), atol=1e-5)
    mean2, std2 = teacher_statistics([feats[:2], feats[2:]])
    assert torch.allclose(mean, mean2) and torch.allclose(std, std2)


def test_one_training_step_lowers_the_loss() -> None:
    model = build_lgst_model(SPEC, 64, 16, 8, (8, 16, 16), 8, seed=0)
    model.teacher_std.fill_(0.1)
    gen = torch.Generator().manual_seed(0)
    x = model.normalize(torch.rand(2, 3, 64, 64, generator=gen))
    x_aug = model.normalize(torch.rand(2, 3, 64, 64, generator=gen))
    batch = LgstBatch(x, model.teacher(x), x_aug, model.teacher(x_aug))
    params = list(model.student.parameters()) + list(model.autoencoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    model.train()

    def loss() -> torch.Tensor:
        torch.manual_seed(0)  # same dropout masks for both evaluations
        return lgst_losses(model, batch, TINY)["loss"]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())


# ---------------------------------------------------------------------------------------------------------------
# Training, maps, checkpoints


def test_training_is_deterministic_and_leaves_the_projection(images: list[np.ndarray], trained) -> None:
    again = train_lgst(images, TINY, SPEC, progress=False)
    other = train_lgst(images, dataclasses.replace(TINY, seed=1), SPEC, progress=False)
    a, b, c = _state(trained), _state(again), _state(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["student.conv_st.weight"], c["student.conv_st.weight"])
    fresh = build_lgst_model(SPEC, 64, 16, 8, (8, 16, 16), 8, seed=TINY.seed)
    assert torch.equal(trained.head.proj.weight, fresh.head.proj.weight)
    assert torch.equal(trained.head.proj.bias, fresh.head.proj.bias)
    assert not torch.equal(trained.student.conv_st.weight, fresh.student.conv_st.weight)


def test_callback_gets_every_step(images: list[np.ndarray]) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    train_lgst(images[:1], dataclasses.replace(TINY, iterations=2), SPEC, callback=lambda s, v: seen.append((s, v)))
    assert [s for s, _ in seen] == [1, 2]
    assert {"loss", "st", "hard", "penalty", "ae", "stae", "lr"} <= set(seen[0][1])
    assert seen[0][1]["penalty"] == 0.0


def test_map_normalisation_hand_computed(caplog: pytest.LogCaptureFixture) -> None:
    local = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10)  # q0.9 = 89.1, q0.995 = 98.505
    with caplog.at_level(logging.WARNING):
        norm = MapNormalizer.fit(local, torch.full((1, 10, 10), 3.0))
    assert norm.local_a == pytest.approx(89.1) and norm.local_b == pytest.approx(98.505)
    assert "global" in caplog.text and "only shifted" in caplog.text
    n_l, n_g = norm.normalize(torch.tensor([89.1, 98.505, 0.0]), torch.tensor([3.0, 5.0]))
    assert n_l.tolist() == pytest.approx([0.0, 0.1, 0.1 * -89.1 / 9.405], abs=1e-6)
    assert n_g.tolist() == pytest.approx([0.0, 0.2])  # degenerate quantiles: range counts as 1, 0.1 (M - q_a)
    assert MapNormalizer.from_tensor(norm.to_tensor()) == norm


def test_maps_scores_and_save_load_round_trip(tmp_path: Path, images: list[np.ndarray], trained) -> None:
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    local, glob = anomaly_maps(trained, x)
    assert local.shape == glob.shape == (3, 16, 16) and (local >= 0).all()
    norm = MapNormalizer.fit(local, glob)
    scores, maps = lgst_scores(trained, norm, images, batch_size=3)
    assert scores.shape == (4,) and maps.shape == (4, 16, 16)
    assert np.all(scores >= maps.max(axis=(1, 2)) - 0.05)

    path = tmp_path / "models" / "lgst.pt"
    save_lgst(path, trained, norm, TINY)
    payload = torch.load(path, weights_only=True)
    assert torch.equal(payload["state"]["head.proj.bias"], trained.head.proj.bias)
    assert not any(k.startswith("backbone.") for k in payload["state"])
    model, norm2, config = load_lgst(path)
    assert config == TINY and norm2 == norm and model.spec == SPEC
    assert not any(p.requires_grad for p in model.head.parameters())
    l2, g2 = anomaly_maps(model, x)
    assert torch.equal(local, l2) and torch.equal(glob, g2)
    scores2, maps2 = lgst_scores(model, norm2, images, batch_size=2)
    np.testing.assert_allclose(scores2, scores, rtol=1e-4, atol=1e-5)  # other batch size
    np.testing.assert_allclose(maps2, maps, rtol=1e-4, atol=1e-5)

    payload["state"]["head.proj.bias"] = torch.zeros_like(payload["state"]["head.proj.bias"])
    torch.save(payload, tmp_path / "nobias.pt")
    l3, _ = anomaly_maps(load_lgst(tmp_path / "nobias.pt")[0], x)
    assert not torch.equal(local, l3)  # the bias matters (the released export dropped it)

    payload["backbone"] = payload["backbone"].replace('"seed": 0', '"seed": 5')
    torch.save(payload, tmp_path / "other_backbone.pt")
    with pytest.raises(CheckpointError, match="not the one it was trained with"):
        load_lgst(tmp_path / "other_backbone.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_lgst(tmp_path / "missing.pt")


def test_upsample_map() -> None:
    m = np.arange(16, dtype=np.float32).reshape(4, 4)
    up = upsample_map(m, (6, 10))
    assert up.shape == (6, 10) and up.dtype == np.float32
    assert upsample_map(np.stack([m, m]), (8, 8)).shape == (2, 8, 8)
    assert up.min() >= m.min() and up.max() <= m.max()


# ---------------------------------------------------------------------------------------------------------------
# Penalty images and params


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_penalty_folder_errors_name_the_param(tmp_path: Path, images: list[np.ndarray], make: str) -> None:
    folder = tmp_path / "penalty"
    if make == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no images here")
    with pytest.raises(PenaltyDataError, match=r"lgst\.penalty_dir"):
        train_lgst(images, dataclasses.replace(TINY, penalty_dir=str(folder)), SPEC, progress=False)


def test_penalty_folder_is_used(tmp_path: Path, images: list[np.ndarray]) -> None:
    folder = tmp_path / "penalty" / "n01"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "a.JPEG"), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "b.png"), rng.integers(0, 256, (16, 16), dtype=np.uint8))
    seen: list[float] = []
    config = dataclasses.replace(TINY, iterations=2, penalty_dir=str(tmp_path / "penalty"))
    train_lgst(images[:2], config, SPEC, callback=lambda s, v: seen.append(v["penalty"]), progress=False)
    assert len(seen) == 2 and all(v > 0 for v in seen)


def test_config_from_params() -> None:
    config, spec = config_from_params(
        {"backbone": {"name": "resnet18", "weights": "none", "seed": 3}, "student_widths": [8, 16, 16], "seed": 2}
    )
    assert spec == BackboneSpec("resnet18", "none", seed=3, param="lgst.backbone.weights")
    assert config.student_widths == (8, 16, 16) and config.seed == 2
    with pytest.raises(ParamsError, match=r"lgst\.iteration"):
        config_from_params({"iteration": 5})
    with pytest.raises(ParamsError, match="loss_weights"):
        config_from_params({"loss_weights": {"st": 1.0}})
