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

from csad.artifacts import stage_output
from csad.errors import ParamsError
from csad.io import read_json
from csad.pseudo.backends import build_ground_backend
from csad.pseudo.steps import run_grounding
from csad.stage import load_stage, run_stage, write_timing


def main(argv: list[str] | None = None) -> None:
    """Ground the tag prompt in every train image of one category."""
    run = load_stage(argv, __doc__, "ground")
    args, category, cfg = run.args, run.category, run.config
    tags_file = stage_output("tag", args.category)
    if not tags_file.is_file():
        raise ParamsError(f"{tags_file} is missing: run the tag stage first (dvc repro tag@{args.category})")
    prompt = read_json(tags_file)["prompt"]
    backend = build_ground_backend(cfg, run.device(), args.params)
    summary = run_grounding(category.split("train"), backend, prompt, stage_output("ground", args.category))
    write_timing(args.category, "ground", summary)


if __name__ == "__main__":
    run_stage(main)
