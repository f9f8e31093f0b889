"""Every DVC stage depends on the code it runs: its script and the script's whole import closure inside csad/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.stage_imports import REPO_ROOT, _imported_modules, foreach_items, import_closure, module_file, stage_code


def _dvc_stages() -> dict:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def _params() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def _listed_code(deps: list[str], item: str | None) -> set[str]:
    """Return the code files (stages/, csad/) a dvc.yaml deps list covers, directories expanded."""
    out: set[str] = set()
    for dep in deps:
        path = dep.replace("${item}", item or "")
        if not path.startswith(("stages/", "csad/")):
            continue
        full = REPO_ROOT / path
        if full.is_dir():
            out |= {p.relative_to(REPO_ROOT).as_posix() for p in full.rglob("*.py")}
        else:
            out.add(path)
    return out


@pytest.mark.parametrize("name", sorted(_dvc_stages()))
def test_stage_deps_are_its_import_closure(name: str) -> None:
    stage = _dvc_stages()[name]
    body = stage.get("do", stage)
    for item in foreach_items(stage, _params()) or [None]:
        listed = _listed_code(body.get("deps", []), item)
        needed = stage_code(name, item)
        missing, extra = sorted(needed - listed), sorted(listed - needed)
        fix = "run `python -m tests.stage_imports --fix`"
        assert not missing, f"dvc.yaml stage {name}: imports but does not depend on {missing}; {fix}"
        assert not extra, f"dvc.yaml stage {name}: depends on {extra} that it does not import; {fix}"


def test_closure_follows_function_level_relative_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "csad"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n\ndef f():\n    from csad.sub.c import g\n")
    (pkg / "sub" / "b.py").write_text("import os\n")
    (pkg / "sub" / "c.py").write_text("from ..d import x\n")
    (pkg / "d.py").write_text("x = 1\n")
    (pkg / "unused.py").write_text("")
    script = tmp_path / "stage.py"
    script.write_text("import csad.sub.a\n")
    found = {p.as_posix() for p in import_closure(script, tmp_path)}
    assert found == {
        "csad/__init__.py",
        "csad/sub/__init__.py",
        "csad/sub/a.py",
        "csad/sub/b.py",
        "csad/sub/c.py",
        "csad/d.py",
    }


def test_detector_and_score_depend_on_the_inference_code_they_import() -> None:
    # the case that made results stale: score imported LGST and segmenter inference code without listing it
    needed = stage_code("detector", "pushpins")
    for path in (
        "csad/detector/model.py",
        "csad/detector/build.py",
        "csad/lgst/maps.py",
        "csad/lgst/checkpoint.py",
        "csad/models/segmenter.py",
        "csad/models/lgst.py",
        "csad/seg/checkpoint.py",
        "csad/scoring/patch_hist.py",
        "csad/data/loco.py",
    ):
        assert path in needed
    scoring = stage_code("score", "pushpins")
    for path in ("csad/detector/model.py", "csad/detector/predict.py", "csad/models/lgst.py", "csad/pipeline/score.py"):
        assert path in scoring


#: Modules that only training runs: the deployed detector and the scoring code must not import them.
TRAINING_MODULES = {
    "csad/lgst/train.py",
    "csad/lgst/losses.py",
    "csad/lgst/data.py",
    "csad/seg/train.py",
    "csad/pipeline/train_seg.py",
    "csad/pipeline/train_lgst.py",
    "csad/seg/data.py",
    "csad/seg/losses.py",
    "csad/seg/lsa.py",
}


def _module_closure(path: str) -> set[str]:
    """Return the csad/ modules ``path`` imports, directly or not, package ``__init__`` files not followed."""
    seen: set[Path] = set()
    todo = [REPO_ROOT / path]
    while todo:
        for name in _imported_modules(todo.pop(), REPO_ROOT):
            found = module_file(name)
            if found is not None and found.name != "__init__.py" and found not in seen:
                seen.add(found)
                todo.append(found)
    return {p.relative_to(REPO_ROOT).as_posix() for p in seen}


@pytest.mark.parametrize(
    ("path", "training"),
    [
        ("csad/lgst/maps.py", {"csad/lgst/train.py", "csad/lgst/losses.py"}),
        ("csad/lgst/checkpoint.py", {"csad/lgst/train.py", "csad/lgst/losses.py"}),
        ("csad/seg/checkpoint.py", {"csad/seg/train.py", "csad/pipeline/train_seg.py"}),
        ("csad/detector/model.py", TRAINING_MODULES),
        ("csad/detector/predict.py", TRAINING_MODULES),
        ("csad/detector/export.py", TRAINING_MODULES),
        ("csad/pipeline/score.py", TRAINING_MODULES),
        ("csad/eval/metrics.py", TRAINING_MODULES),
    ],
)
def test_inference_modules_import_no_training_code(path: str, training: set[str]) -> None:
    assert not _module_closure(path) & training
