"""Benchmark: pseudo-label quality for alternative settings of the pseudo-label stages.

    python benchmarks/pseudo_labels.py --profile baseline \\
        --profile lite0-cnn --set features.descriptors='[cnn]' --set features.backbone.name=tf_efficientnet_lite0 \\
            --set features.backbone.weights=bundled --set features.n_rotations=12 \\
        [--categories pushpins screw_bag] [--no-overrides] [--from-ground] [--out metrics/benchmarks/pseudo_labels.json]

    # the grounding backends side by side (README "Pseudo-labels"), from the ground stage on:
    python benchmarks/pseudo_labels.py --from-ground --no-overrides --out metrics/benchmarks/ground_backends.json \\
        --profile pretrained --set ground.backend=pretrained --profile classical --set ground.backend=classical

Each ``--profile NAME`` starts a profile; the ``--set KEY=VALUE`` options after it (up to the next ``--profile``)
change its params: KEY is a dotted path inside ``params.yaml`` in the sections ``parts``, ``ground``, ``refine``,
``features``, ``cluster``, ``filter`` or ``runtime`` (``features.block_weights.cnn=3``, ``cluster.bandwidth=2.5``,
``filter.largest_only=false``, ``cluster.overrides.screw_bag.bandwidth=1.2``) and VALUE is parsed as YAML
(``[cnn, color]``, ``1.5``, ``bundled``,
``{cnn: 2.0}``). A profile without ``--set`` measures ``params.yaml`` as it is.

Per-category overrides: ``--no-overrides`` (global) drops the ``overrides:`` of the ``parts``, ``ground``,
``refine``, ``features``, ``cluster`` and ``filter`` sections in every profile, so that one global setting is
measured on every category. Per profile,
``--set overrides=off`` drops them for that profile only and ``--set overrides=on`` keeps them despite
``--no-overrides``; ``--set cluster.overrides={}`` drops one section's. Overrides are dropped before the profile's
other ``--set`` are applied, which may thus add new per-category values. The changed params are checked against the
params schema (an unknown key fails at once), then resolved per category exactly as the stages do.

For each profile and category the ``features``, ``cluster`` and ``filter`` steps (``csad.pipeline``) are rerun
into a temporary folder from the outputs of the ``refine`` stage (``data/refined/<category>/``, never written) and
the dataset (``dataset.root``); with ``--from-ground`` the ``ground`` and ``refine`` steps run first, on the
outputs of the ``propose`` stage (``data/proposals/<category>/``). The DVC outputs are not touched. Reported per
category: the metrics that
``stages/filter.py`` writes to ``metrics/<category>/pseudo_labels.json`` (``miou``: Hungarian mIoU of the labelled
images against the synthetic ``component_gt``, ``num_classes``, ``labeled_images``, ...), plus the number of
components, the feature dimension, the clusters kept and the seconds of each step (``features_seconds`` is the
timing the features stage writes: image reading + description, without building the backbone; ``features_wall_seconds``
includes it). A :class:`~csad.errors.CsadError` of a step (e.g. no cluster survives ``cluster.alpha``) is recorded as
the category's ``error``. One line is printed per category and a ``MEAN`` line per profile (``miou`` over the
categories that succeeded; the JSON also has ``miou_errors_as_0`` over all of them). Results are merged into
``--out`` (one entry per profile name; rerunning a profile replaces it) with the ``--set`` values and the resulting
``features``/``cluster``/``filter`` sections.

With unchanged params and refine outputs, the profile without ``--set`` reproduces ``metrics/<category>/
pseudo_labels.json``. Needs ``data/refined/<category>/`` (``dvc repro refine``).
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from csad.data.loco import LocoCategory
from csad.errors import CsadError, ParamsError
from csad.io import read_json, write_json
from csad.params import OVERRIDES, SCHEMA, check, load_params
from csad.pipeline.cluster import run_cluster
from csad.pipeline.features import run_features
from csad.pipeline.filter import run_filter
from csad.pipeline.ground import run_grounding
from csad.pipeline.refine import run_refine
from csad.pipeline.settings import check_configs
from csad.pipeline.stage import select_device
from csad.pseudo.backends import build_ground_backend
from csad.pseudo.quality import pseudo_label_quality
from csad.settings import stage_config

#: The sections a profile's ``--set`` may change, and those whose per-category overrides ``overrides=off`` drops.
SETTABLE = ("parts", "ground", "refine", "features", "cluster", "filter", "runtime")
STEPS = ("ground", "refine", "features", "cluster", "filter")


class _StartProfile(argparse.Action):
    """``--profile NAME``: append a new profile to ``namespace.profiles``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, *_: Any) -> None:
        profiles = getattr(namespace, self.dest) or []
        if any(p["name"] == values for p in profiles):
            parser.error(f"profile {values!r} given twice")
        profiles.append({"name": values, "set": []})
        setattr(namespace, self.dest, profiles)


