"""Benchmark: inference speed of the deployable detector (:class:`csad.detector.model.CsadDetector`), the paper's
protocol (section 4.2): latency at batch 1 (mean of the timed calls after warm-up) and throughput at batch 8.

    python benchmarks/speed.py                       # both architectures, every variant, this machine's device
    python benchmarks/speed.py --archs default --variants torch_fp32 onnxruntime --runs 20

Architectures, built from the params files with random weights (speed does not depend on them) and 5 segmentation
classes, as the authors' speed script:

- ``default``: the embedded default of ``params.yaml`` (EfficientNet-Lite0 encoder shared by both branches);
- ``default_no_counts``: the same without the Patch Histogram's component counts (docs/method.md 4.5), i.e. what
  the connected-component labelling costs;
- ``paper``: ``params/paper.yaml`` (WideResNet-50-2 encoder shared by both branches, 256 px, 512 LGST channels,
  student widths 256/512/512, 64 x 64 maps, padded student: the trained and deployed model, the released fused
  model's work);
- ``paper_speed``: the same with the authors' speed-script simplification (docs/method.md 8): unpadded local student and
  56 x 56 maps (teacher, student and autoencoder), about 20 % less student work.

Variants: ``torch_fp32``; ``torch_channels_last``; ``torch_bf16`` (bfloat16 autocast + channels_last; the float64
statistics stay float64); ``onnxruntime`` (the ONNX export, CPU execution provider, or CUDA when onnxruntime has
it). On CUDA every call is timed with ``torch.cuda.synchronize``. Each measurement stops after ``--runs`` timed
calls or ``--budget`` seconds, whichever comes first (at least one call), so a variant that is very slow on this
machine (bf16 without native bf16 instructions) costs bounded time; the number of timed calls is recorded.

Writes ``metrics/benchmarks/speed_<device>.json`` (machine, protocol, per architecture and variant
``latency_ms_b1``, ``throughput_b8`` in images/s, ``ms_per_image_b8``, timed calls) and checks the goals: the paper
architecture at <= 560 ms per image at batch 1, the default at >= 20 images/s at batch 8 (best variant each).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csad.detector.export import export_onnx
from csad.detector.model import CsadDetector, DetectorConfig
from csad.detector.predict import OnnxRunner, TorchRunner
from csad.io import write_json
from csad.params import load_params, resolve

ARCHS = {
    "default": "params.yaml",
    "default_no_counts": "params.yaml",
    "paper": "params/paper.yaml",
    "paper_speed": "params/paper.yaml",
}
VARIANTS = ("torch_fp32", "torch_channels_last", "torch_bf16", "onnxruntime")
GOALS = {"paper_latency_ms_b1_max": 560.0, "default_throughput_b8_min": 20.0}
NUM_CLASSES = 5


def detector_config(params_file: str, name: str) -> DetectorConfig:
    """Return the detector architecture that ``params_file`` trains (no category overrides)."""
    params = load_params(params_file)
    seg, lgst = resolve(params["segment"], ""), resolve(params["lgst"], "")
    train = seg["train"]
    shared = seg["backbone"]["name"] == lgst["backbone"]["name"] and train["image_size"] == lgst["image_size"]
    speed = name == "paper_speed"
    return DetectorConfig(
        category=name,
        image_size=int(train["image_size"]),
        num_classes=NUM_CLASSES,
        seg_backbone=seg["backbone"]["name"],
        decoder={k: train[k] for k in ("aspp_channels", "decoder_channels", "reduce_channels", "bn_momentum")},
        lgst_backbone=lgst["backbone"]["name"],
        lgst_image_size=int(lgst["image_size"]),
        feat_size=56 if speed else int(lgst["feat_size"]),
        channels=int(lgst["channels"]),
        student_widths=tuple(int(w) for w in lgst["student_widths"]),  # type: ignore[arg-type]
        ae_base_dim=int(lgst["ae_base_dim"]),
        shared_backbone=bool(shared),
        grids=tuple((int(g[0]), int(g[1])) for g in seg["patch_hist"]["grids"]),
        component_counts=name != "default_no_counts" and float(seg["patch_hist"]["count_min_fraction"]) > 0,
        student_padding=not speed,
    )


def _timed(fn: Callable[[], Any], warmup: int, runs: int, budget: float, sync: Callable[[], None]) -> list[float]:
    """Return the seconds of each timed call of ``fn`` after ``warmup`` calls (stops at ``runs`` or ``budget`` s;
    the warm-up stops after one call when that call alone took more than half the budget)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
        sync()
        if time.perf_counter() - start > budget / 2:
            break
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def measure(
    run: Callable[[np.ndarray], Any], size: int, warmup: int, runs: int, budget: float, sync: Callable[[], None]
) -> dict[str, Any]:
    """Return latency at batch 1 and throughput at batch 8 of ``run`` on random (B, 3, size, size) batches."""
    rng = np.random.default_rng(0)
    x1 = rng.random((1, 3, size, size), dtype=np.float32)
    x8 = rng.random((8, 3, size, size), dtype=np.float32)
    t1 = _timed(lambda: run(x1), warmup, runs, budget, sync)
    t8 = _timed(lambda: run(x8), warmup, runs, budget, sync)
    return {
        "latency_ms_b1": round(1000 * float(np.mean(t1)), 2),
        "throughput_b8": round(8 * len(t8) / float(np.sum(t8)), 2),
        "ms_per_image_b8": round(1000 * float(np.sum(t8)) / (8 * len(t8)), 2),
        "timed_calls": {"b1": len(t1), "b8": len(t8)},
    }


