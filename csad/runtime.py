"""Where and how the networks run: the torch device and CUDA determinism (params section ``runtime``)."""

from __future__ import annotations

import torch

from csad.errors import CsadError


def resolve_device(name: str) -> torch.device:
    """Return the torch device of ``name`` (``auto``: cuda when available, else cpu)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_device(device: str) -> str:
    """Return ``device`` when PyTorch can use it here (``auto`` is always usable).

    Raises:
        CsadError: an unknown device name, or a CUDA device on a machine without one.
    """
    if device == "auto":
        return device
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise CsadError(f"unknown device {device!r}: use cpu, cuda or cuda:<index>") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise CsadError(f"device {device!r}: no CUDA GPU is visible on this machine; use cpu")
    return device


#: cuBLAS workspace setting that makes cuBLAS matrix products deterministic (CUDA >= 10.2; PyTorch
#: "Reproducibility" notes). It must be in the environment before the first cuBLAS call.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def set_deterministic(device: str | torch.device, enabled: bool = True) -> bool:
    """Make CUDA training and inference deterministic (param ``runtime.deterministic``); return whether it did.

    On a CUDA device with ``enabled``: ``torch.use_deterministic_algorithms(True)`` (an operation without a
    deterministic CUDA kernel raises instead of silently varying), cuDNN's deterministic kernels with autotuning off
    (``cudnn.deterministic = True``, ``cudnn.benchmark = False``) and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (set
    unless the environment already sets it), as the PyTorch reproducibility notes prescribe. Identical inputs
    then give bit-identical checkpoints and maps run after run on the same GPU model and software, which the
    shared DVC cache relies on. The cost is speed: deterministic cuDNN kernels and no autotuning are slower for
    some convolutions (PyTorch documents no fixed figure; it depends on the model and GPU).

    On the CPU nothing is changed (``False`` is returned): PyTorch's CPU kernels used here are deterministic for a
    fixed thread count already, and the global flag would only add errors for CPU operations without a
    deterministic variant.

    Args:
        device: the device the stage runs on (``"cuda"``, ``"cuda:1"``, ``"cpu"``; not ``"auto"``).
        enabled: the ``runtime.deterministic`` param.
    """
    import os

    if not enabled or torch.device(device).type != "cuda":
        return False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return True
