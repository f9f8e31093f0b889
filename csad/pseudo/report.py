"""Quality report of the pseudo-labels: Hungarian mIoU against the synthetic ``component_gt`` and a picture grid.

``component_gt`` exists only for the synthetic benchmark; it is read here to SCORE pseudo-labels, never to make them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from csad.data.loco import ImageRecord, LocoCategory, read_image
from csad.io import read_json, read_label_png
from csad.pseudo.score import hungarian_miou, instance_ceiling_pairs
from csad.pseudo.store import read_map
from csad.viz import colorize, tile_grid


def component_gt_dir(category: LocoCategory) -> Path | None:
    """Return the category's ``component_gt`` folder, or None for datasets without one (e.g. real MVTec LOCO)."""
    folder = category.root / "component_gt"
    return folder if (folder / "train").is_dir() and (category.root / "component_classes.json").is_file() else None


def pseudo_label_quality(
    category: LocoCategory,
    labels_dir: Path,
    labeled: Sequence[str],
    num_classes: int,
    instances_dir: Path | None = None,
) -> dict[str, Any]:
    """Return the Hungarian mIoU of the pseudo-label maps of the ``labeled`` train keys against component_gt and,
    with ``instances_dir`` (the refine stage's ``instances/<stem>.png``), the ``instance_ceiling_miou`` of the same
    images (:func:`csad.pseudo.score.instance_ceiling_pairs`: the best mIoU any clustering of those instances could
    reach; instance maps of another size are resized to the GT's, nearest neighbour).

    Returns an empty dict when the dataset has no component_gt.
    """
    gt_dir = component_gt_dir(category)
    if gt_dir is None:
        return {}
    n_gt = len(read_json(category.root / "component_classes.json")) - 1
    by_key = category.by_key()

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for key in labeled:
            rec = by_key[key]
            yield read_map(labels_dir, rec.stem, "filter"), read_label_png(gt_dir / key)

    result = hungarian_miou(pairs(), num_classes, n_gt)
    names = {v: k for k, v in read_json(category.root / "component_classes.json").items()}
    ceiling: dict[str, Any] = {}
    if instances_dir is not None:

        def instance_pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for key in labeled:
                gt = read_label_png(gt_dir / key)
                inst = read_map(instances_dir, by_key[key].stem, "refine")
                if inst.shape != gt.shape:
                    inst = cv2.resize(inst, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
                yield inst, gt

        best = hungarian_miou(instance_ceiling_pairs(instance_pairs(), n_gt), n_gt, n_gt)
        ceiling["instance_ceiling_miou"] = round(float(best["miou"]), 4)
    return {
        "miou": round(float(result["miou"]), 4),
        "per_class_iou": {names[int(c)]: round(float(v), 4) for c, v in result["per_class"].items()},
        "matching": {names[int(c)]: (None if p is None else int(p)) for c, p in result["matching"].items()},
        "gt_classes": n_gt,
        "absent_gt_classes": [names[int(c)] for c in result["absent_gt_classes"]],
        "evaluated_images": len(labeled),
        **ceiling,
    }


def pseudo_label_grid(records: Sequence[ImageRecord], labels_dir: Path, labeled: set[str], n: int = 8) -> np.ndarray:
    """Return a picture: ``n`` train images (evenly spread) each followed by its pseudo-label map (fixed palette)."""
    picks = [records[i] for i in np.linspace(0, len(records) - 1, min(n, len(records))).round().astype(int)]
    tiles = []
    for rec in picks:
        tiles.append((rec.stem, read_image(rec.path)))
        tag = "labelled" if rec.key in labeled else "unlabelled"
        tiles.append((f"{rec.stem} {tag}", colorize(read_map(labels_dir, rec.stem, "filter"))))
    return tile_grid(tiles, columns=4)
