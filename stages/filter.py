"""DVC stage ``filter@<category>``: the final semantic pseudo-labels (0 = background, 1..K = classes).

    python stages/filter.py --category pushpins

Class-area histograms per image, HDBSCAN (min cluster size fallback never below 2), the top-ratio closest images
as the labelled set, classes with a small mean area pruned and the rest remapped to 1..K (params ``filter``).
Writes ``data/pseudo_labels/<category>/`` (labels/<stem>.png, labeled.parquet, histograms.parquet, classes.json),
the metric ``metrics/<category>/pseudo_labels.json`` (consistency across the train images: largest HDBSCAN
cluster share and per-class presence; mIoU against component_gt when the dataset has it, with the instance ceiling:
the best mIoU a clustering of the refined instances could reach, read from ``data/refined/<category>/``) and the
plot ``metrics/<category>/pseudo_labels.png``.
"""

from __future__ import annotations

import pandas as pd

from csad.artifacts import instances_dir, stage_metrics, stage_output
from csad.io import write_json, write_png
from csad.pseudo.quality import pseudo_label_grid, pseudo_label_quality
from csad.pseudo.steps import run_filter
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Filter the clustered components of one category into pseudo-label maps."""
    run = load_stage(argv, __doc__, "filter")
    args, category, cfg = run.args, run.category, run.config
    out = stage_output("filter", args.category)
    records = category.split("train")
    summary = run_filter(
        records, stage_output("features", args.category), stage_output("cluster", args.category), cfg, out
    )
    labeled = pd.read_parquet(out / "labeled.parquet")
    labeled_keys = labeled.loc[labeled["labeled"], "key"].tolist()
    metrics = {
        "num_classes": summary["classes"],
        "labeled_images": summary["labeled_images"],
        "train_images": summary["images"],
        **summary["consistency"],
        **pseudo_label_quality(
            category,
            out / "labels",
            labeled_keys,
            summary["classes"],
            instances_dir=instances_dir(args.category),
        ),
    }
    write_json(stage_metrics("filter", args.category), metrics)
    write_png(
        stage_metrics("filter", args.category).with_suffix(".png"),
        pseudo_label_grid(records, out / "labels", set(labeled_keys)),
    )


if __name__ == "__main__":
    run_stage(main)
