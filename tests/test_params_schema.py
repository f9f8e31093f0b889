"""The params check (``csad.params.SCHEMA``) and the typed configs agree: each section with a config names exactly
that config's fields, and both params profiles build every config for every category."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from csad.detector.build import DetectorSettings
from csad.lgst.config import LgstConfig, config_from_params
from csad.params import OVERRIDES, SCHEMA, build_with_kwargs, load_params, resolve
from csad.pipeline.score import ScoreSettings
from csad.pseudo.cluster import ClusterConfig
from csad.pseudo.features import ComponentFeatureConfig
from csad.pseudo.histfilter import FilterConfig
from csad.pseudo.refine import RefineConfig
from csad.pseudo.regions import PartSegmentation

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("params.yaml", "params/paper.yaml")

#: section -> (its config, fields that do not come from params: the device is runtime's).
CONFIGS: dict[str, tuple[Any, frozenset[str]]] = {
    "parts": (PartSegmentation, frozenset()),
    "refine": (RefineConfig, frozenset()),
    "features": (ComponentFeatureConfig, frozenset({"device"})),
    "cluster": (ClusterConfig, frozenset()),
    "filter": (FilterConfig, frozenset()),
    "lgst": (LgstConfig, frozenset({"device"})),
    "detector": (DetectorSettings, frozenset()),
    "score": (ScoreSettings, frozenset()),
}


@pytest.mark.parametrize("section", sorted(CONFIGS))
def test_schema_names_exactly_the_config_fields(section: str) -> None:
    config, not_params = CONFIGS[section]
    fields = {f.name for f in dataclasses.fields(config)} - not_params
    keys = set(SCHEMA[section]) - {OVERRIDES}
    if section == "lgst":
        keys -= {"backbone"}  # the teacher's BackboneSpec, read by config_from_params beside LgstConfig
    assert keys == fields


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_builds_every_config_for_every_category(profile: str) -> None:
    params = load_params(REPO_ROOT / profile)
    categories = sorted(set(params["categories"]) | set(params.get("synth", {}).get("categories", [])))
    for category in categories:
        for section, (config, _) in CONFIGS.items():
            values = resolve(params[section], category)
            if section == "lgst":
                config_from_params(values)
            else:
                build_with_kwargs(config, values, section)


def test_a_bad_value_names_its_key() -> None:
    from csad.errors import ParamsError

    with pytest.raises(ParamsError, match=r"params.yaml: refine\.mode must be one of"):
        build_with_kwargs(RefineConfig, {"mode": "medium"}, "refine")
    with pytest.raises(ParamsError, match=r"params.yaml: filter\.prune_over must be one of largest, labeled, all"):
        build_with_kwargs(FilterConfig, {"prune_over": "some"}, "filter")
    with pytest.raises(ParamsError, match=r"unknown key score\.batchsize \(did you mean score\.batch_size\?\)"):
        build_with_kwargs(ScoreSettings, {"batchsize": 4}, "score")
