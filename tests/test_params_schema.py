"""The params check of the typed-config sections is derived from their dataclasses (``csad.params.schema_of``,
``csad.pipeline.settings``): one list of keys, messages that name the full key, and both profiles valid."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from csad.errors import ParamsError
from csad.params import CONFIG, NOT_A_PARAM, OVERRIDES, SCHEMA, ConfigSchema, check, load_params, schema_of
from csad.pipeline.settings import SECTION_CONFIGS, check_configs, config_paths
from csad.pseudo.histfilter_config import FilterConfig
from csad.pseudo.refine_config import RefineConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("params.yaml", "params/paper.yaml")


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return load_params(REPO_ROOT / "params.yaml")


def test_every_config_node_of_the_schema_has_its_dataclass() -> None:
    assert sorted(config_paths()) == sorted(SECTION_CONFIGS)
    for path in SECTION_CONFIGS:
        node: Any = SCHEMA
        for key in path.split("."):
            node = node[key]
        assert node == CONFIG, f"{path} is written out in SCHEMA as well as derived from its dataclass"


@pytest.mark.parametrize("path", sorted(SECTION_CONFIGS))
def test_a_section_schema_is_its_dataclass_fields(path: str) -> None:
    section = SECTION_CONFIGS[path]
    fields = {f.name for f in dataclasses.fields(section.config) if f.metadata.get("params", True)}
    keys = set(section.schema()) - {OVERRIDES}
    assert keys == fields | set(section.extra)
    assert "device" not in keys  # the device is runtime's, never a section's


@dataclasses.dataclass
class Inner:
    weights: str = "none"
    param: str = dataclasses.field(default="x", metadata=NOT_A_PARAM)


@dataclasses.dataclass
class Outer:
    ratio: float = 0.5
    count: int = 1
    flag: bool = False
    path: str | None = None
    sizes: tuple[int, int] = (1, 2)
    table: dict[str, float] = dataclasses.field(default_factory=dict)
    inner: Inner = dataclasses.field(default_factory=Inner)
    anything: Any = None


def test_schema_of_types_nesting_and_exclusions() -> None:
    schema = schema_of(Outer, overrides=True, backbone=Inner)
    assert isinstance(schema, ConfigSchema) and isinstance(schema["inner"], ConfigSchema)
    assert schema == {
        "ratio": float,
        "count": int,
        "flag": bool,
        "path": (str, type(None)),
        "sizes": list,
        "table": dict,
        "inner": {"weights": str},
        "anything": object,
        "backbone": {"weights": str},
        OVERRIDES: OVERRIDES,
    }
    check({"ratio": 1, "anything": [1], "inner": {}}, schema, partial=True)  # left-out keys take the defaults
    with pytest.raises(ParamsError, match=r"count must be int, got 1\.5"):
        check({"count": 1.5}, schema)
    with pytest.raises(ParamsError, match=r"unknown key inner\.param; known: weights"):
        check({"inner": {"param": "y"}}, schema)
    with pytest.raises(TypeError, match="needs a dataclass"):
        schema_of(dict)


def test_load_params_requires_a_mapping_at_a_config_section(tmp_path: Path, params: dict[str, Any]) -> None:
    import yaml

    bad = copy.deepcopy(params)
    bad["refine"] = 3
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ParamsError, match=r"params.yaml: refine must be a mapping, got 3"):
        load_params(path)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_builds_every_config_for_every_category(profile: str) -> None:
    tree = load_params(REPO_ROOT / profile)
    categories = sorted(set(tree["categories"]) | set(tree.get("synth", {}).get("categories", [])))
    check_configs(tree, categories, profile)


@pytest.mark.parametrize(
    ("where", "key", "value", "message"),
    [
        (("cluster",), "bandwith", 1.0, r"unknown key cluster\.bandwith \(did you mean cluster\.bandwidth\?\)"),
        (
            ("cluster", OVERRIDES, "pushpins"),
            "bandwith",
            1.0,
            r"unknown key cluster\.overrides\.pushpins\.bandwith \(did you mean cluster\.overrides\.pushpins\.band",
        ),
        (("segment", "train"), "epoch", 3, r"unknown key segment\.train\.epoch \(did you mean segment\.train\.epochs"),
        (
            ("segment", OVERRIDES, "pushpins", "train"),
            "lr",
            "fast",
            r"segment\.overrides\.pushpins\.train\.lr must be float, got 'fast'",
        ),
        (("segment", "train", "augment", "lsa_config"), "boundry", 0.1, r"lsa_config\.boundary\?"),
        (("lgst", "backbone"), "nmae", "x", r"unknown key lgst\.backbone\.nmae \(did you mean lgst\.backbone\.name\?"),
        (("lgst",), "device", "cuda", r"unknown key lgst\.device; known: ae_base_dim"),
        (("features", "backbone"), "param", "x", r"unknown key features\.backbone\.param; known: name, seed, weights"),
        (("score",), OVERRIDES, {}, r"unknown key score\.overrides; known: batch_size"),
        (("refine",), "mode", "medium", r"refine\.mode must be one of"),
        (("filter", OVERRIDES, "pushpins"), "prune_over", "some", r"filter\.prune_over must be one of largest"),
    ],
)
def test_a_wrong_config_key_or_value_names_its_full_key(
    params: dict[str, Any], where: tuple[str, ...], key: str, value: Any, message: str
) -> None:
    bad = copy.deepcopy(params)
    bad["categories"] = sorted(set(bad["categories"]) | {"pushpins"})
    node = bad
    for part in where:
        node = node.setdefault(part, {})
    node[key] = value
    with pytest.raises(ParamsError, match=message):
        check_configs(bad, ["pushpins"])


def test_the_settings_stage_checks_the_configs_before_writing(
    tmp_path: Path, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from csad.pipeline import settings

    monkeypatch.chdir(tmp_path)
    bad = copy.deepcopy(params)
    bad["detector"]["threshold_quantil"] = 0.99
    category = bad["categories"][0]
    with pytest.raises(ParamsError, match=r"detector\.threshold_quantil \(did you mean detector\.threshold_quantile"):
        settings.run(bad, category, "params.yaml")
    assert not (tmp_path / "data").exists()
    settings.run(params, category, "params.yaml")
    assert (tmp_path / "data" / "settings" / category / "detector.json").is_file()


def test_config_values_refused_by_the_dataclass_name_their_key() -> None:
    from csad.params import build_with_kwargs

    with pytest.raises(ParamsError, match=r"params.yaml: refine\.mode must be one of"):
        build_with_kwargs(RefineConfig, {"mode": "medium"}, "refine")
    with pytest.raises(ParamsError, match=r"params.yaml: filter\.prune_over must be one of largest, labeled, all"):
        build_with_kwargs(FilterConfig, {"prune_over": "some"}, "filter")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("bandwidth_quantile", 2, r"^params/mine\.yaml: cluster\.bandwidth_quantile must be in \(0, 1\], got 2$"),
        ("merge_max_std_ratio", -1, r"^params/mine\.yaml: cluster\.merge_max_std_ratio must be a finite number >= 0"),
        ("merge_min_copresence", 1.5, r"^params/mine\.yaml: cluster\.merge_min_copresence must be in \[0, 1\]"),
    ],
)
def test_a_value_the_config_refuses_names_the_params_file_that_was_read(
    params: dict[str, Any], key: str, value: Any, message: str
) -> None:
    bad = copy.deepcopy(params)
    bad["cluster"][key] = value
    with pytest.raises(ParamsError, match=message):
        check_configs(bad, bad["categories"][:1], "params/mine.yaml")
