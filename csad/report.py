"""The results across categories: ``metrics/summary.json``, ROC curves, visual reports and the README table.

    python -m csad.report --summary metrics/summary.json --readme README.md

prints the results table (markdown) generated from ``summary.json`` and the quality table (pseudo-labels,
segmentation, timings) from the per-category metrics beside it; with ``--readme`` it rewrites the README parts
between ``<!-- results:start/end -->`` and ``<!-- quality:start/end -->``.

A category's test set may lack any image type, so a metric may be undefined: ``null`` with ``"<key>_reason"``
beside it (:func:`csad.io.set_undefined`). Means over categories average the defined values only; the summary's
``missing`` map says which category lacks which value and why. Undefined ROC curves are not written, and tables
show ``n/a``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csad.data.loco import ANOMALY_TYPES, LocoCategory, read_image
from csad.eval.auroc import ANOMALY_KINDS, auroc_undefined_reason, roc_points
from csad.eval.maps import anomaly_map_path, read_anomaly_map
from csad.io import REASON_SUFFIX, atomic_path, is_defined, read_json, read_label_png, set_undefined
from csad.viz import colorize, heat_overlay, tile_grid

log = logging.getLogger(__name__)

START, END = "<!-- results:start -->", "<!-- results:end -->"
QUALITY_START, QUALITY_END = "<!-- quality:start -->", "<!-- quality:end -->"
VERDICT_START, VERDICT_END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"
BRANCH_NAMES = {"fused": "CSAD (fused)", "patch_hist": "Patch Histogram only", "lgst": "LGST only"}


def _mean_over(
    cats: Sequence[str],
    per_cat: Callable[[str], Mapping[str, Any]],
    keys: Sequence[str],
    where: str,
    missing: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """Return ``{key: mean over cats of the defined values}``; record categories without a value in ``missing``.

    A key no category defines is None with ``"<key>_reason"`` beside it.
    """
    out: dict[str, Any] = {}
    for key in keys:
        values: list[float] = []
        lacking: dict[str, str] = {}
        for c in cats:
            metrics = per_cat(c)
            value = metrics.get(key)
            if is_defined(value):
                values.append(float(value))
            else:
                lacking[c] = str(metrics.get(key + REASON_SUFFIX) or f"{where}.{key} missing or not a number")
        if lacking:
            missing[f"{where}.{key}"] = lacking
        if values:
            out[key] = round(float(np.mean(values)), 4)
        else:
            reasons = "; ".join(f"{c}: {r}" for c, r in lacking.items()) or "no categories"
            set_undefined(out, key, f"undefined in every category ({reasons})")
    return out


def summarize(per_category: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Return the summary: per category and mean over categories of image AUROC (per branch) and AU-sPRO@0.05.

    The overall mean AUROC equals the mean of the per-category (logical + structural) / 2, as the paper reports.
    Each mean over categories averages only the categories where the value is defined (a finite number); the
    ``missing`` map lists, per value (``"image_auroc.fused.structural"``), the categories left out and why (their
    ``_reason``). A value no category defines is None with ``"<key>_reason"`` beside it.

    Args:
        per_category: ``metrics/<category>.json`` contents by category (``image_auroc.<branch>.<kind>`` and
            ``au_spro_0.05.<type>``).

    Returns:
        ``{"categories", "image_auroc": {branch: {logical, structural, mean}}, "au_spro_0.05": {type: value},
        "missing": {value path: {category: reason}}, "per_category": {category: {...}}}`` (values in [0, 1]).
    """
    cats = sorted(per_category)
    missing: dict[str, dict[str, str]] = {}
    out: dict[str, Any] = {"categories": cats, "image_auroc": {}, "au_spro_0.05": {}}
    for branch in BRANCH_NAMES:
        out["image_auroc"][branch] = _mean_over(
            cats,
            lambda c, b=branch: per_category[c].get("image_auroc", {}).get(b, {}),
            ("logical", "structural", "mean"),
            f"image_auroc.{branch}",
            missing,
        )
    out["au_spro_0.05"] = _mean_over(
        cats, lambda c: per_category[c].get("au_spro_0.05", {}), (*ANOMALY_TYPES, "mean"), "au_spro_0.05", missing
    )
    out["missing"] = missing
    out["per_category"] = {
        c: {
            "image_auroc": per_category[c].get("image_auroc", {}),
            "au_spro_0.05": per_category[c].get("au_spro_0.05", {}),
        }
        for c in cats
    }
    return out


