"""The ``detector`` stage: the deployable detector, built from the trained models and fitted on validation/good
(fusion statistics and decision threshold).

Reads ``models/<category>/{segmenter,lgst}.pt`` and the validation/good images; writes
``models/<category>/detector.pt`` (:class:`csad.detector.model.CsadDetector`, one state dict, no other file needed)
and ``metrics/<category>/detector.json`` (threshold, fusion statistics, validation score range). The algorithm is
:func:`csad.detector.build.build_detector`.
"""

from __future__ import annotations

from typing import Any

from csad.artifacts import stage_metrics, stage_output
from csad.data.loco import read_image
from csad.detector.build import build_detector
from csad.detector.settings import DetectorSettings
from csad.io import round_metrics, write_json
from csad.params import build_with_kwargs
from csad.pipeline.stage import StageInputs


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``detector`` stage for one category; return its summary (threshold, fusion statistics)."""
    name = inputs.category.name
    settings = build_with_kwargs(DetectorSettings, dict(inputs.config), "detector")
    validation = [read_image(r.path) for r in inputs.category.split("validation")]
    detector, summary = build_detector(
        name,
        stage_output("train_seg", name),
        stage_output("train_lgst", name),
        validation,
        settings,
        inputs.device(),
        progress=True,
    )
    detector.save(stage_output("detector", name), meta={"category": name, **summary})
    write_json(stage_metrics("detector", name), round_metrics(summary))
    return summary
