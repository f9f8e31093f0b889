"""DVC stage ``cluster@<category>``: component classes by MeanShift on the component descriptors.

    python stages/cluster.py --category pushpins

Seeded random projection (``cluster.proj_dim``, 0 = off), MeanShift with ``cluster.bandwidth`` (per category via
``cluster.overrides``), clusters with fewer than ``alpha`` x (number of train images) members dropped.
Writes ``data/clusters/<category>/clusters.parquet``, ``maps/<stem>.png`` and ``summary.json``.
"""

from __future__ import annotations

from csad.pipeline import cluster
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Cluster the components of one category."""
    cluster.run(load_stage(argv, __doc__, "cluster"))


if __name__ == "__main__":
    run_stage(main)
