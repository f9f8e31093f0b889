"""DVC stage ``evaluate``: results over all categories.

    python stages/evaluate.py

Reads ``metrics/<category>.json`` and ``data/scores/<category>/`` of every category in params ``categories``.
Writes ``metrics/summary.json`` (means over categories as the paper reports them), ROC curves of the fused score
(``metrics/roc/<category>_<logical|structural>.csv``, DVC plots) and a visual report per category
(``metrics/report/<category>.png``: test images, anomaly map, segmentation).

Any subset of test image types works: an undefined metric is ``null`` with ``"<key>_reason"`` beside it, means
average the defined values (``missing`` in summary.json names the rest), and an undefined ROC curve is not written.
"""

from __future__ import annotations

import argparse

import pandas as pd

from csad.artifacts import REPORT_DIR, ROC_DIR, SUMMARY_FILE, stage_metrics, stage_output
from csad.data.loco import LocoCategory
from csad.errors import CsadError
from csad.io import read_json, write_json, write_png
from csad.params import load_params
from csad.report import summarize, visual_report, write_roc_csvs
from csad.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    """Summarise every category's scores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    per_category = {}
    for name in params["categories"]:
        metrics_path = stage_metrics("score", name)
        if not metrics_path.is_file():
            raise CsadError(f"{metrics_path} is missing: run the score stage (dvc repro score@{name})")
        per_category[name] = read_json(metrics_path)
        scores_dir = stage_output("score", name)
        if not (scores_dir / "scores.parquet").is_file():
            raise CsadError(f"{scores_dir / 'scores.parquet'} is missing: run the score stage (dvc repro score@{name})")
        scores = pd.read_parquet(scores_dir / "scores.parquet")
        write_roc_csvs(scores, ROC_DIR, name)
        category = LocoCategory.open(params["dataset"]["root"], name)
        write_png(REPORT_DIR / f"{name}.png", visual_report(category, scores, scores_dir))
    write_json(SUMMARY_FILE, summarize(per_category))


if __name__ == "__main__":
    run_stage(main)