class _SetInProfile(argparse.Action):
    """``--set KEY=VALUE``: add (KEY, YAML-parsed VALUE) to the last profile."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, *_: Any) -> None:
        profiles = getattr(namespace, "profiles", None)
        if not profiles:
            parser.error(f"--set {values} comes before any --profile NAME")
        key, sep, text = str(values).partition("=")
        if not sep or not key.strip():
            parser.error(f"--set {values}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            parser.error(f"--set {values}: the value is not YAML ({err})".replace("\n", " "))
        profiles[-1]["set"].append((key.strip(), value))


def profile_params(
    params: dict[str, Any], sets: Sequence[tuple[str, Any]], drop_overrides: bool
) -> tuple[dict[str, Any], bool]:
    """Return (params of a profile, whether the overrides of :data:`STEPS` are dropped): ``params`` copied, the
    overrides dropped (``drop_overrides`` unless ``overrides=on|off`` is among ``sets``), then ``sets`` applied.

    Raises:
        ParamsError: a key outside :data:`SETTABLE`, a path through a non-mapping, or a result the schema rejects.
    """
    tree = copy.deepcopy(params)
    for key, value in sets:
        if key == OVERRIDES:
            if not isinstance(value, bool):
                raise ParamsError(f"--set overrides={value!r}: use overrides=off (drop them) or overrides=on (keep)")
            drop_overrides = not value
    if drop_overrides:
        for section in (*STEPS, "parts"):
            tree[section].pop(OVERRIDES, None)
    for key, value in sets:
        if key == OVERRIDES:
            continue
        parts = key.split(".")
        if parts[0] not in SETTABLE or len(parts) < 2:
            raise ParamsError(f"--set {key}: the key must be a dotted path in one of {', '.join(SETTABLE)}")
        node = tree
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
        node[parts[-1]] = value
    check(tree, SCHEMA, source="--set")
    check_configs(tree, [], source="--set")
    return tree, drop_overrides


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def run_category(
    params: dict[str, Any],
    name: str,
    device: str,
    refined_root: Path,
    tmp_root: Path,
    proposals_root: Path | None = None,
) -> dict[str, Any]:
    """Rerun features -> cluster -> filter of category ``name`` under ``tmp_root`` (with ``proposals_root``: ground
    and refine first, from the proposals there); return its figures (or, on a :class:`CsadError`, the error and
    the figures of the steps that finished)."""
    category = LocoCategory.open(params["dataset"]["root"], name)
    records = category.split("train")
    cfg = {step: stage_config(params, step, name) for step in STEPS}
    row: dict[str, Any] = {}
    refined = refined_root / name
    if proposals_root is not None:
        proposals = proposals_root / name
        if not (proposals / "instances").is_dir():
            return {"error": f"{proposals}/instances is missing: run the propose stage (dvc repro propose@{name})"}
        tags = Path("data/tags") / f"{name}.json"
        prompt = read_json(tags)["prompt"] if tags.is_file() else ""
        start = time.perf_counter()
        try:
            grounding = run_grounding(
                records, build_ground_backend(cfg["ground"], device), prompt, tmp_root / "grounding"
            )
            refined = tmp_root / "refined"
            run_refine(records, tmp_root / "grounding", proposals, cfg["refine"], refined)
        except CsadError as err:
            return {"error": f"ground/refine: {err}"}
        row.update(ground_seconds=round(time.perf_counter() - start, 3), ground_fit=grounding.get("fit"))
    elif not (refined / "instances").is_dir():
        return {"error": f"{refined}/instances is missing: run the refine stage (dvc repro refine@{name})"}
    comp, clus, out = tmp_root / "components", tmp_root / "clusters", tmp_root / "pseudo_labels"
    step = "features"
    try:
        start = time.perf_counter()
        feats = run_features(records, refined, cfg["features"], device, comp)
        row["features_wall_seconds"] = round(time.perf_counter() - start, 3)
        row.update(
            components=feats["components"],
            feature_dim=feats["feature_dim"],
            features_seconds=feats["seconds"],
            features_seconds_per_image=feats["seconds_per_image"],
        )
        step = "cluster"
        start = time.perf_counter()
        clusters = run_cluster(comp, refined, cfg["cluster"], len(records), clus)
        row.update(
            clusters_kept=clusters["clusters_kept"],
            bandwidth=clusters["bandwidth"],
            cluster_seconds=round(time.perf_counter() - start, 3),
        )
        step = "filter"
        start = time.perf_counter()
        summary = run_filter(records, comp, clus, cfg["filter"], out)
        row["filter_seconds"] = round(time.perf_counter() - start, 3)
    except CsadError as err:
        message = str(err)
        return {"error": message if message.startswith(f"{step}:") else f"{step}: {message}", **row}
    labeled = pd.read_parquet(out / "labeled.parquet")
    labeled_keys = labeled.loc[labeled["labeled"], "key"].tolist()
    metrics = {  # exactly what stages/filter.py writes to metrics/<category>/pseudo_labels.json
        "num_classes": summary["classes"],
        "labeled_images": summary["labeled_images"],
        "train_images": summary["images"],
        **summary["consistency"],
        **pseudo_label_quality(category, out / "labels", labeled_keys, summary["classes"]),
    }
    return {**metrics, **row}


def _text(value: float | None, spec: str = "") -> str:
    return "n/a" if value is None else format(value, spec)


def _line(profile: str, name: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{profile} {name} ERROR {r['error']}"
    miou = f"{r['miou']:.4f}" if "miou" in r else "n/a"
    return (
        f"{profile} {name} miou={miou} classes={r['num_classes']} labeled={r['labeled_images']}/{r['train_images']}"
        f" components={r['components']} dim={r['feature_dim']} features={r['features_seconds']:.1f}s"
        f" ({r['features_seconds_per_image']:.3f} s/img, wall {r['features_wall_seconds']:.1f}s)"
    )


def summarize(per_cat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the profile means over its categories."""
    ok = [r for r in per_cat.values() if "error" not in r]
    mious = [r["miou"] for r in ok if "miou" in r]
    return {
        "miou": _mean(mious),
        "miou_errors_as_0": _mean(mious + [0.0] * (len(per_cat) - len(ok))) if len(mious) == len(ok) else None,
        "num_classes": _mean([r["num_classes"] for r in ok]),
        "labeled_images": _mean([r["labeled_images"] for r in ok]),
        "features_seconds_total": round(sum(r.get("features_seconds", 0.0) for r in per_cat.values()), 3),
        "categories": len(per_cat),
        "failed": sorted(n for n, r in per_cat.items() if "error" in r),
    }


