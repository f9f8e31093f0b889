"""DVC tracks exactly the params each stage reads (its own category's, no speed-only knob), and every numeric
param survives DVC's `-S` round trip with its type."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from csad.errors import ParamsError
from csad.params import load_params
from csad.pipeline.train_seg import segment_config
from csad.settings import PARTS_READERS, SPEED_ONLY, STAGE_SECTIONS, tracked_settings
from tests.helpers import REPO_ROOT, dvc, make_project, ran_stages, tiny_params


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree[key]
    return tree


@pytest.mark.parametrize("name", ["params.yaml", "params/paper.yaml"])
def test_every_numeric_param_survives_a_set_param_round_trip(tmp_path: Path, name: str) -> None:
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S key=value` calls

    path = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / name, path)
    leaves = dict(_leaves(yaml.safe_load(path.read_text())))
    floats = [k for k, v in leaves.items() if isinstance(v, float)]
    ints = [k for k, v in leaves.items() if isinstance(v, int) and not isinstance(v, bool)]
    assert any(".overrides." in k for k in floats + ints) or name == "params.yaml"
    apply_overrides(path, [f"{k}=0.00001" for k in floats] + [f"{k}=7" for k in ints])
    assert "1e-05" in path.read_text()  # written in the YAML 1.2 form a YAML 1.1 reader takes for a string
    tree = load_params(path)  # the schema check passes: every value kept its type
    for key in floats:
        assert type(_get(tree, key)) is float and _get(tree, key) == 1e-05, key
    for key in ints:
        assert type(_get(tree, key)) is int and _get(tree, key) == 7, key


def test_a_number_given_as_a_string_is_one_line_naming_the_key() -> None:
    cfg = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["segment"]
    cfg["train"]["lr"] = "1e-05"
    with pytest.raises(ParamsError, match=r"segment\.train\.lr must be a number \(float\), got '1e-05'"):
        segment_config(cfg, "cpu")
    cfg["train"]["lr"] = 0.01
    cfg["train"]["loss_weights"]["dice"] = "ten"
    with pytest.raises(ParamsError, match=r"segment\.train\.loss_weights\.dice must be a number"):
        segment_config(cfg, "cpu")
    cfg["train"]["loss_weights"]["dice"] = 1.0


def test_every_backbone_has_one_params_shape() -> None:
    from csad.models.spec import BackboneSpec

    params = load_params(REPO_ROOT / "params.yaml")
    for section, value in (
        ("ground.pretrained", params["ground"]["pretrained"]["backbone"]),
        ("features", params["features"]["backbone"]),
        ("segment", params["segment"]["backbone"]),
        ("lgst", params["lgst"]["backbone"]),
    ):
        spec = BackboneSpec.from_params(value, section)
        assert spec.param == f"{section}.backbone.weights" and spec.name == value["name"]
    with pytest.raises(ParamsError, match=r"features\.backbone\.wieghts \(did you mean features\.backbone\.weights"):
        BackboneSpec.from_params({"name": "resnet18", "weights": "none", "wieghts": "x"}, "features")
    cfg = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["segment"]
    cfg["backbone"]["seed"] = 1  # the segmenter's backbone is seeded by segment.train.seed
    with pytest.raises(ParamsError, match=r"segment\.backbone\.seed is not read"):
        segment_config(cfg, "cpu")


def test_tracked_settings_leave_out_other_categories_speed_knobs_and_unused_backends() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    params["ground"]["backend"] = "classical"
    base = tracked_settings(params, "ground", "breakfast_box")
    params["parts"]["overrides"] = {"pushpins": {"merge_threshold": 99.0}}
    params["ground"]["grounded_sam"]["box_threshold"] = 0.99  # backend classical: not read
    params["ground"]["pretrained"]["feature_weight"] = 0.5  # not read either
    for dotted in SPEED_ONLY:
        head, *rest = dotted.split(".")
        parent = _get(params, ".".join([head, *rest[:-1]]))
        parent[rest[-1]] = 3
    assert tracked_settings(params, "ground", "breakfast_box") == base
    assert tracked_settings(params, "ground", "pushpins")["ground"]["parts"]["merge_threshold"] == 99.0
    assert tracked_settings(params, "propose", "pushpins")["propose"]["parts"]["merge_threshold"] == 99.0
    params["propose"]["backend"] = "sam"  # SAM does not read the shared part segmentation: not tracked
    assert "parts" not in tracked_settings(params, "propose", "pushpins")["propose"]
    assert "grounded_sam" not in base["ground"] and "runtime" not in base  # the classical backend runs no network
    params["ground"]["backend"] = "pretrained"  # runs a CNN: the device is tracked, the other backends are not
    pretrained = tracked_settings(params, "ground", "breakfast_box")
    assert pretrained["runtime"] == {"device": "auto", "deterministic": True}
    assert set(pretrained["ground"]) == {"backend", "pretrained", "parts"}
    lgst = tracked_settings(params, "train_lgst", "pushpins")
    assert lgst["runtime"] == {"device": "auto", "deterministic": True}  # runtime.num_threads is speed only
    assert "n_jobs" not in tracked_settings(params, "cluster", "pushpins")["cluster"]


def test_the_settings_stage_depends_on_every_section_it_resolves() -> None:
    # a section that csad.settings reads but dvc.yaml does not list would change results without a rerun
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    listed = set(stages["settings"]["do"]["params"])
    read = set(STAGE_SECTIONS.values()) | ({"parts"} if PARTS_READERS else set())
    assert read <= listed, read - listed


SETTINGS = ["settings@breakfast_box", "settings@pushpins"]


@pytest.mark.integration
def test_dvc_reruns_exactly_the_stages_whose_values_changed(tmp_path: Path) -> None:
    params = tiny_params(["breakfast_box", "pushpins"])
    project = make_project(tmp_path / "proj", params)
    targets = ["ground@breakfast_box", "ground@pushpins"]
    dvc("repro", *targets, cwd=project)

    def change(edit: Any) -> tuple[set[str], list[str]]:
        tree = yaml.safe_load((project / "params.yaml").read_text())
        edit(tree)
        (project / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
        status = set(json.loads(dvc("status", "--json", "--with-deps", *targets, cwd=project).stdout or "{}"))
        return status, ran_stages(dvc("repro", *targets, cwd=project).stdout)

    # one category's override: both settings stages rerun (cheap), only that category's ground does
    def override(p: dict[str, Any]) -> None:  # of the part segmentation that the running backend reads
        p["parts"]["overrides"] = {"pushpins": {"merge_threshold": 8.0}}

    status, ran = change(override)
    assert status == set(SETTINGS), status
    assert sorted(ran) == sorted([*SETTINGS, "ground@pushpins"]), ran  # DVC may order independent stages either way
    assert ran.index("settings@pushpins") < ran.index("ground@pushpins"), ran
    # speed-only knobs: nothing changed at all
    status, ran = change(lambda p: p["runtime"].update(num_threads=1))
    assert status == set() and ran == [], (status, ran)
    # a backend that does not run, and a speed knob inside a section: settings only, no ground
    status, ran = change(lambda p: p["ground"]["grounded_sam"].update(box_threshold=0.5))
    assert sorted(ran) == SETTINGS, ran
    status, ran = change(lambda p: p["cluster"].update(n_jobs=2))
    assert sorted(ran) == SETTINGS, ran
    # hidden and system files in a dataset folder (Finder, Jupyter, zip tools write them) change nothing either
    train = project / "data/datasets/synthloco/pushpins/train/good"
    (train / ".DS_Store").write_bytes(b"\0\1finder")
    (train / "._000.png").write_bytes(b"appledouble")
    (train / ".ipynb_checkpoints").mkdir()
    (train / ".ipynb_checkpoints" / "000-checkpoint.png").write_bytes(b"x")
    (train / "Thumbs.db").write_bytes(b"x")
    status = json.loads(dvc("status", "--json", "--with-deps", *targets, cwd=project).stdout or "{}")
    assert status == {}, status
    assert json.loads(dvc("status", "--json", cwd=project).stdout or "{}").keys() <= {
        f"{s}@{c}"
        for s in ("propose", "refine", "features", "cluster", "filter", "train_seg", "train_lgst", "detector", "score")
        for c in ("breakfast_box", "pushpins")
    } | {"evaluate"}  # never run here, so still "changed"; no stage that ran is stale


def test_a_stage_run_by_hand_after_a_params_edit_refuses_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csad.io import write_json
    from csad.pipeline.stage import load_stage, settings_path

    monkeypatch.chdir(tmp_path)
    params = tiny_params(["pushpins"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(
        ParamsError, match=r"data/settings/pushpins/cluster\.json is missing: run `dvc repro settings@pushpins`"
    ):
        load_stage(["--category", "pushpins"], None, "cluster")
    write_json(settings_path("pushpins", "cluster"), tracked_settings(params, "cluster", "pushpins"))
    params["cluster"]["bandwidth"] = 3.0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ParamsError, match=r"cluster\.json does not match params\.yaml"):
        load_stage(["--category", "pushpins"], None, "cluster")


@pytest.mark.integration
def test_own_categories_need_no_synthetic_renderer(tmp_path: Path) -> None:
    params = tiny_params(["breakfast_box"])
    params["categories"] = ["widget"]
    params["synth"]["categories"] = []
    params["dataset"]["root"] = "mydata"
    project = make_project(tmp_path / "proj", params)
    stages = dvc("stage", "list", "--name-only", cwd=project).stdout.split()
    assert "settings@widget" in stages and "score@widget" in stages
    assert not [s for s in stages if s.startswith("synth")], stages
