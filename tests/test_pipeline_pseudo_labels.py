"""The pseudo-label stage modules of csad/pipeline/ (ground, propose, refine, features, cluster, filter) on a tiny
dataset, with stand-in backends for the edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csad.data.loco import LocoCategory
from csad.errors import CsadError, ParamsError
from csad.pipeline.cluster import run_cluster
from csad.pipeline.features import run_features
from csad.pipeline.filter import run_filter
from csad.pipeline.ground import run_grounding
from csad.pipeline.propose import run_proposals
from csad.pipeline.refine import run_refine
from csad.pseudo.types import GroundingResult, ProposalResult

FEATURES = {"descriptors": ["color", "area"], "batch_size": 4}


class Nothing:
    """A grounding/proposal backend that never finds anything."""

    def __call__(self, image: np.ndarray, prompt: str | None = None) -> GroundingResult | ProposalResult:
        empty = np.zeros(image.shape[:2], np.uint16)
        if prompt is None:
            return ProposalResult(empty, np.zeros(image.shape[:2], bool), ["no proposal"])
        return GroundingResult(empty, np.zeros(image.shape[:2], bool), [], ["no detections"])


class Squares:
    """Two squares per image: a red-ish one top-left and a blue one bottom-right (fixed size)."""

    def __call__(self, image: np.ndarray, prompt: str | None = None) -> GroundingResult | ProposalResult:
        h, w = image.shape[:2]
        inst = np.zeros((h, w), np.uint16)
        inst[4:20, 4:20] = 1
        inst[h - 18 : h - 4, w - 18 : w - 4] = 2
        bg = np.zeros((h, w), bool)
        if prompt is None:
            return ProposalResult(inst, bg)
        return GroundingResult(inst, bg, ["a", "b"])


def _records(tiny_dataset: Path) -> list:
    return LocoCategory.open(tiny_dataset, "breakfast_box").split("train")


def _pipeline(tiny_dataset: Path, tmp: Path, backend: object, cluster: dict) -> tuple[Path, dict]:
    recs = _records(tiny_dataset)
    run_grounding(recs, backend, "a . b .", tmp / "grounding")
    run_proposals(recs, backend, tmp / "proposals")
    refine = {"mode": "coarse", "use_grounding_filter": False}
    run_refine(recs, tmp / "grounding", tmp / "proposals", refine, tmp / "refined")
    run_features(recs, tmp / "refined", FEATURES, "cpu", tmp / "components")
    run_cluster(tmp / "components", tmp / "refined", cluster, len(recs), tmp / "clusters")
    filt = {
        "min_cluster_fraction": 0.1,
        "top_ratio": 0.5,
        "largest_only": True,
        "min_class_area": 0.001,
        "prune_over": "largest",
    }
    return tmp, run_filter(recs, tmp / "components", tmp / "clusters", filt, tmp / "pseudo")


def test_two_fixed_components_give_two_classes(tiny_dataset: Path, tmp_path: Path) -> None:
    cluster = {"proj_dim": 0, "seed": 0, "bandwidth": 5.0, "alpha": 0.5, "n_jobs": 1}
    out, summary = _pipeline(tiny_dataset, tmp_path, Squares(), cluster)
    assert summary["classes"] >= 1
    labeled = pd.read_parquet(out / "pseudo" / "labeled.parquet")
    assert labeled["key"].tolist() == sorted(labeled["key"]) and labeled["labeled"].any()
    for stem in labeled["stem"]:
        assert (out / "pseudo" / "labels" / f"{stem}.png").is_file()


def _refine_fine(recs: list, tmp_path: Path, proposals: str) -> None:
    """Run refine in fine mode on ``tmp_path/grounding`` and ``tmp_path/<proposals>``."""
    config = {"mode": "fine", "use_grounding_filter": True}
    run_refine(recs, tmp_path / "grounding", tmp_path / proposals, config, tmp_path / "refined")


def test_no_detection_anywhere_ends_with_a_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    recs = _records(tiny_dataset)
    summary = run_grounding(recs, Nothing(), "a .", tmp_path / "grounding")
    assert summary["empty_images"] == [r.key for r in recs]
    assert all("no detections" in w for w in summary["warnings"].values())
    run_proposals(recs, Nothing(), tmp_path / "proposals")
    with pytest.raises(CsadError, match="no image has any component left"):
        _refine_fine(recs, tmp_path, "proposals")


def test_cluster_pool_that_empties_is_a_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    # alpha 10: no cluster can have 10 x (number of images) members
    cluster = {"proj_dim": 0, "seed": 0, "bandwidth": 5.0, "alpha": 10.0, "n_jobs": 1}
    with pytest.raises(CsadError, match="no cluster has at least"):
        _pipeline(tiny_dataset, tmp_path, Squares(), cluster)


def test_missing_upstream_artifact_names_the_stage(tiny_dataset: Path, tmp_path: Path) -> None:
    recs = _records(tiny_dataset)
    run_grounding(recs, Squares(), "a .", tmp_path / "grounding")
    with pytest.raises(CsadError, match="rerun the propose stage"):
        _refine_fine(recs, tmp_path, "nope")


class Fitted(Squares):
    """A backend that learns from the train images: ``fit`` returns ``summary`` (any value), ``state`` arrays."""

    def __init__(self, summary: object) -> None:
        self.summary = summary
        self.fitted_on = 0

    def fit(self, images: list[np.ndarray]) -> object:
        self.fitted_on = len(images)
        self.shapes = [im.shape for im in images]  # one pass, read lazily
        return self.summary

    def state(self) -> dict[str, np.ndarray]:
        return {"tau": np.array(1.5)}


def test_grounding_fits_a_learning_backend_first(
    tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recs = _records(tiny_dataset)
    backend = Fitted({"tau": 1.5, "warnings": ["tau is 0 (only one train image)"]})
    summary = run_grounding(recs, backend, "a .", tmp_path / "grounding")
    assert backend.fitted_on == len(recs) and summary["fit"]["tau"] == 1.5
    assert all(len(shape) == 3 for shape in backend.shapes) and len(backend.shapes) == len(recs)
    # the fit is part of the stage's time: both timings include it
    assert summary["seconds_per_image"] == pytest.approx(summary["seconds"] / len(recs), abs=1e-3)
    assert "only one train image" in caplog.text  # the fit's warnings reach the log
    assert float(np.load(tmp_path / "grounding" / "model.npz")["tau"]) == 1.5
    # A fit that returns no summary (None, or itself as scikit-learn's do) is not a crash.
    for value in (None, "self"):
        summary = run_grounding(recs, Fitted(value), "a .", tmp_path / f"grounding_{value}")
        assert set(summary["fit"]) == {"seconds"}


@pytest.mark.parametrize("bandwidth", [-1.0, 0, float("nan"), float("inf"), "Auto", True])
def test_cluster_names_a_bad_bandwidth(tiny_dataset: Path, tmp_path: Path, bandwidth: object) -> None:
    cluster = {"proj_dim": 0, "seed": 0, "bandwidth": bandwidth, "bandwidth_quantile": 0.1, "alpha": 0.5, "n_jobs": 1}
    with pytest.raises(ParamsError, match=r"cluster\.bandwidth must be"):
        _pipeline(tiny_dataset, tmp_path, Squares(), cluster)


def test_cluster_pool_that_empties_with_auto_bandwidth_names_the_quantile(tiny_dataset: Path, tmp_path: Path) -> None:
    cluster = {"proj_dim": 0, "seed": 0, "bandwidth": "auto", "bandwidth_quantile": 0.1, "alpha": 10.0, "n_jobs": 1}
    with pytest.raises(CsadError, match=r"raise cluster\.bandwidth_quantile"):
        _pipeline(tiny_dataset, tmp_path, Squares(), cluster)
