"""DVC stage ``cluster@<category>``: component classes by MeanShift on the component descriptors.

    python stages/cluster.py --category pushpins

Seeded random projection (``cluster.proj_dim``, 0 = off), MeanShift with ``cluster.bandwidth`` (per category via
``cluster.overrides``), clusters with fewer than ``alpha`` x (number of train images) members dropped.
Writes ``data/clusters/<category>/clusters.parquet``, ``maps/<stem>.png`` and ``summary.json``.
"""

from __future__ import annotations

from csad.artifacts import stage_output
from csad.pseudo.steps import run_cluster
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Cluster the components of one category."""
    run = load_stage(argv, __doc__, "cluster")
    args, category, cfg = run.args, run.category, run.config
    run_cluster(
        stage_output("features", args.category),
        stage_output("refine", args.category),
        cfg,
        len(category.split("train")),
        stage_output("cluster", args.category),
    )


if __name__ == "__main__":
    run_stage(main)
