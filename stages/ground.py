"""DVC stage ``ground@<category>``: object-level instances + background mask per train image (X_sem).

    python stages/ground.py --category pushpins

Backend ``grounded_sam``: GroundingDINO boxes for the tag prompt, then SAM box prompts (params
``ground.grounded_sam``: config, checkpoint, bert_path, sam_checkpoint, thresholds, background prompt).
Backend ``pretrained``: parts by colour and pretrained CNN texture, background learned from the train images
borders (params ``ground.pretrained``; csad/pseudo/pretrained.py); also writes ``model.npz`` (the fitted model).
Backend ``classical``: a weight-free foreground/instance segmentation by colour (params ``ground.classical``).
Writes ``data/grounding/<category>/{instances,background}/<stem>.png``, ``grounding.parquet``, ``summary.json``.
"""

from __future__ import annotations

from csad.pipeline import ground
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Ground the tag prompt in every train image of one category."""
    ground.run(load_stage(argv, __doc__, "ground"))


if __name__ == "__main__":
    run_stage(main)
