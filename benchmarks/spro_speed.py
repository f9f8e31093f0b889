"""Benchmark: AU-sPRO on MVTec-LOCO-sized input (300 float32 maps of 1280 x 1600, one third good).

    python benchmarks/spro_speed.py [--maps 300] [--threads 1]

Writes ``metrics/benchmarks/spro_speed.json`` (seconds, maps, pixels, channels).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from csad.eval.spro import GtChannel, compute_au_spro
from csad.io import write_json


def main() -> None:
    """Time compute_au_spro on random maps with rectangular defect channels."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=300)
    parser.add_argument("--height", type=int, default=1280)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--out", default="metrics/benchmarks/spro_speed.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    maps, channels = [], []
    for i in range(args.maps):
        amap = rng.random((args.height, args.width), dtype=np.float32)
        chans = []
        if i % 3:  # two thirds anomalous, with 1-4 (possibly overlapping) rectangular defects
            for _ in range(int(rng.integers(1, 5))):
                mask = np.zeros((args.height, args.width), dtype=bool)
                y, x = int(rng.integers(0, args.height - 200)), int(rng.integers(0, args.width - 200))
                h, w = int(rng.integers(20, 200)), int(rng.integers(20, 200))
                mask[y : y + h, x : x + w] = True
                amap[mask] += 0.3
                relative = bool(rng.integers(0, 2))
                chans.append(GtChannel(mask, 1.0 if relative else int(rng.integers(500, 20000)), relative))
        maps.append(amap)
        channels.append(chans)
    start = time.perf_counter()
    result = compute_au_spro(maps, channels)
    seconds = time.perf_counter() - start
    write_json(
        Path(args.out),
        {
            "maps": args.maps,
            "map_size": [args.height, args.width],
            "channels": sum(len(c) for c in channels),
            "seconds": round(seconds, 2),
            "cpu_threads_available": os.cpu_count(),
            "au_spro": {str(k): round(v, 4) for k, v in result.items()},
        },
    )
    print(f"AU-sPRO of {args.maps} maps {args.height}x{args.width}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