def results_table(summary: Mapping[str, Any]) -> str:
    """Return the markdown results table of ``summary`` (image AUROC x 100 per branch, AU-sPRO@0.05 x 100)."""
    lines = [
        "| category | fused logical | fused structural | fused mean | PatchHist mean | LGST mean | AU-sPRO@0.05 |",
        "|---|---|---|---|---|---|---|",
    ]

    def pct(x: Any) -> str:
        return f"{100 * float(x):.1f}" if is_defined(x) else "n/a"

    for c in summary["categories"]:
        m = summary["per_category"][c]
        auc = m["image_auroc"]
        lines.append(
            f"| {c} | {pct(auc['fused'].get('logical'))} | {pct(auc['fused'].get('structural'))} | "
            f"{pct(auc['fused'].get('mean'))} | {pct(auc['patch_hist'].get('mean'))} | "
            f"{pct(auc['lgst'].get('mean'))} | {pct(m['au_spro_0.05'].get('mean'))} |"
        )
    auc = summary["image_auroc"]
    lines.append(
        f"| **mean** | {pct(auc['fused'].get('logical'))} | {pct(auc['fused'].get('structural'))} | "
        f"**{pct(auc['fused'].get('mean'))}** | {pct(auc['patch_hist'].get('mean'))} | "
        f"{pct(auc['lgst'].get('mean'))} | {pct(summary['au_spro_0.05'].get('mean'))} |"
    )
    return "\n".join(lines)


def quality_table(metrics_dir: Path, categories: Sequence[str]) -> str:
    """Return the markdown table of pseudo-label and segmentation quality (Hungarian mIoU against component_gt, and
    the instance ceiling: the best pseudo-label mIoU a clustering of the refined instances could reach), pseudo-label
    consistency (share of train images in the largest HDBSCAN histogram cluster, lowest per-class
    presence rate), seconds per image of the pseudo-label stages and training seconds, from the per-category
    metrics files."""
    lines = [
        "| category | pseudo-label mIoU | instance ceiling | classes K | labelled / train images "
        "| largest HDBSCAN cluster share | lowest class presence | segmentation mIoU (test/good) "
        "| pseudo-label s/img (ground+propose+refine+features) | segmenter training s | LGST training s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in categories:
        pseudo = read_json(metrics_dir / c / "pseudo_labels.json")
        seg = read_json(metrics_dir / c / "segmentation.json")
        per_image = sum(
            read_json(metrics_dir / c / "timing" / f"{s}.json").get("seconds_per_image", 0.0)
            for s in ("ground", "propose", "refine", "features")
        )
        lgst_path = metrics_dir / c / "train_lgst" / "metrics.json"
        lgst_s = read_json(lgst_path).get("train_seconds", "n/a") if lgst_path.is_file() else "n/a"
        lines.append(
            f"| {c} | {pseudo.get('miou', 'n/a')} | {pseudo.get('instance_ceiling_miou', 'n/a')} "
            f"| {pseudo['num_classes']} | {pseudo['labeled_images']} / "
            f"{pseudo['train_images']} | {pseudo.get('largest_cluster_share', 'n/a')} "
            f"| {pseudo.get('min_class_presence', 'n/a')} | {seg.get('miou', 'n/a')} | {per_image:.3f} "
            f"| {seg.get('train_seconds')} | {lgst_s} |"
        )
    return "\n".join(lines)


def verdict_table(metrics_dir: Path, categories: Sequence[str]) -> str:
    """Return the markdown table of the verdicts at each detector's threshold (``metrics/C.json`` ``verdict``):
    threshold, false-reject rate on validation/good and test/good, false-accept rate per anomaly type, in %."""
    lines = [
        "| category | threshold | false rejects, validation/good | false rejects, test/good | "
        "false accepts, logical | false accepts, structural | false accepts, all |",
        "|---|---|---|---|---|---|---|",
    ]

    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}"

    for c in categories:
        v = read_json(metrics_dir / f"{c}.json").get("verdict", {})
        far = v.get("false_accept_rate", {})
        lines.append(
            f"| {c} | {v.get('threshold', float('nan')):.2f} | {pct(v.get('validation_false_reject_rate'))} | "
            f"{pct(v.get('false_reject_rate'))} | {pct(far.get('logical_anomalies'))} | "
            f"{pct(far.get('structural_anomalies'))} | {pct(far.get('all'))} |"
        )
    return "\n".join(lines)


