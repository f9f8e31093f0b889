"""Numerics: normalisers never divide by a rounding-error spread; CUDA determinism switch; deterministic resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from csad.lgst.maps import MapNormalizer
from csad.models.ops import resize_bilinear, resize_bilinear_matmul
from csad.normalize import SPREAD_FLOOR, safe_spread, safe_spread_tensor
from csad.runtime import CUBLAS_WORKSPACE_CONFIG, set_deterministic
from csad.scoring.patch_hist import TrimmedNormalizer


def test_trimmed_normalisation_does_not_blow_up_a_rounding_error_std() -> None:
    norm = TrimmedNormalizer(0.2, 0.8).fit(np.array([0.1, 0.1, 0.1]))
    assert 0.0 < norm.std < 1e-15  # the rounding-error spread that used to be divided by
    out = norm.transform(np.array([0.1 + 1e-6]))
    assert out[0] == pytest.approx(1e-6, abs=1e-9)  # shifted only, not 7e10


def test_trimmed_normalisation_still_scales_real_spreads() -> None:
    norm = TrimmedNormalizer(0.0, 1.0).fit(np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    assert norm.transform(np.array([2.0 + norm.std]))[0] == pytest.approx(1.0)


def test_lgst_map_normaliser_floors_the_quantile_range() -> None:
    flat = torch.full((2, 4, 4), 0.5)
    norm = MapNormalizer.fit(flat, flat + 1e-9 * torch.arange(32).view(2, 4, 4))
    local, glob = norm.normalize(flat + 1e-6, flat + 1e-6)
    assert float(local.abs().max()) < 1e-5 and float(glob.abs().max()) < 1e-5


def test_teacher_std_floor_leaves_constant_channels_unscaled() -> None:
    std = torch.tensor([0.0, 1e-12, SPREAD_FLOOR, 0.5, float("nan")])
    assert safe_spread_tensor(std).tolist()[:4] == [1.0, 1.0, 1.0, 0.5]
    assert safe_spread_tensor(std)[4] == 1.0
    assert safe_spread(2e-3) == 2e-3 and safe_spread(float("inf")) == 1.0


def test_determinism_switch_touches_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    assert set_deterministic("cpu", True) is False
    assert torch.are_deterministic_algorithms_enabled() == before
    assert set_deterministic("cuda", False) is False
    try:
        assert set_deterministic("cuda:0", True) is True  # sets flags only: no GPU needed
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic = False


@pytest.mark.parametrize(("src", "dst"), [((4, 4), (16, 16)), ((5, 7), (3, 11)), ((1, 1), (6, 6)), ((64, 64), (8, 8))])
def test_matrix_resize_equals_bilinear_interpolate_and_its_gradient(src: tuple, dst: tuple) -> None:
    x = torch.randn(2, 3, *src, dtype=torch.float64, requires_grad=True)
    ref = F.interpolate(x, size=dst, mode="bilinear", align_corners=False)
    out = resize_bilinear_matmul(x, dst)
    assert torch.allclose(out, ref, atol=1e-12)
    weights = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    (g_out,) = torch.autograd.grad((out * weights).sum(), x)
    assert torch.allclose(g_out, g_ref, atol=1e-12)
    assert torch.equal(resize_bilinear(x, dst), ref)  # on the CPU the plain interpolate runs
