"""The text prompt of a category (CSAD section 3.1, "image tagging"): a tag list from params or RAM++ tags.

The paper tags the training images with RAM/RAM++ and refines the tags by hand; the released code hard-codes the
refined lists, which are our defaults for the five MVTec LOCO categories (params ``tag.tags``). The ``ram`` backend
runs RAM++ from the ``ram`` package of recognize-anything, which is not on PyPI: a user installs it from source and
sets ``tag.ram.checkpoint``.

>>> tags_from_params(["almond", "apple", "almond"]).prompt
'almond . apple .'
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from csad.errors import CheckpointError, CsadError

log = logging.getLogger(__name__)


@dataclass
class TagResult:
    """The final prompt and where each tag came from."""

    prompt: str
    tags: list[dict[str, Any]] = field(default_factory=list)  # {"tag", "source", "frequency"?}
    backend: str = "params"

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-ready record written by the ``tag`` stage."""
        return {"backend": self.backend, "prompt": self.prompt, "tags": self.tags}


def make_prompt(tags: Sequence[str]) -> str:
    """Return the GroundingDINO caption ``"a . b ."`` for ``tags`` (lower-cased, stripped, duplicates dropped)."""
    seen: list[str] = []
    for tag in tags:
        t = " ".join(str(tag).lower().replace(".", " ").split())
        if t and t not in seen:
            seen.append(t)
    return " . ".join(seen) + (" ." if seen else "")


def tags_from_params(tags: Sequence[str]) -> TagResult:
    """Return the prompt made of the tag list given in params (the paper's refined lists by default)."""
    prompt = make_prompt(tags)
    if not prompt:
        raise CsadError("tag.tags: the tag list of this category is empty; add the names of its components")
    kept = prompt.removesuffix(" .").split(" . ")
    return TagResult(prompt, [{"tag": t, "source": "params"} for t in kept], "params")


def tags_from_ram(
    images: Sequence[np.ndarray],
    checkpoint: str | None,
    image_size: int = 384,
    min_frequency: float = 0.5,
    exclude: Sequence[str] = (),
    extra: Sequence[str] = (),
    device: str = "cpu",
) -> TagResult:
    """Return the tags RAM++ finds in at least ``min_frequency`` of ``images``, minus ``exclude``, plus ``extra``.

    Raises:
        CsadError: the ``ram`` package is not installed or ``tag.ram.checkpoint`` is not set / missing.
    """
    try:
        import torch
        from PIL import Image
        from ram import get_transform, inference_ram  # type: ignore[import-not-found]
        from ram.models import ram_plus  # type: ignore[import-not-found]
    except ImportError as err:
        raise CsadError(
            "tag.backend is 'ram' but the recognize-anything package (module 'ram') is not installed; it is not on "
            "PyPI: install it from its source repository, or set tag.backend: params"
        ) from err
    if not checkpoint or not Path(checkpoint).is_file():
        raise CheckpointError(
            f"RAM++ checkpoint {checkpoint} not found: set tag.ram.checkpoint to a local ram_plus_swin_large_14m.pth"
        )
    model = ram_plus(pretrained=str(checkpoint), image_size=image_size, vit="swin_l").eval().to(device)
    transform = get_transform(image_size=image_size)
    counts: Counter[str] = Counter()
    with torch.no_grad():
        for image in tqdm(images, desc="RAM++ tags", unit="img"):
            x = transform(Image.fromarray(image)).unsqueeze(0).to(device)
            english = inference_ram(x, model)[0]
            counts.update({t.strip().lower() for t in english.split("|") if t.strip()})
    n = max(1, len(images))
    excluded = {e.lower() for e in exclude}
    tags = [
        {"tag": t, "source": "ram", "frequency": round(c / n, 4)}
        for t, c in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))
        if c / n >= min_frequency and t not in excluded
    ]
    tags += [{"tag": t, "source": "params"} for t in extra if t.lower() not in {x["tag"] for x in tags}]
    if not tags:
        raise CsadError(
            f"RAM++ kept no tag (min_frequency {min_frequency}); lower tag.ram.min_frequency or add tag.ram.extra"
        )
    log.info("RAM++ kept %d of %d tags", len(tags), len(counts))
    return TagResult(make_prompt([t["tag"] for t in tags]), tags, "ram")
