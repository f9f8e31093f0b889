"""Benchmark: the LGST branch alone on the synthetic benchmark, for several teacher backbones and CPU profiles.

    python benchmarks/lgst_backbones.py --profile lite0-256 --profile resnet18-none-128 [--categories pushpins]

Each ``--profile`` is ``NAME-WEIGHTS-IMAGE[-FEAT[-ITERATIONS[-CHANNELS]]]`` with NAME a short backbone name
(``lite0``, ``lite1``, ``lite2``, ``resnet18``, ``wrn50``), WEIGHTS ``bundled``/``none``/``download`` (optional:
``lite0-256`` means bundled), IMAGE the network input side, FEAT the teacher map side (default IMAGE / 4),
ITERATIONS (default ``lgst.iterations`` of params.yaml) and CHANNELS (default ``lgst.channels``), optionally followed
by ``+key=value`` pairs setting any other ``lgst`` param (``lite0-128+lr=0.001+batch_size=4``; values parsed as
YAML). Every other LGST setting is the one of ``params.yaml``. For each profile and category it trains LGST on
train/good, fits the map normalisation on validation/good (never on test images), then reports the test image AUROC
(logical, structural, mean; also of the local and global maps alone), AU-sPRO@0.05 of the maps and the training /
inference time. Results are merged into
``metrics/benchmarks/lgst_backbones.json`` (one entry per profile; rerunning a profile replaces it).

Needs the rendered synthetic benchmark (``dvc repro synth``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _cli import category_parser, start_benchmark

from csad.data.loco import LocoCategory, read_image
from csad.eval.auroc import image_auroc
from csad.eval.evaluate import evaluate_maps
from csad.eval.maps import anomaly_map_path, write_anomaly_map
from csad.io import write_json
from csad.lgst.config import config_from_params
from csad.lgst.maps import compute_maps, fit_map_normalizer, lgst_scores, upsample_map
from csad.lgst.train import train_lgst
from csad.params import resolve

SHORT_NAMES = {
    "lite0": "tf_efficientnet_lite0",
    "lite1": "tf_efficientnet_lite1",
    "lite2": "tf_efficientnet_lite2",
    "resnet18": "resnet18",
    "wrn50": "wide_resnet50_2",
}


def parse_profile(text: str, base: dict[str, Any]) -> dict[str, Any]:
    """Return the ``lgst`` params section of profile ``text`` (see the module docstring) over ``base``."""
    head, *extras = text.split("+")
    parts = head.split("-")
    name = SHORT_NAMES[parts.pop(0)]
    weights = parts.pop(0) if parts and not parts[0].isdigit() else "bundled"
    numbers = [int(p) for p in parts]
    cfg = {k: v for k, v in base.items() if k != "overrides"}
    cfg["backbone"] = {**base["backbone"], "name": name, "weights": weights}
    cfg["image_size"] = numbers[0]
    cfg["feat_size"] = numbers[1] if len(numbers) > 1 else numbers[0] // 4
    if len(numbers) > 2:
        cfg["iterations"] = numbers[2]
    if len(numbers) > 3:
        cfg["channels"] = numbers[3]
    for extra in extras:
        key, _, value = extra.partition("=")
        cfg[key] = yaml.safe_load(value)
    return cfg


def run_category(category: LocoCategory, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate LGST on one category; return its figures."""
    config, spec = config_from_params({**cfg, "device": "cpu"})
    train = [read_image(r.path) for r in category.split("train")]
    val = [read_image(r.path) for r in category.split("validation")]
    tests = category.split("test")
    start = time.perf_counter()
    model = train_lgst(train, config, spec, progress=False)
    train_seconds = time.perf_counter() - start
    normalizer = fit_map_normalizer(model, val, config)
    images = [read_image(r.path) for r in tests]
    start = time.perf_counter()
    scores, maps = lgst_scores(model, normalizer, images, batch_size=config.feature_batch_size)
    infer_seconds = time.perf_counter() - start
    types = [r.type for r in tests]
    auroc = image_auroc(scores.tolist(), types)
    local, glob = normalizer.normalize(*compute_maps(model, images, config.feature_batch_size))
    branch_auroc = {
        name: round(float(image_auroc(m.amax(dim=(1, 2)).tolist(), types)["mean"]), 4)
        for name, m in (("local", local), ("global", glob))
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rec, image, m in zip(tests, images, maps, strict=True):
            full = upsample_map(m, (image.shape[0], image.shape[1]))
            write_anomaly_map(anomaly_map_path(Path(tmp), category.name, rec.type, rec.stem), full)
        official = evaluate_maps(category.root.parent, category.name, tmp, progress=False)
    spro = official["localization"]["auc_spro"]
    return {
        "image_auroc": {k: round(float(v), 4) for k, v in auroc.items()},
        "map_auroc_mean": branch_auroc,
        "au_spro_0.05": round(float(spro["mean"]["0.05"]), 4),
        "train_seconds": round(train_seconds, 1),
        "inference_ms_per_image": round(1000 * infer_seconds / max(1, len(images)), 1),
    }


def main() -> None:
    """Run every requested profile on every requested category and merge the results into the JSON file."""
    parser = category_parser(__doc__, "metrics/benchmarks/lgst_backbones.json")
    parser.add_argument("--profile", action="append", required=True)
    args = parser.parse_args()
    params, categories, results = start_benchmark(args)
    out = Path(args.out)
    for text in args.profile:
        per_cat: dict[str, Any] = {}
        for name in categories:
            cfg = parse_profile(text, resolve(params["lgst"], name))
            per_cat[name] = run_category(LocoCategory.open(params["dataset"]["root"], name), cfg)
            print(text, name, per_cat[name], flush=True)
        mean = {
            k: round(float(np.mean([c["image_auroc"][k] for c in per_cat.values()])), 4)
            for k in ("logical", "structural", "mean")
        }
        results[text] = {
            "config": {k: v for k, v in cfg.items() if k not in ("penalty_dir",)},
            "mean_image_auroc": mean,
            "mean_au_spro_0.05": round(float(np.mean([c["au_spro_0.05"] for c in per_cat.values()])), 4),
            "train_seconds_total": round(sum(c["train_seconds"] for c in per_cat.values()), 1),
            "per_category": per_cat,
            "threads": args.threads,
        }
        print(text, "MEAN", results[text]["mean_image_auroc"], results[text]["mean_au_spro_0.05"], flush=True)
        write_json(out, dict(sorted(results.items())))


if __name__ == "__main__":
    main()
