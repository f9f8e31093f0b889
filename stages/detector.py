"""DVC stage ``detector@<category>``: the deployable detector, built from the trained models and fitted on
validation/good (fusion statistics and decision threshold).

    python stages/detector.py --category pushpins

Params ``detector`` (fusion weights, trimming quantiles, threshold quantile, batch size) and ``runtime``. Reads
``models/<category>/{segmenter,lgst}.pt`` and the category's validation/good images. Writes
``models/<category>/detector.pt`` (:class:`csad.detector.model.CsadDetector`, one state dict, no other file needed)
and ``metrics/<category>/detector.json`` (threshold, fusion statistics, validation score range).
"""

from __future__ import annotations

from csad.pipeline import detector
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Build the detector of one category."""
    detector.run(load_stage(argv, __doc__, "detector"))


if __name__ == "__main__":
    run_stage(main)
