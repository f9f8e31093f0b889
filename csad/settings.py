"""What each per-category stage reads from ``params.yaml``: its settings, resolved for one category.

A stage of category C reads its own section with C's ``overrides`` deep-merged in (:func:`csad.params.resolve`),
``dataset.root`` and, where it runs a network, ``runtime.device`` and ``runtime.deterministic``. It does not read
the other categories' overrides, the settings of a backend it does not run, or a speed-only knob
(:data:`SPEED_ONLY`: thread counts and work sizes that change the time a stage takes, not its result).

:func:`tracked_settings` returns exactly those values; the ``settings`` stage writes them, one JSON file per stage,
and every other stage depends on its file instead of on whole params sections. So a change to one category's
override reruns that category's stages only, and a change to ``runtime.num_threads`` reruns nothing but the
(cheap) ``settings`` stage. :func:`stage_config` is what the stage itself runs with: the tracked section plus the
speed-only knobs.

>>> params = {"dataset": {"root": "d"}, "runtime": {"device": "auto", "num_threads": 4, "deterministic": True},
...           "cluster": {"bandwidth": 2.0, "n_jobs": 2, "overrides": {"a": {"bandwidth": 1.0}}}}
>>> tracked_settings(params, "cluster", "a")
{'stage': 'cluster', 'category': 'a', 'dataset_root': 'd', 'cluster': {'bandwidth': 1.0}}
>>> stage_config(params, "cluster", "b")
{'bandwidth': 2.0, 'n_jobs': 2}
"""

from __future__ import annotations

import copy
from typing import Any

from csad.params import resolve

#: The params section each per-category stage reads.
STAGE_SECTIONS: dict[str, str] = {
    "tag": "tag",
    "ground": "ground",
    "propose": "propose",
    "refine": "refine",
    "features": "features",
    "cluster": "cluster",
    "filter": "filter",
    "train_seg": "segment",
    "train_lgst": "lgst",
    "detector": "detector",
    "score": "score",
}

#: Stages whose weight-free backends read the shared ``parts`` section (the part segmentation): stage -> backends.
PARTS_READERS: dict[str, tuple[str, ...]] = {
    "ground": ("pretrained", "classical"),
    "propose": ("classical",),
}

#: Stages that always run a network and so read ``runtime.device`` and ``runtime.deterministic``.
DEVICE_STAGES: frozenset[str] = frozenset({"train_seg", "train_lgst", "detector", "score"})

#: Stages that run a network only with some settings: stage -> (key, values that need a device).
DEVICE_WHEN: dict[str, tuple[str, tuple[str, ...]]] = {
    "tag": ("backend", ("ram",)),
    "ground": ("backend", ("grounded_sam", "pretrained")),
    "propose": ("backend", ("sam",)),
    "features": ("descriptors", ("cnn",)),
}

#: Sections whose ``backend`` key selects one sub-section; the others are not read.
BACKENDS: dict[str, dict[str, str]] = {
    "tag": {"params": "tags", "ram": "ram"},
    "ground": {"classical": "classical", "grounded_sam": "grounded_sam", "pretrained": "pretrained"},
    "propose": {"classical": "classical", "sam": "sam"},
}

#: Speed-only knobs (dotted keys): they set how fast a stage runs, not what it computes, so no stage depends on them.
SPEED_ONLY: tuple[str, ...] = (
    "runtime.num_threads",
    "cluster.n_jobs",
    "propose.sam.points_per_batch",
)


def stage_config(params: dict[str, Any], stage: str, category: str) -> dict[str, Any]:
    """Return the section that ``stage`` runs with for ``category``: overrides merged, speed-only knobs kept.

    For ``tag``, ``tags`` is the category's own list (``None`` when it has none). For ``ground`` and ``propose``,
    ``parts`` is the resolved ``parts`` section (the part segmentation their weight-free backends share).

    Raises:
        KeyError: ``stage`` is not a per-category stage (:data:`STAGE_SECTIONS`).
    """
    section = STAGE_SECTIONS[stage]
    config = resolve(params[section], category)
    if stage == "tag":
        config["tags"] = (config.get("tags") or {}).get(category)
    if stage in PARTS_READERS and "parts" in params:
        config["parts"] = resolve(params["parts"], category)
    return config


def tracked_settings(params: dict[str, Any], stage: str, category: str) -> dict[str, Any]:
    """Return every params value that ``stage`` of ``category`` reads and that can change its result.

    That is :func:`stage_config` without the speed-only knobs and without the sub-sections of backends that the
    stage does not run, plus ``dataset.root`` and, for a stage that runs a network (:func:`uses_device`),
    ``runtime.device`` and ``runtime.deterministic``. The result is plain JSON data (the ``settings`` stage writes it).

    Raises:
        KeyError: ``stage`` is not a per-category stage (:data:`STAGE_SECTIONS`).
    """
    section = STAGE_SECTIONS[stage]
    config = copy.deepcopy(stage_config(params, stage, category))
    for dotted in SPEED_ONLY:
        head, *rest = dotted.split(".")
        if head == section:
            _drop(config, rest)
    chosen = BACKENDS.get(stage, {}).get(str(config.get("backend")))
    if chosen is not None:
        for other in set(BACKENDS[stage].values()) - {chosen}:
            config.pop(other, None)
    if stage in PARTS_READERS and config.get("backend") not in PARTS_READERS[stage]:
        config.pop("parts", None)
    out: dict[str, Any] = {"stage": stage, "category": category, "dataset_root": params["dataset"]["root"]}
    if uses_device(stage, config):
        runtime = params.get("runtime", {})
        out["runtime"] = {"device": runtime.get("device", "auto"), "deterministic": runtime.get("deterministic", True)}
    out[section] = config
    return out


def uses_device(stage: str, config: dict[str, Any]) -> bool:
    """Return whether ``stage`` with its resolved ``config`` runs a network (so its result depends on the device)."""
    if stage in DEVICE_STAGES:
        return True
    if stage not in DEVICE_WHEN:
        return False
    key, values = DEVICE_WHEN[stage]
    chosen = config.get(key)
    chosen = chosen if isinstance(chosen, list) else [chosen]
    return any(v in values for v in chosen)


def _drop(tree: dict[str, Any], keys: list[str]) -> None:
    """Remove the nested key ``keys`` from ``tree`` when it is there."""
    for key in keys[:-1]:
        tree = tree.get(key)
        if not isinstance(tree, dict):
            return
    tree.pop(keys[-1], None)
