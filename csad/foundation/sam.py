"""Segment Anything (SAM) built from the segment-anything package, weights loaded from a local file only.

The paper and the released code use **SAM-HQ ViT-H** (``sam_hq_vit_h.pth``). We use the stock SAM of
``segment-anything`` on PyPI (``sam_vit_h_4b8939.pth``): SAM-HQ is not on PyPI. SAM-HQ is a drop-in replacement
(same predictor and automatic-mask-generator API) for a user who installs it; it is not implemented here, and a
SAM-HQ checkpoint given to :func:`build_sam` is rejected with a message saying so.

Besides the stock ``vit_b``/``vit_l``/``vit_h`` architectures there is a ``tiny`` one (128 px input, 2-block ViT of
width 32, one-block two-way transformer). It exists only so tests can run the real :class:`SamPredictor` and
:class:`SamAutomaticMaskGenerator` in well under a second per image; its weights are random
(written by ``save_tiny_sam`` in ``tests/fixtures_foundation.py``).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch

from csad.errors import CheckpointError
from csad.foundation import missing_package, require_local_file

log = logging.getLogger(__name__)

#: File each model type is published as (named in error messages).
SAM_CHECKPOINT_FILES: dict[str, str] = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
    "tiny": "a tiny SAM state dict (tests/fixtures_foundation.py, save_tiny_sam)",
}

#: Architecture of each model type; keys not given take the stock value of ``_STOCK``.
_ARCHS: dict[str, dict[str, Any]] = {
    "vit_h": {"embed_dim": 1280, "depth": 32, "heads": 16, "global_attn": [7, 15, 23, 31]},
    "vit_l": {"embed_dim": 1024, "depth": 24, "heads": 16, "global_attn": [5, 11, 17, 23]},
    "vit_b": {"embed_dim": 768, "depth": 12, "heads": 12, "global_attn": [2, 5, 8, 11]},
    "tiny": {
        "img_size": 128,
        "embed_dim": 32,
        "depth": 2,
        "heads": 2,
        "global_attn": [1],
        "window": 4,
        "prompt_dim": 32,
        "mask_in_chans": 4,
        "decoder_depth": 1,
        "decoder_mlp": 64,
        "decoder_heads": 2,
        "iou_hidden": 32,
    },
}
_STOCK = {
    "img_size": 1024,
    "patch": 16,
    "window": 14,
    "prompt_dim": 256,
    "mask_in_chans": 16,
    "decoder_depth": 2,
    "decoder_mlp": 2048,
    "decoder_heads": 8,
    "iou_hidden": 256,
}
SAM_MODEL_TYPES: tuple[str, ...] = tuple(_ARCHS)


def import_segment_anything() -> Any:
    """Return the imported ``segment_anything`` package (FoundationMissingError if absent)."""
    try:
        import segment_anything
    except ImportError as err:
        raise missing_package("segment-anything", err) from err
    return segment_anything


def sam_architecture(model_type: str) -> torch.nn.Module:
    """Return a randomly initialised SAM of ``model_type`` ("vit_b", "vit_l", "vit_h" or "tiny"), in eval mode.

    The stock types are constructed exactly as ``segment_anything.build_sam`` does.
    """
    if model_type not in _ARCHS:
        raise ValueError(f"unknown SAM model type {model_type!r}: expected one of {', '.join(SAM_MODEL_TYPES)}")
    import_segment_anything()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    a = {**_STOCK, **_ARCHS[model_type]}
    embedding_size = a["img_size"] // a["patch"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=a["depth"],
            embed_dim=a["embed_dim"],
            img_size=a["img_size"],
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=a["heads"],
            patch_size=a["patch"],
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=a["global_attn"],
            window_size=a["window"],
            out_chans=a["prompt_dim"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=a["prompt_dim"],
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(a["img_size"], a["img_size"]),
            mask_in_chans=a["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=a["decoder_depth"],
                embedding_dim=a["prompt_dim"],
                mlp_dim=a["decoder_mlp"],
                num_heads=a["decoder_heads"],
            ),
            transformer_dim=a["prompt_dim"],
            iou_head_depth=3,
            iou_head_hidden_dim=a["iou_hidden"],
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    return sam


def load_tensor_file(path: Path, param: str) -> Any:
    """Return the object stored in the torch file ``path``, loaded with ``weights_only=True`` (tensors only).

    Raises:
        CheckpointError: the file is not a torch file, or it pickles objects other than tensors and containers.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} (param {param}) pickles objects other than tensors, and only tensors are loaded "
            f"(torch.load(weights_only=True)). If you trust the file, re-save its state dict once with "
            f"python -c \"import torch; torch.save(torch.load('{path}', weights_only=False)['model'], 'out.pth')\" "
            f"(drop ['model'] if the file is the state dict itself) and point {param} at out.pth. "
            f"Loader said: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} (param {param}) is not a readable torch checkpoint: {err}") from err


def is_state_dict(obj: Any) -> bool:
    """Return whether ``obj`` is a plain state dict (a non-empty mapping of str to tensors)."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def check_sam_checkpoint(model_type: str, checkpoint: str | Path | None, param: str) -> Path:
    """Return ``checkpoint`` as a Path after checking that ``model_type`` is known and the file exists.

    Raises:
        CheckpointError: unknown model type, or the checkpoint is unset or missing (the message names ``param``).
    """
    if model_type not in _ARCHS:
        raise CheckpointError(
            f"unknown SAM model type {model_type!r} (next to param {param}): "
            f"expected one of {', '.join(SAM_MODEL_TYPES)}"
        )
    return require_local_file(
        checkpoint,
        f"SAM checkpoint {checkpoint} not found: set {param} in params.yaml to a local sam_vit_h_4b8939.pth "
        f"(or the file for {model_type}: {SAM_CHECKPOINT_FILES[model_type]})",
    )


def build_sam(model_type: str, checkpoint: str | Path | None, param: str, device: str = "cpu") -> torch.nn.Module:
    """Return SAM of ``model_type`` with the weights of the local ``checkpoint`` (a plain state dict), in eval mode
    on ``device``.

    ``param`` is the params.yaml key that named the checkpoint; every error message names it.

    Raises:
        CheckpointError: the checkpoint is unset, missing, not a plain state dict, or does not fit ``model_type``.
        FoundationMissingError: segment-anything is not installed.
    """
    path = check_sam_checkpoint(model_type, checkpoint, param)
    expected = SAM_CHECKPOINT_FILES[model_type]
    state = load_tensor_file(path, param)
    if not is_state_dict(state):
        keys = list(state)[:5] if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(
            f"{path} (param {param}) is not a plain SAM state dict (a mapping of parameter names to tensors; "
            f"found {keys}): set {param} to {expected}"
        )
    if any("hf_token" in k or "compress_vit_feat" in k for k in state):
        raise CheckpointError(
            f"{path} (param {param}) is a SAM-HQ checkpoint; this project builds stock SAM (segment-anything): "
            f"set {param} to {expected}"
        )
    sam = sam_architecture(model_type)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path} (param {param}) does not fit SAM {model_type} ({first} ...): set {param} to {expected} "
            f"or change the model type"
        ) from err
    log.info("loaded SAM %s from %s", model_type, path)
    return sam.to(device)


def sam_predictor(sam: torch.nn.Module) -> Any:
    """Return a ``segment_anything.SamPredictor`` of ``sam``."""
    import_segment_anything()
    from segment_anything import SamPredictor

    return SamPredictor(sam)
