"""Tests for csad.eval.auroc (image AUROC per anomaly type) and csad.eval.maps (anomaly-map .tiff I/O)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from csad.data.loco import DatasetError
from csad.eval.auroc import image_auroc, roc_points
from csad.eval.maps import anomaly_map_path, index_anomaly_maps, read_anomaly_map, write_anomaly_map

GOOD, LOG, STRUC = "good", "logical_anomalies", "structural_anomalies"

# good: .1 .3 .5   logical: .4 .6   structural: .2 .9
SCORES = [0.1, 0.3, 0.5, 0.4, 0.6, 0.2, 0.9]
TYPES = [GOOD, GOOD, GOOD, LOG, LOG, STRUC, STRUC]


def test_image_auroc_hand_computed() -> None:
    # AUROC = fraction of (anomalous, good) pairs ranked correctly.
    # logical:    .4 beats .1 .3 (2/3), .6 beats all (3/3) -> 5/6
    # structural: .2 beats .1   (1/3), .9 beats all (3/3) -> 4/6
    # mean = (5/6 + 4/6) / 2 = 0.75
    result = image_auroc(SCORES, TYPES)
    assert result == {"logical": pytest.approx(5 / 6), "structural": pytest.approx(4 / 6), "mean": pytest.approx(0.75)}


def test_ties_count_half() -> None:
    assert image_auroc([0.5, 0.5], [GOOD, LOG])["logical"] == 0.5


def test_missing_type_gives_null_with_reason_and_mean_of_the_other() -> None:
    result = image_auroc(SCORES[:5], TYPES[:5])
    assert result["structural"] is None
    assert result["structural_reason"] == "no structural_anomalies test images"
    assert result["logical"] == pytest.approx(5 / 6)
    assert result["mean"] == result["logical"]
    assert "logical_reason" not in result and "mean_reason" not in result


@pytest.mark.parametrize(
    ("scores", "types", "expected"),
    [
        (
            [0.1, 0.2],
            [LOG, STRUC],
            {"logical_reason": "no good test images", "structural_reason": "no good test images"},
        ),
        (
            [0.1, 0.2],
            [GOOD, GOOD],
            {
                "logical_reason": "no logical_anomalies test images",
                "structural_reason": "no structural_anomalies test images",
            },
        ),
        (
            [],
            [],
            {
                "logical_reason": "no good and no logical_anomalies test images",
                "structural_reason": "no good and no structural_anomalies test images",
            },
        ),
    ],
)
def test_undefined_auroc_is_null_with_reason(scores: list[float], types: list[str], expected: dict) -> None:
    result = image_auroc(scores, types)
    assert result["logical"] is None and result["structural"] is None and result["mean"] is None
    assert {k: result[k] for k in expected} == expected
    assert result["mean_reason"].startswith("neither AUROC is defined")
    assert not any(isinstance(v, float) and math.isnan(v) for v in result.values())


def test_roc_points_integrate_to_auroc() -> None:
    fpr, tpr = roc_points(SCORES, TYPES, "logical")
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("scores", "types", "message"),
    [
        ([0.1, 0.2], [GOOD], "got 2 scores but 1 image types"),
        ([0.1, math.nan], [GOOD, LOG], "NaN or inf"),
        ([0.1, 0.2], [GOOD, "logical"], "unknown image types"),
    ],
)
def test_image_auroc_errors(scores: list[float], types: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        image_auroc(scores, types)


def test_roc_points_errors() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        roc_points(SCORES, TYPES, "logical_anomalies")
    with pytest.raises(ValueError, match="no structural_anomalies test images"):
        roc_points(SCORES[:5], TYPES[:5], "structural")
    with pytest.raises(ValueError, match="no good test images"):
        roc_points([0.1, 0.2], [LOG, STRUC], "logical")


# --------------------------------------------------------------------------------------------------------------------
# csad.eval.maps
# --------------------------------------------------------------------------------------------------------------------


def test_anomaly_map_path_is_official_layout(tmp_path: Path) -> None:
    assert anomaly_map_path(tmp_path, "screw_bag", LOG, "007") == tmp_path / "screw_bag/test/logical_anomalies/007.tiff"
    with pytest.raises(ValueError, match="image_type must be one of"):
        anomaly_map_path(tmp_path, "screw_bag", "logical", "007")
    with pytest.raises(ValueError, match="image_stem must be a plain file name"):
        anomaly_map_path(tmp_path, "screw_bag", GOOD, "../x")


def test_write_read_round_trip(tmp_path: Path) -> None:
    amap = np.random.default_rng(0).random((13, 17)).astype(np.float64)
    path = anomaly_map_path(tmp_path, "pushpins", GOOD, "000")
    write_anomaly_map(path, amap)
    back = read_anomaly_map(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, amap.astype(np.float32))
    assert sorted(p.name for p in path.parent.iterdir()) == ["000.tiff"]  # no temp file left behind
    write_anomaly_map(path, np.zeros((2, 2)))  # overwrite in place
    assert read_anomaly_map(path).shape == (2, 2)


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".TIF", ".TIFF"])
def test_index_accepts_every_tiff_suffix(tmp_path: Path, suffix: str) -> None:
    write_anomaly_map(tmp_path / f"000{suffix}", np.ones((2, 3)))
    (tmp_path / "._000.tiff").write_bytes(b"AppleDouble")  # hidden: never a map
    (tmp_path / "001.png").write_bytes(b"not a map")
    index = index_anomaly_maps(tmp_path)
    assert index == {"000": tmp_path / f"000{suffix}"}
    assert read_anomaly_map(index["000"]).shape == (2, 3)


def test_index_refuses_two_maps_for_one_image(tmp_path: Path) -> None:
    write_anomaly_map(tmp_path / "000.tif", np.ones((2, 3)))
    write_anomaly_map(tmp_path / "000.tiff", np.ones((2, 3)))
    with pytest.raises(DatasetError, match=r"ambiguous anomaly maps .*000\.tif and .*000\.tiff"):
        index_anomaly_maps(tmp_path)


def test_read_refuses_non_finite_maps(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "nan.tiff", np.array([[0.0, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"nan\.tiff holds NaN or inf"):
        read_anomaly_map(tmp_path / "nan.tiff")


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.tiff"
    with pytest.raises(FileNotFoundError, match=r"missing\.tiff"):
        read_anomaly_map(missing)
    broken = tmp_path / "broken.tiff"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"broken\.tiff"):
        read_anomaly_map(broken)


def test_write_rejects_bad_maps(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be 2-D"):
        write_anomaly_map(tmp_path / "a.tiff", np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        write_anomaly_map(tmp_path / "a.tiff", np.array([[np.nan]]))
    assert not list(tmp_path.iterdir())
