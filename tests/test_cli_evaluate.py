"""`csad evaluate` on maps written in the official layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from csad.cli import main
from csad.data.loco import LocoCategory, read_gt_channels
from csad.eval.maps import anomaly_map_path, write_anomaly_map


def _write_maps(dataset: Path, maps: Path, oracle: bool) -> None:
    cat = LocoCategory.open(dataset, "breakfast_box")
    rng = np.random.default_rng(0)
    for rec in cat.split("test"):
        amap = rng.uniform(0, 0.5, (64, 64)).astype(np.float32)
        if oracle:
            for mask, _ in read_gt_channels(rec, cat.defects):
                amap[mask] = 1.0
        write_anomaly_map(anomaly_map_path(maps, "breakfast_box", rec.type, rec.stem), amap)


def _evaluate(dataset: Path, maps: Path, *extra: str) -> int:
    """Run ``csad evaluate --quiet`` on ``maps`` and return its exit code."""
    return main(["evaluate", "--dataset-root", str(dataset), "--maps", str(maps), "--quiet", *extra])


def test_oracle_maps_score_perfectly(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps", oracle=True)
    out = tmp_path / "metrics.json"
    code = _evaluate(tiny_dataset, tmp_path / "maps", "--category", "breakfast_box", "--output", str(out))
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["classification"]["auc_roc"]["mean"] == pytest.approx(1.0)
    for type_ in ("logical_anomalies", "structural_anomalies", "mean"):
        assert metrics["localization"]["auc_spro"][type_]["0.05"] == pytest.approx(1.0)
    assert json.loads(capsys.readouterr().out)["breakfast_box"] == metrics


def test_random_maps_score_low(tiny_dataset: Path, tmp_path: Path) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps", oracle=False)
    out = tmp_path / "metrics.json"
    assert _evaluate(tiny_dataset, tmp_path / "maps", "--output", str(out)) == 0
    metrics = json.loads(out.read_text())
    assert metrics["localization"]["auc_spro"]["mean"]["0.05"] < 0.2


def test_missing_map_is_one_clear_line(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps", oracle=False)
    victim = anomaly_map_path(tmp_path / "maps", "breakfast_box", "logical_anomalies", "001")
    victim.unlink()
    code = _evaluate(tiny_dataset, tmp_path / "maps", "--category", "breakfast_box")
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: missing anomaly map") and "logical_anomalies/001.tiff" in err
    assert "\n" not in err


def test_wrong_map_size_is_reported(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps", oracle=False)
    write_anomaly_map(anomaly_map_path(tmp_path / "maps", "breakfast_box", "good", "000"), np.zeros((32, 32)))
    assert _evaluate(tiny_dataset, tmp_path / "maps", "--category", "breakfast_box") == 1
    assert "write maps at the original image size" in capsys.readouterr().err
