"""DVC stage ``detector@<category>``: the deployable detector, built from the trained models and fitted on
validation/good (fusion statistics and decision threshold).

    python stages/detector.py --category pushpins

Params ``detector`` (fusion weights, trimming quantiles, threshold quantile, batch size) and ``runtime``. Reads
``models/<category>/{segmenter,lgst}.pt`` and the category's validation/good images. Writes
``models/<category>/detector.pt`` (:class:`csad.detector.model.CsadDetector`, one state dict, no other file needed)
and ``metrics/<category>/detector.json`` (threshold, fusion statistics, validation score range).
"""

from __future__ import annotations

from csad.artifacts import stage_metrics, stage_output
from csad.data.loco import read_image
from csad.detector.build import DetectorSettings, build_detector
from csad.io import round_metrics, write_json
from csad.params import build_with_kwargs
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Build the detector of one category."""
    run = load_stage(argv, __doc__, "detector")
    args, category = run.args, run.category
    settings = build_with_kwargs(
        DetectorSettings, {k: v for k, v in run.config.items() if k != "overrides"}, "detector"
    )
    validation = [read_image(r.path) for r in category.split("validation")]
    detector, summary = build_detector(
        args.category,
        stage_output("train_seg", args.category),
        stage_output("train_lgst", args.category),
        validation,
        settings,
        run.device(),
        progress=True,
    )
    detector.save(stage_output("detector", args.category), meta={"category": args.category, **summary})
    write_json(stage_metrics("detector", args.category), round_metrics(summary))


if __name__ == "__main__":
    run_stage(main)
