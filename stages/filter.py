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

from csad.pipeline import filter
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Filter the clustered components of one category into pseudo-label maps."""
    filter.run(load_stage(argv, __doc__, "filter"))


if __name__ == "__main__":
    run_stage(main)
