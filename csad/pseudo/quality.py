"""Quality of the pseudo-labels against ground-truth component maps: mIoU under the best one-to-one class matching
(:func:`hungarian_miou`), its report on a category's synthetic ``component_gt`` (:func:`pseudo_label_quality`) and a
picture grid (:func:`pseudo_label_grid`).

``component_gt`` exists only for the synthetic benchmark; it is read here to SCORE pseudo-labels, never to make them.

Pseudo-label class numbers are arbitrary, so every predicted class 1..n_pred is matched to at most one
ground-truth class 1..n_gt by the Hungarian algorithm (scipy's ``linear_sum_assignment``) maximising the total IoU
of a confusion matrix accumulated over all images. Background (0) is never matched, but its pixels still count:
a GT pixel predicted 0 is a miss, a predicted pixel on GT 0 a false positive.

>>> import numpy as np
>>> gt = np.array([[1, 1, 2, 2]])
>>> result = hungarian_miou([(np.array([[2, 2, 1, 1]]), gt)], n_pred=2, n_gt=2)
>>> result["miou"], result["matching"]
(1.0, {1: 2, 2: 1})
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from csad.data.loco import ImageRecord, LocoCategory, read_image
from csad.imaging import resize_label
from csad.io import read_json, read_label_png
from csad.pseudo.store import read_map
from csad.viz import colorize, tile_grid


def hungarian_miou(pairs: Iterable[tuple[np.ndarray, np.ndarray]], n_pred: int, n_gt: int) -> dict[str, Any]:
    """Return the Hungarian-matched mIoU of pseudo-label maps against ground-truth component maps.

    Args:
        pairs: (pseudo-label map with values 0..n_pred, GT component map with values 0..n_gt) per image, each pair
            of one shape; consumed once, so a generator keeps only one image in memory.
        n_pred: number of predicted classes (0 = background not counted).
        n_gt: number of GT classes (0 = background not counted).

    Returns:
        ``{"miou": float, "per_class": {gt: iou}, "matching": {gt: pred or None}, "n_pred": int, "n_gt": int}``.
        ``miou`` is the mean IoU over GT classes 1..n_gt, an unmatched GT class counting 0. A GT class whose best
        assignment has IoU 0 is reported as unmatched (None). A GT class with no pixel in any pair cannot be
        scored: it is left out of the mean and listed in ``absent_gt_classes``.
        With ``n_gt == 0`` there is nothing to recover: ``miou`` is 1.0 if ``n_pred == 0`` (both agree that there
        are no classes) and 0.0 otherwise (every predicted class is spurious), never NaN.

    Raises:
        ValueError: negative class counts, a pair of two shapes, or values outside 0..n_pred / 0..n_gt.
    """
    if n_pred < 0 or n_gt < 0:
        raise ValueError(f"hungarian_miou needs n_pred >= 0 and n_gt >= 0, got {n_pred} and {n_gt}")
    confusion = np.zeros((n_pred + 1) * (n_gt + 1), dtype=np.int64)
    for i, (pred_map, gt_map) in enumerate(pairs):
        pred, gt = _checked_pair(i, pred_map, gt_map, n_pred, n_gt)
        confusion += np.bincount(pred * (n_gt + 1) + gt, minlength=confusion.size)
    confusion = confusion.reshape(n_pred + 1, n_gt + 1)
    result: dict[str, Any] = {"n_pred": n_pred, "n_gt": n_gt}
    if n_gt == 0:
        return {"miou": 1.0 if n_pred == 0 else 0.0, "per_class": {}, "matching": {}, **result}

    inter = confusion[1:, 1:].astype(np.float64)
    union = confusion[1:, :].sum(axis=1)[:, None] + confusion[:, 1:].sum(axis=0)[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    present = [g for g in range(1, n_gt + 1) if confusion[:, g].sum() > 0]
    per_class = {g: 0.0 for g in present}
    matching: dict[int, int | None] = {g: None for g in present}
    rows, cols = linear_sum_assignment(iou, maximize=True)
    for p, g in zip(rows.tolist(), cols.tolist(), strict=True):
        if iou[p, g] > 0 and g + 1 in per_class:
            per_class[g + 1] = float(iou[p, g])
            matching[g + 1] = p + 1
    miou = float(np.mean(list(per_class.values()))) if per_class else (1.0 if n_pred == 0 else 0.0)
    absent = [g for g in range(1, n_gt + 1) if g not in per_class]
    return {"miou": miou, "per_class": per_class, "matching": matching, "absent_gt_classes": absent, **result}


def instance_ceiling_pairs(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], n_gt: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (best-case class map, GT map) per (instance map, GT component map) pair: every instance (values >= 1)
    is painted with the GT class (0..n_gt, background included) covering most of its pixels, ties to the lower.

    Scored with :func:`hungarian_miou` (``n_pred = n_gt``), this is about the best mIoU a clustering could reach on
    these instances (the majority vote maximises pixel accuracy, which nearly always maximises the mIoU too): the
    *instance ceiling*. It tells whether the instances (grounding, refinement) or their
    clustering into classes loses quality. A diagnostic that reads the GT; it never makes a pseudo-label.

    >>> inst = np.array([[1, 1, 2, 0]]); gt = np.array([[1, 1, 1, 2]])
    >>> [(p.tolist(), g.tolist()) for p, g in instance_ceiling_pairs([(inst, gt)], n_gt=2)]
    [([[1, 1, 1, 0]], [[1, 1, 1, 2]])]

    Raises:
        ValueError: a pair of two shapes, negative instance values or GT values outside 0..n_gt.
    """
    for i, (inst_map, gt_map) in enumerate(pairs):
        inst, gt = np.asarray(inst_map), np.asarray(gt_map)
        if inst.shape != gt.shape:
            raise ValueError(
                f"instance_ceiling_pairs: pair {i} has shapes {inst.shape} (instances) and {gt.shape} (GT)"
            )
        flat_inst = inst.astype(np.int64, copy=False).ravel()
        flat_gt = gt.astype(np.int64, copy=False).ravel()
        if flat_inst.size and flat_inst.min() < 0:
            raise ValueError(f"instance_ceiling_pairs: pair {i} has negative instance values")
        if flat_gt.size and (flat_gt.min() < 0 or flat_gt.max() > n_gt):
            raise ValueError(f"instance_ceiling_pairs: pair {i} has GT values outside 0..{n_gt}")
        n_inst = int(flat_inst.max(initial=0)) + 1
        votes = np.bincount(flat_inst * (n_gt + 1) + flat_gt, minlength=n_inst * (n_gt + 1)).reshape(n_inst, n_gt + 1)
        lut = votes.argmax(axis=1)
        lut[0] = 0
        yield lut[flat_inst].reshape(gt.shape), gt


def _checked_pair(
    index: int, pred_map: np.ndarray, gt_map: np.ndarray, n_pred: int, n_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return pair ``index`` as two flat int64 arrays; raise ValueError if the maps differ in shape or hold values
    outside 0..n_pred / 0..n_gt."""
    pred_map, gt_map = np.asarray(pred_map), np.asarray(gt_map)
    if pred_map.shape != gt_map.shape:
        raise ValueError(f"hungarian_miou: pair {index} has shapes {pred_map.shape} (pseudo) and {gt_map.shape} (GT)")
    pred = pred_map.astype(np.int64, copy=False).ravel()
    gt = gt_map.astype(np.int64, copy=False).ravel()
    if pred.size and (pred.min() < 0 or pred.max() > n_pred):
        raise ValueError(f"hungarian_miou: pair {index} has pseudo-label values outside 0..{n_pred}")
    if gt.size and (gt.min() < 0 or gt.max() > n_gt):
        raise ValueError(f"hungarian_miou: pair {index} has GT values outside 0..{n_gt}")
    return pred, gt


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
    images (:func:`instance_ceiling_pairs`: the best mIoU any clustering of those instances could
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
                    inst = resize_label(inst, gt.shape)
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
