"""Write a synthetic category to disk in the MVTec LOCO AD layout.

``<out>/train/good/000.png``, ``validation/good``, ``test/{good,logical_anomalies,structural_anomalies}``,
``ground_truth/<type>/<idx>/000.png ...`` (one PNG per defect region, valued with the defect's pixel value),
``defects_config.json``, plus ``component_gt/<split>/<type>/<idx>.png`` (true component class per pixel, for
scoring pseudo-labels and segmentation only), ``component_classes.json`` and ``manifest.parquet`` (one row per
image: key, defect, the scene facts as JSON).

The whole folder is built in a temporary sibling and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from csad.data.synth.base import CategoryRenderer, DefectSpec, Sample
from csad.data.synth.registry import get_renderer
from csad.io import atomic_dir, write_json, write_png

log = logging.getLogger(__name__)

COUNT_KEYS = ("train", "validation", "test_good", "test_logical", "test_structural")
_SPLIT_CODES = {"train": 1, "validation": 2, "test_good": 3, "test_logical": 4, "test_structural": 5}


@dataclass
class CategorySummary:
    """What :func:`generate_category` wrote: image counts per folder and the pictures for a contact sheet."""

    counts: dict[str, int]
    defects: list[DefectSpec]
    examples: list[tuple[str, Sample]] = field(default_factory=list)


def pixel_values(specs: list[DefectSpec]) -> dict[str, int]:
    """Return the GT pixel value of every defect: 255, 254, ... in declaration order (as MVTec LOCO does)."""
    if len(specs) > 200:
        raise ValueError("too many defect types for 8-bit pixel values")
    return {spec.name: 255 - i for i, spec in enumerate(specs)}


def image_rng(seed: int, category: str, split: str, index: int) -> np.random.Generator:
    """Return the generator of one image: independent of generation order, stable across runs and platforms."""
    return np.random.default_rng([seed, zlib.crc32(category.encode()), _SPLIT_CODES[split], index])


def defect_schedule(renderer: CategoryRenderer, kind: str, n: int) -> list[str]:
    """Return the defect of each of ``n`` anomalous images of ``kind``: every type in turn, so all appear."""
    names = renderer.defect_names(kind)  # type: ignore[arg-type]
    return [names[i % len(names)] for i in range(n)]


def generate_category(
    category: str | CategoryRenderer,
    out_dir: Path | str,
    image_size: int,
    seed: int,
    counts: Mapping[str, int],
    progress: bool = True,
    n_examples_good: int = 4,
) -> CategorySummary:
    """Render one category into ``out_dir`` (replacing it atomically); return what was written.

    Args:
        category: a synthetic category name or renderer.
        out_dir: the category folder to create, e.g. ``data/datasets/synthloco/pushpins``.
        image_size: side of the square images in pixels (>= 32).
        seed: the dataset seed; every image has its own generator derived from it.
        counts: images per folder, keys ``train, validation, test_good, test_logical, test_structural``.
        progress: show a tqdm bar.
        n_examples_good: how many good images to keep in memory for the contact sheet.
    """
    renderer = get_renderer(category) if isinstance(category, str) else category
    unknown = set(counts) - set(COUNT_KEYS)
    if unknown:
        raise ValueError(f"unknown synth count keys {sorted(unknown)}; expected {', '.join(COUNT_KEYS)}")
    n = {k: int(counts.get(k, 0)) for k in COUNT_KEYS}
    if n["train"] < 1 or n["validation"] < 1:
        raise ValueError("synth counts: train and validation need at least one image each")
    if any(v < 0 for v in n.values()):
        raise ValueError(f"synth counts must be >= 0, got {n}")
    if image_size < 32:
        raise ValueError(f"synth image_size must be >= 32, got {image_size}")

    specs = renderer.defect_specs(image_size)
    values = pixel_values(specs)
    jobs: list[tuple[str, str, str, int, str | None]] = []  # (count key, split folder, type, index, defect)
    jobs += [("train", "train", "good", i, None) for i in range(n["train"])]
    jobs += [("validation", "validation", "good", i, None) for i in range(n["validation"])]
    jobs += [("test_good", "test", "good", i, None) for i in range(n["test_good"])]
    for key, kind, type_ in (
        ("test_logical", "logical", "logical_anomalies"),
        ("test_structural", "structural", "structural_anomalies"),
    ):
        jobs += [(key, "test", type_, i, d) for i, d in enumerate(defect_schedule(renderer, kind, n[key]))]

    summary = CategorySummary(counts={}, defects=specs)
    seen_defects: set[str] = set()
    manifest = []
    with atomic_dir(out_dir) as tmp:
        for key, split, type_, i, defect in tqdm(jobs, desc=f"synth {renderer.name}", disable=not progress, unit="img"):
            sample = renderer.render(image_rng(seed, renderer.name, key, i), image_size, defect)
            name = f"{i:03d}.png"
            rel = f"{split}/{type_}/{name}"
            write_png(tmp / rel, sample.image)
            write_png(tmp / "component_gt" / rel, sample.component_gt)
            if defect is not None:
                if not sample.defect_masks:
                    raise RuntimeError(f"{renderer.name}: defect {defect} rendered without a ground-truth region")
                for j, mask in enumerate(sample.defect_masks):
                    gt = np.where(mask, np.uint8(values[defect]), np.uint8(0)).astype(np.uint8)
                    write_png(tmp / "ground_truth" / type_ / f"{i:03d}" / f"{j:03d}.png", gt)
            summary.counts[f"{split}/{type_}"] = summary.counts.get(f"{split}/{type_}", 0) + 1
            manifest.append(
                {
                    "key": rel,
                    "split": split,
                    "type": type_,
                    "defect": defect or "good",
                    "facts": json.dumps(sample.facts, sort_keys=True, default=_jsonable),
                }
            )
            if (defect is None and split == "train" and i < n_examples_good) or (
                defect is not None and defect not in seen_defects
            ):
                summary.examples.append((defect or "good", sample))
                if defect is not None:
                    seen_defects.add(defect)
        write_json(
            tmp / "defects_config.json",
            [
                {
                    "defect_name": s.name,
                    "pixel_value": values[s.name],
                    "saturation_threshold": s.saturation,
                    "relative_saturation": s.relative,
                }
                for s in specs
            ],
        )
        write_json(
            tmp / "component_classes.json",
            {"background": 0} | {c: k for k, c in enumerate(renderer.component_classes, start=1)},
        )
        pd.DataFrame(manifest).to_parquet(tmp / "manifest.parquet", index=False)
    log.info("wrote %s: %s", out_dir, summary.counts)
    return summary


def _jsonable(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} in scene facts")
