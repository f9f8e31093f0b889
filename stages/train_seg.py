"""DVC stage ``train_seg@<category>``: the component segmenter (frozen backbone + DeepLabV3+ decoder, LSA) trained
on the pseudo-labels, and the Patch Histogram fitted on its predictions.

    python stages/train_seg.py --category pushpins

Params ``segment`` (backbone, train schedule/losses/augmentation, patch_hist grids and trimming; per category via
``segment.overrides``) and ``runtime``. Writes ``models/<category>/segmenter.pt``, the training curves
``metrics/<category>/train_seg/`` (dvclive) and ``metrics/<category>/segmentation.json`` (mIoU of the predictions
on test/good against component_gt, when the dataset has it).
"""

from __future__ import annotations

from dvclive import Live

from csad.artifacts import category_metrics_dir, stage_metrics, stage_output
from csad.io import write_json
from csad.seg.checkpoint import load_segmenter
from csad.seg.run import segmentation_quality, train_category_segmenter
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Train the segmenter of one category."""
    run = load_stage(argv, __doc__, "train_seg")
    args, category, cfg = run.args, run.category, run.config
    device = run.device()
    checkpoint = stage_output("train_seg", args.category)
    with Live(dir=str(category_metrics_dir(args.category) / "train_seg"), save_dvc_exp=False, dvcyaml=None) as live:

        def log_step(step: int, losses: dict[str, float]) -> None:
            for name, value in losses.items():
                live.log_metric(f"train/{name}", float(value), plot=True)
            live.next_step()

        summary = train_category_segmenter(
            category,
            stage_output("filter", args.category),
            stage_output("refine", args.category),
            stage_output("propose", args.category),
            cfg,
            device,
            checkpoint,
            callback=log_step,
        )
    model, _, size = load_segmenter(checkpoint, device=device)
    quality = segmentation_quality(category, model, size, device)
    write_json(stage_metrics("train_seg", args.category), {**quality, **summary})


if __name__ == "__main__":
    run_stage(main)
