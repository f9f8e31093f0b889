"""Benchmark: forward time of every backbone of the factory, as the pipeline uses them (frozen, no grad).

    python benchmarks/backbone_speed.py [--size 256] [--batch 8] [--threads 2] [--repeats 5]

For each backbone and each consumer's strides (segmenter 4 + 16, LGST teacher 8 + 16) it times the forward pass of
a random batch (after one warm-up) and writes milliseconds per image to ``metrics/benchmarks/backbone_speed.json``.
Weights do not change the speed, so random ones are used (no warning is printed for them here).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import torch

from csad.io import write_json
from csad.models.backbone import BACKBONES, build_backbone

CONSUMERS = {"segmenter": (4, 16), "lgst_teacher": (8, 16)}


def main() -> None:
    """Time each backbone for each consumer and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="metrics/benchmarks/backbone_speed.json")
    args = parser.parse_args()
    logging.getLogger("csad.models.backbone").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    results: dict[str, dict[str, float]] = {}
    for name in BACKBONES:
        results[name] = {}
        for consumer, strides in CONSUMERS.items():
            fe = build_backbone(name, "none", strides)
            with torch.no_grad():
                fe(x)
                start = time.perf_counter()
                for _ in range(args.repeats):
                    fe(x)
            ms = 1000 * (time.perf_counter() - start) / (args.repeats * args.batch)
            results[name][consumer] = round(ms, 1)
            print(f"{name:24s} {consumer:13s} {ms:7.1f} ms/image", flush=True)
    write_json(
        Path(args.out),
        {
            "image_size": args.size,
            "batch": args.batch,
            "threads": args.threads,
            "cpu_count": os.cpu_count(),
            "ms_per_image": results,
        },
    )


if __name__ == "__main__":
    main()