def update_readme(readme: Path, table: str, start: str = START, end: str = END) -> None:
    """Replace the text between the ``start`` and ``end`` markers of ``readme`` with ``table`` (atomically)."""
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with atomic_path(readme) as tmp:
        tmp.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")


def write_roc_csvs(scores: pd.DataFrame, out_dir: Path, category: str) -> dict[str, str]:
    """Write ``<out_dir>/<category>_<kind>.csv`` (fpr, tpr) of the fused score for logical and structural.

    A curve that is undefined (no good or no ``kind`` test image) is not written (a stale file of it is removed);
    ``out_dir`` is created in any case.

    Returns:
        ``{kind: reason}`` of the curves not written (empty when both are).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = scores[scores["split"] == "test"]
    types = test["type"].tolist()
    skipped: dict[str, str] = {}
    for kind in ANOMALY_KINDS:
        dest = out_dir / f"{category}_{kind}.csv"
        reason = auroc_undefined_reason(types, kind)
        if reason is not None:
            dest.unlink(missing_ok=True)
            skipped[kind] = reason
            log.warning("%s: no %s ROC curve: %s", category, kind, reason)
            continue
        fpr, tpr = roc_points(test["fused"].to_numpy(dtype=np.float64), types, kind)
        frame = pd.DataFrame({"fpr": np.round(fpr, 5), "tpr": np.round(tpr, 5)})
        with atomic_path(dest) as tmp:
            frame.to_csv(tmp, index=False)
    return skipped


def visual_report(category: LocoCategory, scores: pd.DataFrame, scores_dir: Path, per_type: int = 4) -> np.ndarray:
    """Return a picture: for ``per_type`` test images of each type, the image, the anomaly map overlay and the
    segmentation, captioned with the fused score (one captioned blank tile when there are no test images)."""
    test = scores[scores["split"] == "test"]
    by_key = category.by_key()
    tiles: list[tuple[str, np.ndarray]] = []
    for type_ in ("good", "logical_anomalies", "structural_anomalies"):
        rows = test[test["type"] == type_]
        picks = (
            rows.iloc[np.linspace(0, len(rows) - 1, min(per_type, len(rows))).round().astype(int)]
            if len(rows)
            else rows
        )
        for _, row in picks.iterrows():
            rec = by_key[row["key"]]
            image = read_image(rec.path)
            amap = read_anomaly_map(anomaly_map_path(scores_dir / "maps", category.name, rec.type, rec.stem))
            tiles.append((f"{type_[:10]} {rec.stem} s={row['fused']:.1f}", image))
            tiles.append(("anomaly map", heat_overlay(image, amap)))
            seg = read_label_png(scores_dir / "segmentation" / "test" / rec.type / f"{rec.stem}.png")
            tiles.append(("segmentation", colorize(seg)))
    if not tiles:
        tiles.append(("no test images", np.full((160, 160, 3), 255, dtype=np.uint8)))
    return tile_grid(tiles, columns=6, tile_size=160)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the results table of a summary.json; optionally write it into the README."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", default="metrics/summary.json")
    parser.add_argument("--readme", help="rewrite the results section of this README")
    args = parser.parse_args(argv)
    summary = read_json(args.summary)
    table = results_table(summary)
    quality = quality_table(Path(args.summary).parent, summary["categories"])
    verdicts = verdict_table(Path(args.summary).parent, summary["categories"])
    print(table, quality, verdicts, sep="\n\n")
    if args.readme:
        update_readme(Path(args.readme), table)
        update_readme(Path(args.readme), quality, QUALITY_START, QUALITY_END)
        update_readme(Path(args.readme), verdicts, VERDICT_START, VERDICT_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
