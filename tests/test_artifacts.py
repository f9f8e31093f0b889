"""The artifact contract (csad/artifacts.py) and dvc.yaml name the same paths, and stage scripts spell none."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from csad import artifacts

ROOT = Path(__file__).resolve().parents[1]


def _dvc_stages() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _paths(entries: list[Any]) -> list[str]:
    """Return the paths of a dvc.yaml outs/metrics/plots list (entries are strings or one-key dicts)."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def _template(path: str) -> str:
    return path.replace("${item}", "{category}")


@pytest.mark.parametrize("stage", sorted(artifacts.STAGE_OUTPUTS))
def test_every_per_category_output_is_the_contracts(stage: str) -> None:
    body = _dvc_stages()[stage]["do"]
    outs = [_template(p) for p in _paths(body.get("outs", []))]
    assert artifacts.STAGE_OUTPUTS[stage] in outs, f"dvc.yaml {stage} outs {outs} lack the contract's path"
    metrics = [_template(p) for p in _paths(body.get("metrics", []))]
    if stage in artifacts.STAGE_METRICS:
        assert artifacts.STAGE_METRICS[stage] in metrics
    else:
        assert not metrics, f"dvc.yaml {stage} has metrics {metrics} that csad.artifacts.STAGE_METRICS lacks"


def test_contract_covers_every_per_category_stage_but_synth() -> None:
    per_category = {name for name, stage in _dvc_stages().items() if "foreach" in stage}
    assert per_category - {"synth"} == set(artifacts.STAGE_OUTPUTS)


def test_evaluate_outputs_are_the_contracts() -> None:
    body = _dvc_stages()["evaluate"]
    declared = set(_paths(body.get("outs", [])) + _paths(body.get("metrics", [])) + _paths(body.get("plots", [])))
    assert {str(artifacts.REPORT_DIR), str(artifacts.SUMMARY_FILE)} <= declared
    assert any(p.startswith(str(artifacts.ROC_DIR)) for p in declared)


def test_helpers_format_the_templates_and_name_the_known_stages() -> None:
    assert artifacts.stage_output("refine", "pushpins") == Path("data/refined/pushpins")
    assert artifacts.instances_dir("pushpins") == Path("data/refined/pushpins/instances")
    assert artifacts.stage_metrics("score", "pushpins") == Path("metrics/pushpins.json")
    assert artifacts.timing_file("pushpins", "ground") == artifacts.stage_metrics("ground", "pushpins")
    with pytest.raises(KeyError, match="known: settings"):
        artifacts.stage_output("nope", "pushpins")
    with pytest.raises(KeyError, match="writes no metrics"):
        artifacts.stage_metrics("cluster", "pushpins")


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "stages").glob("*.py")))
def test_stage_scripts_spell_no_artifact_path(script: str) -> None:
    text = (ROOT / "stages" / script).read_text()
    literal = re.findall(r"""["'](?:data|models|metrics)/[^"']*["']""", text)
    assert not literal, f"stages/{script} spells {literal}: take the path from csad.artifacts"
