"""The whole pipeline (synth -> pseudo-labels -> segmenter -> LGST -> score -> evaluate) with the real `dvc` on a
tiny config, and what a param change reruns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from csad.cli import main as csad_main
from csad.eval.maps import read_anomaly_map
from tests.helpers import FULL_CATEGORY as CATEGORY
from tests.helpers import BuiltProject, dvc, ran_stages

pytestmark = pytest.mark.integration


def _changed_stages(project: Path) -> set[str]:
    return set(json.loads(dvc("status", "--json", cwd=project).stdout))


@pytest.fixture(scope="module")
def project(built_project: BuiltProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a copy of the session's built project (tests/conftest.py), shared by the tests that leave its params
    as they are (they write only side files such as a re-evaluation JSON)."""
    return built_project.copy(tmp_path_factory.mktemp("full") / "proj")


def test_score_and_evaluate_outputs(project: Path) -> None:
    scores = pd.read_parquet(project / f"data/scores/{CATEGORY}/scores.parquet")
    assert len(scores) == 4 + 9
    assert {"key", "split", "type", "label", "patch_hist", "lgst", "patch_hist_norm", "lgst_norm", "fused"} <= set(
        scores.columns
    )
    assert scores["key"].is_unique
    metrics = json.loads((project / f"metrics/{CATEGORY}.json").read_text())
    for branch in ("fused", "patch_hist", "lgst"):
        assert set(metrics["image_auroc"][branch]) == {"logical", "structural", "mean"}
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert summary["categories"] == [CATEGORY]
    assert summary["image_auroc"]["fused"]["mean"] == metrics["image_auroc"]["fused"]["mean"]
    assert (project / f"metrics/roc/{CATEGORY}_logical.csv").is_file()
    assert (project / f"metrics/report/{CATEGORY}.png").stat().st_size > 1000
    # maps at the original resolution, in the official layout, re-readable by `csad evaluate`
    amap = read_anomaly_map(project / f"data/scores/{CATEGORY}/maps/{CATEGORY}/test/good/000.tiff")
    assert amap.shape == (128, 128)
    out = project / "reeval.json"
    assert (
        csad_main(
            [
                "evaluate",
                "--dataset-root",
                str(project / "data/datasets/synthloco"),
                "--maps",
                str(project / f"data/scores/{CATEGORY}/maps"),
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    again = json.loads(out.read_text())["localization"]["auc_spro"]["mean"]["0.05"]
    assert again == pytest.approx(metrics["au_spro_0.05"]["mean"], abs=1e-4)
    assert _changed_stages(project) == set()


def _set_params(project: Path, change: Any) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    change(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_param_changes_rerun_only_what_they_invalidate(built_project: BuiltProject, tmp_path: Path) -> None:
    project = built_project.copy(tmp_path / "proj")
    settings = f"settings@{CATEGORY}"
    ran = ran_stages(dvc("exp", "run", "-S", "detector.weights.lgst=0.5", cwd=project).stdout)
    assert ran == [settings, f"detector@{CATEGORY}", f"score@{CATEGORY}", "evaluate"]
    _set_params(project, lambda p: p["segment"]["train"].update({"epochs": 3}))
    ran = ran_stages(dvc("repro", cwd=project).stdout)
    assert ran[:2] == [settings, f"train_seg@{CATEGORY}"]
    assert set(ran) <= {settings, f"train_seg@{CATEGORY}", f"detector@{CATEGORY}", f"score@{CATEGORY}", "evaluate"}
    _set_params(project, lambda p: p["cluster"]["overrides"][CATEGORY].update({"bandwidth": 1.2}))
    ran = ran_stages(dvc("repro", cwd=project).stdout)
    assert ran[:2] == [settings, f"cluster@{CATEGORY}"]
    assert set(ran) <= {
        f"{s}@{CATEGORY}" for s in ("settings", "cluster", "filter", "train_seg", "detector", "score")
    } | {"evaluate"}
    assert _changed_stages(project) == set()
    # speed-only knobs (thread count, clustering jobs) rerun no training, no scoring: at most the cheap settings stage
    for edit in (
        lambda p: p["runtime"].update({"num_threads": 2}),  # tiny_full_params runs one thread
        lambda p: p["cluster"].update({"n_jobs": 2}),
    ):
        _set_params(project, edit)
        assert _changed_stages(project) <= {settings}
        assert set(ran_stages(dvc("repro", cwd=project).stdout)) <= {settings}
    assert _changed_stages(project) == set()


def test_detector_is_what_score_evaluated_and_predict_uses_it(project: Path, tmp_path: Path) -> None:
    """`make run` builds models/C/detector.pt; `csad predict` on the test folder reproduces the scores that the
    score stage evaluated, writes the CSV and the overlays, and the ONNX export gives the same scores."""
    model = project / f"models/{CATEGORY}/detector.pt"
    assert model.is_file()
    metrics = json.loads((project / f"metrics/{CATEGORY}.json").read_text())
    verdict = metrics["verdict"]
    assert 0.0 <= verdict["false_reject_rate"] <= 1.0 and set(verdict["false_accept_rate"]) == {
        "logical_anomalies",
        "structural_anomalies",
        "all",
    }
    detector_metrics = json.loads((project / f"metrics/{CATEGORY}/detector.json").read_text())
    assert verdict["threshold"] == pytest.approx(detector_metrics["threshold"], abs=1e-4)
    test_dir = project / f"data/datasets/synthloco/{CATEGORY}/test"
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "unreadable.png").write_bytes(b"no image")
    out = tmp_path / "pred"
    status = csad_main(
        [
            "predict",
            "--model",
            str(model),
            str(test_dir),
            str(tmp_path / "extra"),
            "--out",
            str(out),
            "--json",
            "--quiet",
        ]
    )
    assert status == 2  # one image failed, the others were scored
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 9 + 1
    assert table["error"].fillna("").astype(bool).sum() == 1
    scored = table[table["error"].isna()]
    assert set(scored["verdict"]) <= {"good", "anomalous"}
    assert len(list((out / "overlays").glob("*.png"))) == 9
    # metrics/C.json rounds to 4 decimals
    assert json.loads((out / "predictions.json").read_text())["threshold"] == pytest.approx(
        verdict["threshold"], abs=1e-4
    )
    scores = pd.read_parquet(project / f"data/scores/{CATEGORY}/scores.parquet")
    by_stem = {
        (k.split("/")[-2], k.split("/")[-1].rsplit(".", 1)[0]): v
        for k, v in zip(scores["key"], scores["fused"], strict=True)
    }
    for path, score in zip(scored["path"], scored["score"], strict=True):
        p = Path(path)
        assert score == pytest.approx(by_stem[(p.parent.name, p.stem)], abs=1e-4)  # other batches: float rounding
    onnx = tmp_path / "detector.onnx"
    assert csad_main(["export", "--model", str(model), "--out", str(onnx)]) == 0
    out2 = tmp_path / "pred_onnx"
    assert (
        csad_main(["predict", "--model", str(onnx), str(test_dir), "--out", str(out2), "--no-overlays", "--quiet"]) == 0
    )
    again = pd.read_csv(out2 / "predictions.csv")
    np.testing.assert_allclose(again["score"], scored["score"].to_numpy(), atol=1e-4)
