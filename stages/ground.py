"""DVC stage ``ground@<category>``: object-level instances + background mask per train image (X_sem).

    python stages/ground.py --category pushpins

Backend ``grounded_sam``: GroundingDINO boxes for the tag prompt, then SAM box prompts (params
``ground.grounded_sam``: config, checkpoint, bert_path, sam_checkpoint, thresholds, background prompt).
Backend ``classical``: a weight-free foreground/instance segmentation (params ``ground.classical``).
Writes ``data/grounding/<category>/{instances,background}/<stem>.png``, ``grounding.parquet``, ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

from csad.errors import ParamsError
from csad.io import read_json
from csad.params import build_with_kwargs
from csad.pseudo.steps import run_grounding
from csad.stage import load_stage, run_stage, write_timing


def main(argv: list[str] | None = None) -> None:
    """Ground the tag prompt in every train image of one category."""
    run = load_stage(argv, __doc__, "ground")
    args, category, cfg = run.args, run.category, run.config
    tags_file = Path("data/tags") / f"{args.category}.json"
    if not tags_file.is_file():
        raise ParamsError(f"{tags_file} is missing: run the tag stage first (dvc repro tag@{args.category})")
    prompt = read_json(tags_file)["prompt"]
    if cfg["backend"] == "grounded_sam":
        from csad.pseudo.grounding import build_grounded_sam

        backend = build_grounded_sam(cfg["grounded_sam"], run.device())
    elif cfg["backend"] == "classical":
        from csad.pseudo.classical import ClassicalGrounding

        backend = build_with_kwargs(ClassicalGrounding, cfg["classical"], "ground.classical")
    else:
        raise ParamsError(
            f"{args.params}: ground.backend must be 'grounded_sam' or 'classical', got {cfg['backend']!r}"
        )
    summary = run_grounding(category.split("train"), backend, prompt, Path("data/grounding") / args.category)
    write_timing(args.category, "ground", summary)


if __name__ == "__main__":
    run_stage(main)
