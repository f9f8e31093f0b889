"""The ``evaluate`` stage: results over all categories.

Reads ``metrics/<category>.json`` and ``data/scores/<category>/`` of every category; writes
``metrics/summary.json`` (means over categories, :func:`csad.report.summarize`), ROC curves of the fused score
(``metrics/roc/<category>_<logical|structural>.csv``) and a visual report per category
(``metrics/report/<category>.png``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from csad.artifacts import REPORT_DIR, ROC_DIR, SUMMARY_FILE, stage_metrics, stage_output
from csad.data.loco import LocoCategory
from csad.errors import CsadError
from csad.io import read_json, write_json, write_png
from csad.report import summarize, visual_report, write_roc_csvs


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Summarise the scores of every category of the checked ``params``; return the summary.

    Raises:
        CsadError: a category's score metrics or scores table is missing (names the stage to run).
    """
    per_category = {}
    for name in params["categories"]:
        metrics_path = stage_metrics("score", name)
        if not metrics_path.is_file():
            raise CsadError(f"{metrics_path} is missing: run the score stage (dvc repro score@{name})")
        per_category[name] = read_json(metrics_path)
        scores_file = stage_output("score", name) / "scores.parquet"
        if not scores_file.is_file():
            raise CsadError(f"{scores_file} is missing: run the score stage (dvc repro score@{name})")
        scores = pd.read_parquet(scores_file)
        write_roc_csvs(scores, ROC_DIR, name)
        category = LocoCategory.open(params["dataset"]["root"], name)
        write_png(REPORT_DIR / f"{name}.png", visual_report(category, scores, stage_output("score", name)))
    summary = summarize(per_category)
    write_json(SUMMARY_FILE, summary)
    return summary
