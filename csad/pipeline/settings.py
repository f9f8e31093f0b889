"""The ``settings`` stage: check the params file against the typed configs, then write what every per-category stage
reads from it, one file each.

Every params section that is one typed config (marked :data:`csad.params.CONFIG` in :data:`csad.params.SCHEMA`) is
listed in :data:`SECTION_CONFIGS` with its dataclass; its schema is derived from the dataclass
(:func:`csad.params.schema_of`), so a new field is a new params key with no second list to keep equal by hand.
:func:`check_configs` checks every such section, its per-category overrides included, with the same one-line
messages as :func:`csad.params.check` (unknown key with the closest known one, wrong type), then builds the
category's config so its own checks (ranges, choices) fail here, at the first stage, rather than an hour into
the pipeline.

Writes ``data/settings/<category>/<stage>.json`` for every stage of :data:`csad.settings.STAGE_SECTIONS`
(:func:`csad.settings.tracked_settings`). The other stages depend on their file, not on params sections, so DVC
reruns exactly the stages whose values changed.

The stage runs first for every category, so it stays cheap: every dataclass here comes from a module that imports
no torch, OpenCV or scikit-learn (``csad/models/spec.py``, ``csad/pseudo/<module>_config.py``, ``csad/seg/config.py``,
``csad/lgst/config.py``, ``csad/detector/settings.py``), and this module imports in a fraction of a second
(``tests/test_light_imports.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from csad.detector.settings import DetectorSettings, ScoreSettings
from csad.errors import ParamsError
from csad.io import write_json
from csad.lgst.config import LgstConfig, config_from_params
from csad.models.spec import BackboneSpec
from csad.params import CONFIG, OVERRIDES, SCHEMA, ConfigSchema, Schema, build_with_kwargs, check, resolve, schema_of
from csad.pipeline.stage import settings_path
from csad.pseudo.cluster_config import ClusterConfig
from csad.pseudo.features_config import ComponentFeatureConfig
from csad.pseudo.histfilter_config import FilterConfig
from csad.pseudo.refine_config import RefineConfig
from csad.pseudo.regions_config import PartSegmentation
from csad.seg.config import SegTrainConfig
from csad.settings import STAGE_SECTIONS, tracked_settings


@dataclass(frozen=True)
class SectionConfig:
    """A params section that is one typed config.

    Attributes:
        config: the dataclass; its params keys are its fields (:func:`csad.params.schema_of`).
        build: returns the config of one category's resolved section (raises ParamsError on a bad value); the same
            call the section's stage makes.
        overrides: the section has the per-category ``overrides`` key (a sub-section's overrides live in its parent's).
        extra: keys read beside the config's fields, each with its own dataclass (``lgst.backbone``).
    """

    config: type
    build: Callable[[dict[str, Any]], Any]
    overrides: bool = True
    extra: Mapping[str, type] = field(default_factory=dict)

    def schema(self) -> ConfigSchema:
        """Return the params schema of the section (:func:`csad.params.schema_of`)."""
        return schema_of(self.config, overrides=self.overrides, **self.extra)


def _built_by(config: type, param: str) -> Callable[[dict[str, Any]], Any]:
    return lambda values: build_with_kwargs(config, values, param)


#: Dotted params path -> its typed config: every :data:`csad.params.CONFIG` node of :data:`csad.params.SCHEMA`.
SECTION_CONFIGS: dict[str, SectionConfig] = {
    "parts": SectionConfig(PartSegmentation, _built_by(PartSegmentation, "parts")),
    "refine": SectionConfig(RefineConfig, _built_by(RefineConfig, "refine")),
    "features": SectionConfig(ComponentFeatureConfig, _built_by(ComponentFeatureConfig, "features")),
    "cluster": SectionConfig(ClusterConfig, _built_by(ClusterConfig, "cluster")),
    "filter": SectionConfig(FilterConfig, _built_by(FilterConfig, "filter")),
    "segment.train": SectionConfig(SegTrainConfig, _built_by(SegTrainConfig, "segment.train"), overrides=False),
    "lgst": SectionConfig(LgstConfig, config_from_params, extra={"backbone": BackboneSpec}),
    "detector": SectionConfig(DetectorSettings, _built_by(DetectorSettings, "detector")),
    "score": SectionConfig(ScoreSettings, _built_by(ScoreSettings, "score"), overrides=False),
}


def config_paths(schema: Schema = SCHEMA, prefix: str = "") -> list[str]:
    """Return the dotted paths of the :data:`csad.params.CONFIG` nodes of ``schema``, in schema order.

    >>> config_paths({"a": int, "b": "config", "c": {"d": "config", "e": str}})
    ['b', 'c.d']
    """
    out: list[str] = []
    for key, node in schema.items():
        if node == CONFIG:
            out.append(prefix + key)
        elif isinstance(node, dict):
            out.extend(config_paths(node, f"{prefix}{key}."))
    return out


def check_configs(params: dict[str, Any], categories: list[str], source: str = "params.yaml") -> None:
    """Check every typed-config section of ``params`` (already checked by :func:`csad.params.load_params`) against
    its dataclass, overrides included, and build the config of each of ``categories``.

    Raises:
        ParamsError: an unknown key (with the closest known one), a value of the wrong type, or a value the config
            refuses; the message names the full key (``cluster.overrides.pushpins.bandwith``) and ``source``.
    """
    for path, section in SECTION_CONFIGS.items():
        head, *rest = path.split(".")
        schema = section.schema()
        check(_at(params[head], rest), schema, source, f"{path}.")
        for category, over in (params[head].get(OVERRIDES) or {}).items():
            if rest and isinstance(over, dict) and isinstance(_at(over, rest, None), dict):
                check(_at(over, rest), schema, source, f"{head}.{OVERRIDES}.{category}.{'.'.join(rest)}.")
        for category in categories:
            try:
                section.build(dict(_at(resolve(params[head], category), rest)))
            except ParamsError as err:  # the builders name the default file; name the one that was read
                default = "params.yaml: "
                if source == "params.yaml" or not str(err).startswith(default):
                    raise
                raise ParamsError(f"{source}: {str(err).removeprefix(default)}") from err


def _at(tree: Any, keys: list[str], default: Any = ...) -> Any:
    """Return ``tree[k0][k1]...`` (``default`` when a key is missing and ``default`` is given)."""
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            if default is ...:
                raise KeyError(".".join(keys))
            return default
        tree = tree[key]
    return tree


def run(params: dict[str, Any], category: str, params_file: str) -> None:
    """Check the typed-config sections of the ``params`` read from ``params_file`` (:func:`check_configs`), then
    write the settings files of ``category``.

    Raises:
        ParamsError: ``category`` is not listed in ``categories``, or a typed-config section is wrong.
    """
    if category not in params["categories"]:
        raise ParamsError(
            f"{params_file}: category {category!r} is not in categories ({', '.join(params['categories'])})"
        )
    check_configs(params, [category], params_file)
    for stage in STAGE_SECTIONS:
        write_json(settings_path(category, stage), tracked_settings(params, stage, category))
