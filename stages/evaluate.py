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

from csad.params import load_params
from csad.pipeline import evaluate
from csad.pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    """Summarise every category's scores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    evaluate.run(load_params(args.params))


if __name__ == "__main__":
    run_stage(main)