def main(argv: list[str] | None = None) -> None:
    """Run every profile on every requested category and merge the results into the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", dest="profiles", action=_StartProfile, required=True, metavar="NAME")
    parser.add_argument("--set", action=_SetInProfile, metavar="KEY=VALUE", help="change a param of the last profile")
    parser.add_argument("--categories", nargs="*", default=None, help="default: categories of the params file")
    parser.add_argument("--no-overrides", action="store_true", help="drop features/cluster/filter overrides")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--refined", default="data/refined", help="outputs of the refine stage (read only)")
    parser.add_argument(
        "--from-ground",
        action="store_true",
        help="rerun ground and refine too (on the proposals of data/proposals), so ground.* can be compared",
    )
    parser.add_argument("--out", default="metrics/benchmarks/pseudo_labels.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    categories = args.categories or params["categories"]
    unknown = [c for c in categories if c not in params["categories"]]
    if unknown:
        parser.error(f"categories {unknown} are not in {args.params} ({', '.join(params['categories'])})")
    try:
        profiles = [(p, *profile_params(params, p["set"], args.no_overrides)) for p in args.profiles]
    except ParamsError as err:  # every profile is checked before the first one runs
        parser.error(str(err))
    out = Path(args.out)
    results: dict[str, Any] = read_json(out) if out.is_file() else {}
    for profile, tree, dropped in profiles:
        name = profile["name"]
        device = select_device(tree["runtime"])
        per_cat: dict[str, dict[str, Any]] = {}
        for category in categories:
            with tempfile.TemporaryDirectory(prefix="csad-pseudo-bench-") as tmp:
                per_cat[category] = run_category(
                    tree,
                    category,
                    device,
                    Path(args.refined),
                    Path(tmp),
                    Path("data/proposals") if args.from_ground else None,
                )
            print(_line(name, category, per_cat[category]), flush=True)
        mean = summarize(per_cat)
        miou = _text(mean["miou"], ".4f")
        print(
            f"{name} MEAN miou={miou} ({mean['categories'] - len(mean['failed'])}/{mean['categories']} categories)"
            f" classes={_text(mean['num_classes'])} labeled={_text(mean['labeled_images'])}"
            f" features={mean['features_seconds_total']:.1f}s",
            flush=True,
        )
        results[name] = {
            "set": dict(profile["set"]),
            "overrides": "dropped" if dropped else "kept",
            "params_file": args.params,
            "device": device,
            "from_ground": bool(args.from_ground),
            "settings": {s: tree[s] for s in ("parts", *STEPS, "runtime")},
            "mean": mean,
            "per_category": per_cat,
        }
        write_json(out, dict(sorted(results.items())))
    print(markdown_table(results, [p["name"] for p, _, _ in profiles], categories))


def markdown_table(results: dict[str, Any], profiles: Sequence[str], categories: Sequence[str]) -> str:
    """Return a markdown table, one row per category, with each profile's pseudo-label mIoU, share of the train
    images in the largest HDBSCAN histogram cluster and lowest class presence rate (README "Pseudo-labels")."""
    head = "| category | " + " | ".join(
        f"{p} mIoU | {p} largest cluster share | {p} lowest class presence" for p in profiles
    )
    lines = [head + " |", "|---" * (1 + 3 * len(profiles)) + "|"]
    for category in [*categories, "mean"]:
        cells = []
        for p in profiles:
            if category == "mean":
                rows = [results[p]["per_category"].get(c, {}) for c in categories]
                vals = [
                    _mean([float(r[k]) for r in rows if r.get(k) is not None])
                    for k in ("miou", "largest_cluster_share", "min_class_presence")
                ]
            else:
                r = results[p]["per_category"].get(category, {})
                vals = [r.get(k) for k in ("miou", "largest_cluster_share", "min_class_presence")]
            cells += ["n/a" if v is None else f"{float(v):.3f}" for v in vals]
        name = "**mean**" if category == "mean" else category
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
