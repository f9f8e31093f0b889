"""The artifact contract: where each DVC stage writes, in one place.

Every path a stage script reads or writes comes from here; ``dvc.yaml`` spells the same paths (its ``outs``,
``metrics`` and ``plots``), and ``tests/test_artifacts.py`` checks that the two agree, so a renamed folder is renamed
in both or the tests fail. Paths are relative to the repository root (DVC runs every stage there).

Per category (``C``) and stage:

========== ===============================================================================================
stage      outputs
========== ===============================================================================================
settings   ``data/settings/C/`` (one resolved params file per stage)
tag        ``data/tags/C.json``
ground     ``data/grounding/C/``; timing ``metrics/C/timing/ground.json``
propose    ``data/proposals/C/``; timing ``metrics/C/timing/propose.json``
refine     ``data/refined/C/`` (``instances/<stem>.png``); timing ``metrics/C/timing/refine.json``
features   ``data/components/C/``; timing ``metrics/C/timing/features.json``
cluster    ``data/clusters/C/``
filter     ``data/pseudo_labels/C/``; ``metrics/C/pseudo_labels.json`` and ``.png``
train_seg  ``models/C/segmenter.pt``; ``metrics/C/segmentation.json``, live metrics ``metrics/C/train_seg/``
train_lgst ``models/C/lgst.pt``; live metrics ``metrics/C/train_lgst/``
detector   ``models/C/detector.pt``; ``metrics/C/detector.json``
score      ``data/scores/C/``; ``metrics/C.json``
evaluate   ``metrics/report/``, ``metrics/roc/``, ``metrics/summary.json``
========== ===============================================================================================

The ``synth`` stage renders into ``synth.root`` (a params value, see :mod:`csad.data.synth`).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")
#: The settings stage's folder: ``<category>/<stage>.json``, the resolved params each stage depends on.
SETTINGS_DIR = DATA / "settings"

#: Output folder (or file) of each per-category stage, ``{category}`` standing for the category name. The order is
#: the pipeline's.
STAGE_OUTPUTS: dict[str, str] = {
    "settings": "data/settings/{category}",
    "tag": "data/tags/{category}.json",
    "ground": "data/grounding/{category}",
    "propose": "data/proposals/{category}",
    "refine": "data/refined/{category}",
    "features": "data/components/{category}",
    "cluster": "data/clusters/{category}",
    "filter": "data/pseudo_labels/{category}",
    "train_seg": "models/{category}/segmenter.pt",
    "train_lgst": "models/{category}/lgst.pt",
    "detector": "models/{category}/detector.pt",
    "score": "data/scores/{category}",
}

#: Metrics files (``cache: false`` in dvc.yaml) of the per-category stages.
STAGE_METRICS: dict[str, str] = {
    "ground": "metrics/{category}/timing/ground.json",
    "propose": "metrics/{category}/timing/propose.json",
    "refine": "metrics/{category}/timing/refine.json",
    "features": "metrics/{category}/timing/features.json",
    "filter": "metrics/{category}/pseudo_labels.json",
    "train_seg": "metrics/{category}/segmentation.json",
    "train_lgst": "metrics/{category}/train_lgst/metrics.json",
    "detector": "metrics/{category}/detector.json",
    "score": "metrics/{category}.json",
}

#: The refine stage's instance maps, ``<stem>.png`` (read by features, cluster, filter and train_seg).
INSTANCES = "instances"


def stage_output(stage: str, category: str) -> Path:
    """Return the output folder (or file) of the per-category ``stage`` for ``category``.

    Raises:
        KeyError: ``stage`` is not a per-category stage of :data:`STAGE_OUTPUTS` (names the known ones).
    """
    if stage not in STAGE_OUTPUTS:
        raise KeyError(f"no per-category stage {stage!r}; known: {', '.join(STAGE_OUTPUTS)}")
    return Path(STAGE_OUTPUTS[stage].format(category=category))


def stage_metrics(stage: str, category: str) -> Path:
    """Return the metrics file of the per-category ``stage`` for ``category``.

    Raises:
        KeyError: ``stage`` writes no metrics file of :data:`STAGE_METRICS`.
    """
    if stage not in STAGE_METRICS:
        raise KeyError(f"stage {stage!r} writes no metrics file; those that do: {', '.join(STAGE_METRICS)}")
    return Path(STAGE_METRICS[stage].format(category=category))


def category_metrics_dir(category: str) -> Path:
    """Return ``metrics/<category>/``: the per-category metrics, plots and live training logs."""
    return METRICS / category


def timing_file(category: str, stage: str) -> Path:
    """Return ``metrics/<category>/timing/<stage>.json``, the wall-clock figures of a pseudo-label stage."""
    return METRICS / category / "timing" / f"{stage}.json"


def instances_dir(category: str) -> Path:
    """Return the refine stage's instance maps folder ``data/refined/<category>/instances``."""
    return stage_output("refine", category) / INSTANCES


#: Outputs of the ``evaluate`` stage (over all categories).
REPORT_DIR = METRICS / "report"
ROC_DIR = METRICS / "roc"
SUMMARY_FILE = METRICS / "summary.json"
