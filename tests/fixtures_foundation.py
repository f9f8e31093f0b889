"""Builders of tiny randomly initialised foundation models for the tests, all offline: a SAM of the ``tiny``
architecture (:data:`csad.foundation.sam.SAM_MODEL_TYPES`), a BERT text encoder folder and a small Grounding DINO
(stock Swin-T backbone, which the package cannot shrink; 1 encoder and 1 decoder layer, 20 queries, feed-forward
width 64). Callers skip first when segment-anything or groundingdino-py (with transformers) is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from csad.foundation.groundingdino import groundingdino_architecture, stock_config_path
from csad.foundation.sam import sam_architecture

#: Overrides of the stock GroundingDINO_SwinT_OGC config for the small test model.
SMALL_OVERRIDES: dict[str, Any] = {
    "enc_layers": 1,
    "dec_layers": 1,
    "num_queries": 20,
    "dim_feedforward": 64,
    "use_checkpoint": False,
    "use_transformer_ckpt": False,
}

#: Words of the offline BERT's vocabulary besides the special tokens and ". ?".
DEFAULT_WORDS: tuple[str, ...] = (
    "-",
    "a",
    "the",
    "of",
    "apple",
    "orange",
    "banana",
    "container",
    "bag",
    "zip",
    "lock",
    "pin",
    "screw",
    "bottle",
    "juice",
    "cable",
)


def write_offline_bert(
    folder: str | Path,
    hidden_size: int = 32,
    layers: int = 1,
    heads: int = 2,
    seed: int = 0,
    words: Sequence[str] = DEFAULT_WORDS,
) -> Path:
    """Return ``folder`` after writing a tiny random BERT into it (vocab.txt, tokenizer files, config, weights).

    The vocabulary holds [PAD] [UNK] [CLS] [SEP] [MASK] . ? and ``words``; Grounding DINO needs "." and "?".
    For tests only: it lets Grounding DINO build offline.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?"]
    vocab += [w for w in dict.fromkeys(words) if w not in vocab]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(folder)
    return folder


def write_small_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """Return ``path`` after writing the stock SwinT_OGC config followed by ``overrides`` (default: the small test
    model of :data:`SMALL_OVERRIDES`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [stock_config_path().read_text(encoding="utf-8"), "", "# small test model"]
    lines += [f"{k} = {v!r}" for k, v in (SMALL_OVERRIDES if overrides is None else overrides).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_small_groundingdino(folder: str | Path, bert_path: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Return (config, checkpoint) paths of a small randomly initialised Grounding DINO written to ``folder``.

    The checkpoint mimics the official file: the state dict under key "model". For tests only.
    """
    folder = Path(folder)
    config = write_small_config(folder / "groundingdino_small.py")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = groundingdino_architecture(config, Path(bert_path), "cpu")
    checkpoint = folder / "groundingdino_small.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    return config, checkpoint


def save_tiny_sam(path: str | Path, seed: int = 0) -> Path:
    """Return ``path`` after writing the state dict of a randomly initialised ``tiny`` SAM (seeded) to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = sam_architecture("tiny")
    torch.save(sam.state_dict(), path)
    return path
