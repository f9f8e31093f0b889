"""Grounding DINO (groundingdino-py) built from local files only, and its box prediction (docs/method.md 2.2 steps 1-4).

Nothing is downloaded: the BERT text encoder is read from a local folder (``text_encoder_type`` is pointed at it)
and the detector weights from a local checkpoint loaded with ``torch.load(weights_only=True)``.

The tiny random BERT folder and small random Grounding DINO that the tests build offline are written by
``tests/fixtures_foundation.py`` (with :func:`stock_config_path` and :func:`groundingdino_architecture`).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csad.errors import CheckpointError
from csad.foundation import missing_package, require_local_file
from csad.foundation.sam import is_state_dict, load_tensor_file

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "groundingdino_swint_ogc.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_PARAMS = {"config": "config", "checkpoint": "checkpoint", "bert_path": "bert_path"}


def _groundingdino() -> Any:
    """Return the imported ``groundingdino`` package (FoundationMissingError if it or transformers is absent)."""
    try:
        import groundingdino
        import transformers  # noqa: F401
    except ImportError as err:
        raise missing_package("groundingdino-py (with transformers<5)", err) from err
    return groundingdino


def stock_config_path() -> Path:
    """Return the path of the GroundingDINO_SwinT_OGC.py config shipped with groundingdino-py."""
    gd = _groundingdino()
    return Path(gd.__file__).parent / "config" / "GroundingDINO_SwinT_OGC.py"


def groundingdino_architecture(config_path: Path, bert_path: Path, device: str) -> torch.nn.Module:
    """Return a randomly initialised Grounding DINO of ``config_path`` whose text encoder is the BERT folder."""
    _groundingdino()
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    # groundingdino prints ("final text_encoder_type: ..."); keep it out of stdout.
    with contextlib.redirect_stdout(io.StringIO()) as out:
        args = SLConfig.fromfile(str(config_path))
        args.text_encoder_type = str(bert_path)
        args.device = device
        model = build_model(args)
    if out.getvalue().strip():
        log.debug("groundingdino: %s", out.getvalue().strip())
    return model.eval()


def _extract_state_dict(obj: Any, path: Path, param: str) -> dict[str, torch.Tensor]:
    """Return the state dict in a loaded Grounding DINO checkpoint: ``obj["model"]`` (official file) or ``obj``
    itself, with a DataParallel ``module.`` prefix removed."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not is_state_dict(obj):
        keys = list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} (param {param}) holds neither a state dict nor one under key 'model' (found {keys}): "
            f"set {param} to {CHECKPOINT_FILE}"
        )
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def check_groundingdino_files(
    config_path: str | Path | None,
    checkpoint: str | Path | None,
    bert_path: str | Path | None,
    params: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Return the (config, checkpoint) paths after checking that they and the BERT folder exist.

    Raises:
        CheckpointError: a file or folder is unset or missing (the message names its param of ``params``).
    """
    names = {**DEFAULT_PARAMS, **(params or {})}
    if bert_path is None or str(bert_path) == "" or not Path(bert_path).is_dir():
        raise CheckpointError(
            f"BERT folder {bert_path} not found: set {names['bert_path']} in params.yaml to a local folder holding "
            f"bert-base-uncased (config.json, vocab.txt, model.safetensors or pytorch_model.bin); nothing is "
            f"downloaded"
        )
    config = stock_config_path() if config_path is None or str(config_path) == "" else Path(config_path)
    require_local_file(
        config,
        f"Grounding DINO config {config} not found: set {names['config']} in params.yaml to a "
        f"GroundingDINO_SwinT_OGC.py file (or leave it empty for the one shipped with groundingdino-py)",
    )
    message = f"Grounding DINO checkpoint {checkpoint} not found: set {names['checkpoint']} in params.yaml to a local "
    return config, require_local_file(checkpoint, message + CHECKPOINT_FILE)


def build_groundingdino(
    config_path: str | Path | None,
    checkpoint: str | Path | None,
    bert_path: str | Path | None,
    params: Mapping[str, str] | None = None,
    device: str = "cpu",
) -> torch.nn.Module:
    """Return Grounding DINO built from ``config_path`` (None: the stock SwinT_OGC config) with the weights of the
    local ``checkpoint`` and the local BERT folder ``bert_path`` as text encoder, in eval mode on ``device``.

    ``params`` maps "config", "checkpoint" and "bert_path" to the params.yaml keys that named them (for messages).
    Missing checkpoint keys are an error; unexpected ones (the official file has ``label_enc.weight``, unused at
    inference) are logged.

    Raises:
        CheckpointError: a file or folder is missing, or the checkpoint is unusable.
        FoundationMissingError: groundingdino-py or transformers is not installed.
    """
    names = {**DEFAULT_PARAMS, **(params or {})}
    config, path = check_groundingdino_files(config_path, checkpoint, bert_path, names)
    state = _extract_state_dict(load_tensor_file(path, names["checkpoint"]), path, names["checkpoint"])
    try:
        model = groundingdino_architecture(config, Path(bert_path), device)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot build Grounding DINO from config {config} ({names['config']}) with the BERT folder {bert_path} "
            f"({names['bert_path']}): {err}"
        ) from err
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} ({names['checkpoint']}) does not fit the model of {config} and {bert_path}: "
            f"{str(err).splitlines()[0]} ..."
        ) from err
    if result.missing_keys:
        raise CheckpointError(
            f"{path} ({names['checkpoint']}) lacks {len(result.missing_keys)} weights of the model of {config} "
            f"(e.g. {result.missing_keys[:3]}): set {names['checkpoint']} to {CHECKPOINT_FILE}"
        )
    if result.unexpected_keys:
        log.info("Grounding DINO checkpoint %s: ignored unused keys %s", path, result.unexpected_keys[:10])
    return model.to(device).eval()


def preprocess_caption(caption: str) -> str:
    """Return ``caption`` lower-cased and stripped, with "." appended if it does not end with one."""
    result = caption.lower().strip()
    return result if result.endswith(".") else result + "."


def resized_size(width: int, height: int, short_side: int = 800, max_size: int | None = 1333) -> tuple[int, int]:
    """Return (new_height, new_width) of RandomResize([short_side], max_size): short side to ``short_side`` unless
    the long side would exceed ``max_size``, aspect ratio kept (integer truncation as in groundingdino)."""
    size = short_side
    if max_size is not None:
        min_side, max_side = float(min(width, height)), float(max(width, height))
        if max_side / min_side * size > max_size:
            size = round(max_size * min_side / max_side)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _image_tensor(image: np.ndarray, short_side: int, max_size: int | None) -> torch.Tensor:
    """Return the (3, h, w) normalised Grounding DINO input of an RGB uint8 image (PIL bilinear resize)."""
    from PIL import Image

    height, width = image.shape[:2]
    new_h, new_w = resized_size(width, height, short_side, max_size)
    pil = Image.fromarray(image)
    if (new_h, new_w) != (height, width):
        pil = pil.resize((new_w, new_h), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _check_rgb(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")


def predict_boxes(
    model: torch.nn.Module,
    image_rgb_uint8: np.ndarray,
    caption: str,
    box_threshold: float,
    text_threshold: float,
    short_side: int = 800,
    max_size: int | None = 1333,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Return (boxes, phrases, scores) of the Grounding DINO detections of ``caption`` in the image.

    boxes: (n, 4) float32 xyxy in pixels of the original image; phrases: the caption tokens whose logit exceeds
    ``text_threshold``, decoded with the model's tokenizer; scores: (n,) float32 max token logit (sigmoid). Steps
    (docs/method.md 2.2 steps 1-4): resize (short side ``short_side``, long side <= ``max_size``), ImageNet
    normalisation, caption lower-cased/stripped/"."-terminated, queries kept when their max sigmoid logit >
    ``box_threshold``.
    """
    _check_rgb(image_rgb_uint8)
    height, width = image_rgb_uint8.shape[:2]
    caption = preprocess_caption(caption)
    device = next(model.parameters()).device
    x = _image_tensor(image_rgb_uint8, short_side, max_size).to(device)
    with torch.no_grad():
        outputs = model(x[None], captions=[caption])
    logits = outputs["pred_logits"].float().sigmoid()[0].cpu()  # (num_queries, max_text_len)
    boxes = outputs["pred_boxes"].float()[0].cpu()  # (num_queries, 4) normalised cxcywh
    best = logits.max(dim=1).values
    keep = best > box_threshold
    logits, boxes, best = logits[keep], boxes[keep], best[keep]

    tokenizer = model.tokenizer
    input_ids = tokenizer(caption)["input_ids"]
    phrases = []
    for logit in logits:
        positions = torch.nonzero(logit[: len(input_ids)] > text_threshold).flatten().tolist()
        phrases.append(tokenizer.decode([input_ids[i] for i in positions]))

    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    cx, cy, w, h = (boxes * scale).unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    return xyxy.numpy().astype(np.float32).reshape(-1, 4), phrases, best.numpy().astype(np.float32)