def variant_runner(variant: str, config: DetectorConfig, device: str, workdir: Path) -> Callable[[np.ndarray], Any]:
    """Return a function that runs one batch through ``variant`` of a random-weight detector of ``config``."""
    detector = CsadDetector(config).eval()
    if variant == "onnxruntime":
        path = export_onnx(detector, workdir / f"{config.category}.onnx")
        runner = OnnxRunner(path)
        if device.startswith("cuda"):
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                runner.session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
        return lambda x: runner.session.run(None, {"image": x})
    detector = detector.to(device)
    torch_runner = TorchRunner(
        detector,
        channels_last=variant in ("torch_channels_last", "torch_bf16"),
        autocast="bf16" if variant == "torch_bf16" else None,
    )
    return lambda x: torch_runner.forward(torch.from_numpy(x).to(device))


def gflops(config: DetectorConfig) -> dict[str, float]:
    """Return the floating-point operations (GFLOPs, one multiply-add = 2) of one image, in total and for the
    encoder, the local student and the autoencoder (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    detector = CsadDetector(config).eval()
    x = torch.rand(1, 3, config.image_size, config.image_size)
    parts = {
        "total": lambda: detector(x),
        "encoder": lambda: detector.backbone(x),
        "local_student": lambda: detector.student(x),
        "autoencoder": lambda: detector.autoencoder(x),
    }
    out = {}
    with torch.inference_mode():
        for name, fn in parts.items():
            with FlopCounterMode(display=False) as counter:
                fn()
            out[name] = round(counter.get_total_flops() / 1e9, 2)
    return out


def machine(device: str) -> dict[str, Any]:
    """Return what the figures depend on: CPU, threads, library versions, GPU."""
    import onnxruntime as ort

    cpu = platform.processor()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


SPEED_START, SPEED_END = "<!-- speed:start -->", "<!-- speed:end -->"


def speed_table(payload: dict[str, Any]) -> str:
    """Return the markdown table of a speed JSON: per architecture and variant, latency and throughput."""
    m = payload["machine"]
    lines = [
        f"Measured by `python benchmarks/speed.py --readme README.md` on {m['cpu']} ({m['torch_threads']} torch "
        f"threads, device {m['device']}), random weights, torch {m['torch']}, onnxruntime {m['onnxruntime']}:",
        "",
        "| architecture | variant | latency, batch 1 (ms) | throughput, batch 8 (images/s) |",
        "|---|---|---|---|",
    ]
    for arch, result in payload["results"].items():
        for variant, fig in result["variants"].items():
            lines.append(f"| {arch} | {variant} | {fig['latency_ms_b1']:.0f} | {fig['throughput_b8']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    """Time every requested architecture and variant; write and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--flops", action="store_true", help="also count each architecture's GFLOPs at batch 1")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10, help="timed calls per measurement (at most)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per measurement (at least one call)")
    parser.add_argument("--out", default=None, help="default: metrics/benchmarks/speed_<cpu|cuda>.json")
    parser.add_argument("--readme", default=None, help="write the results table into this README's speed block")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            config = detector_config(ARCHS[arch], arch)
            results[arch] = {"params": ARCHS[arch], "shared_backbone": config.shared_backbone, "variants": {}}
            if args.flops:
                results[arch]["gflops_b1"] = gflops(config)
            for variant in args.variants:
                with torch.inference_mode():
                    run = variant_runner(variant, config, device, Path(tmp))
                    figures = measure(run, config.image_size, args.warmup, args.runs, args.budget, sync)
                results[arch]["variants"][variant] = figures
                print(f"{arch:8s} {variant:20s} {figures}", flush=True)
    goals: dict[str, Any] = dict(GOALS)
    for arch in ("paper", "paper_speed"):
        if arch in results:
            best = min(v["latency_ms_b1"] for v in results[arch]["variants"].values())
            goals[f"{arch}_best_latency_ms_b1"] = best
            goals[f"{arch}_latency_met"] = best <= GOALS["paper_latency_ms_b1_max"]
    if "default" in results:
        best = max(v["throughput_b8"] for v in results["default"]["variants"].values())
        goals["default_best_throughput_b8"] = best
        goals["default_throughput_met"] = best >= GOALS["default_throughput_b8_min"]
    out = Path(args.out or f"metrics/benchmarks/speed_{'cuda' if device.startswith('cuda') else 'cpu'}.json")
    payload = {
        "machine": machine(device),
        "protocol": {
            "latency": "batch 1, mean of the timed calls after warm-up",
            "throughput": "batch 8, images per second over the timed calls",
            "warmup": args.warmup,
            "runs": args.runs,
            "budget_s": args.budget,
            "num_classes": NUM_CLASSES,
            "weights": "random (speed does not depend on them)",
        },
        "results": results,
        "goals": goals,
    }
    write_json(out, payload)
    print(f"goals: {goals}\nwrote {out}")
    if args.readme:
        from csad.report import update_readme

        update_readme(Path(args.readme), speed_table(payload), SPEED_START, SPEED_END)
        print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
