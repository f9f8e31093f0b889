"""Segmentation quality of a trained segmenter against ``component_gt`` (synthetic benchmark only).

The ground truth is read only to score, never to train or to choose a model.
"""

from __future__ import annotations

from typing import Any

from csad.data.loco import LocoCategory, read_image
from csad.imaging import resize_label
from csad.io import read_json, read_label_png
from csad.models.segmenter import ComponentSegmenter, predict_labels
from csad.pseudo.quality import component_gt_dir, hungarian_miou


def segmentation_quality(
    category: LocoCategory,
    model: ComponentSegmenter,
    image_size: int,
    device: str,
    split: str = "test",
    type_: str = "good",
) -> dict[str, Any]:
    """Return the Hungarian mIoU of the segmenter's predictions on ``split/type_`` against component_gt (resized
    to the original resolution with nearest neighbour); an empty dict when the dataset has no component_gt."""
    gt_dir = component_gt_dir(category)
    if gt_dir is None:
        return {}
    classes = read_json(category.root / "component_classes.json")
    names = {v: k for k, v in classes.items()}
    records = category.split(split, type_)
    images = [read_image(r.path) for r in records]
    preds = predict_labels(model, images, image_size, device=device)

    def pairs():
        for rec, image, pred in zip(records, images, preds, strict=True):
            full = resize_label(pred, image.shape[:2])
            yield full, read_label_png(gt_dir / rec.key)

    result = hungarian_miou(pairs(), model.num_classes - 1, len(classes) - 1)
    return {
        "miou": round(float(result["miou"]), 4),
        "per_class_iou": {names[int(c)]: round(float(v), 4) for c, v in result["per_class"].items()},
        "evaluated_images": len(records),
        "absent_gt_classes": [names[int(c)] for c in result["absent_gt_classes"]],
        "split": f"{split}/{type_}",
    }
