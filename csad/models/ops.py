"""Tensor operations shared by the trained networks.

:func:`resize_bilinear` is ``F.interpolate(..., mode="bilinear", align_corners=False)`` that stays deterministic
when it is differentiated on a GPU: PyTorch's CUDA backward of bilinear interpolation accumulates with atomic adds,
has no deterministic variant and raises under ``torch.use_deterministic_algorithms(True)`` (PyTorch
documentation of that function). Bilinear resizing is separable and linear, so it is also two small matrix
products (rows, then columns) whose backward is deterministic; that path is taken only on CUDA with deterministic
algorithms on (``runtime.deterministic``), so CPU results stay bit-identical to ``F.interpolate``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def interpolation_matrix(n_out: int, n_in: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Return the (n_out, n_in) matrix of 1-D linear interpolation with half-pixel centres (align_corners=False).

    Row i holds the two weights of output sample i: source coordinate ``(i + 0.5) * n_in / n_out - 0.5``,
    clamped at 0 below, as PyTorch's ``upsample_bilinear2d`` computes it (no antialiasing).
    """
    scale = n_in / n_out
    src = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo.to(torch.float64)
    mat = torch.zeros(n_out, n_in, device=device, dtype=torch.float64)
    rows = torch.arange(n_out, device=device)
    mat[rows, lo] += 1.0 - frac
    mat[rows, hi] += frac
    return mat.to(dtype)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int] | list[int] | torch.Size) -> torch.Tensor:
    """Return ``x`` (B, C, H, W) resized to ``size`` (h, w) by bilinear interpolation (align_corners=False).

    Equal to ``F.interpolate(x, size, mode="bilinear", align_corners=False)`` (to float rounding on the
    matrix-product path), and deterministic in its backward on CUDA when deterministic algorithms are on.
    """
    h, w = int(size[0]), int(size[1])
    if not (x.is_cuda and torch.are_deterministic_algorithms_enabled()):
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return resize_bilinear_matmul(x, (h, w))


def resize_bilinear_matmul(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Return ``x`` (..., H, W) resized to ``size`` (h, w) as ``rows @ x @ cols.T`` (see :func:`resize_bilinear`)."""
    h, w = size
    if tuple(x.shape[-2:]) == (h, w):
        return x
    rows = interpolation_matrix(h, x.shape[-2], x.device, x.dtype)
    cols = interpolation_matrix(w, x.shape[-1], x.device, x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.T)
