"""Issue 10 (part B): map suffixes, ground-truth decoding, hidden files, test sets without every image type, strict
JSON, mask/image size mismatch and faithful image decoding. Each case asserts the right value or the one-line
error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from csad.cli import main as cli_main
from csad.data.loco import (
    DatasetError,
    DefectType,
    ImageRecord,
    LocoCategory,
    read_gt_channels,
    read_gt_mask,
    read_image,
)
from csad.eval.evaluate import evaluate_maps
from csad.eval.maps import anomaly_map_path, write_anomaly_map
from csad.eval.metrics import category_metrics
from csad.io import is_hidden, json_text, list_dir, read_json, write_json
from csad.lgst.data import PenaltyImages
from csad.report import results_table, summarize, write_roc_csvs
from tests.helpers import REPO_ROOT, tiny_params

CAT = "breakfast_box"
GOOD, LOG, STRUC = "good", "logical_anomalies", "structural_anomalies"


def _strict_loads(text: str) -> Any:
    """Parse ``text`` as strict JSON: a bare NaN / Infinity fails."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset / CAT, root / CAT)
    return root


def _drop_type(root: Path, type_: str) -> None:
    """Remove every test image of ``type_`` (and its ground truth)."""
    shutil.rmtree(root / CAT / "test" / type_, ignore_errors=True)
    shutil.rmtree(root / CAT / "ground_truth" / type_, ignore_errors=True)


def _write_maps(root: Path, maps: Path, suffix: str = ".tiff", oracle: bool = True) -> None:
    cat = LocoCategory.open(root, CAT)
    rng = np.random.default_rng(0)
    for rec in cat.split("test"):
        h, w = read_image(rec.path).shape[:2]
        amap = rng.uniform(0, 0.5, (h, w)).astype(np.float32)
        if oracle:
            for mask, _ in read_gt_channels(rec, cat.defects):
                amap[mask] = 1.0
        path = anomaly_map_path(maps, CAT, rec.type, rec.stem).with_suffix(suffix)
        write_anomaly_map(path, amap)


def _evaluate(root: Path, maps: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str, str]:
    code = cli_main(["evaluate", "--dataset-root", str(root), "--maps", str(maps), "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------------------------------------------------
# 5. map suffixes: .tif, .tiff, .TIF, .TIFF
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".TIF", ".TIFF"])
def test_evaluate_accepts_every_tiff_suffix(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture, suffix: str
) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps", suffix=suffix)
    code, out, err = _evaluate(tiny_dataset, tmp_path / "maps", capsys, "--category", CAT)
    assert code == 0, err
    metrics = _strict_loads(out)[CAT]
    assert metrics["classification"]["auc_roc"]["mean"] == pytest.approx(1.0)
    assert metrics["localization"]["auc_spro"]["mean"]["0.05"] == pytest.approx(1.0)


def test_tif_and_tiff_for_one_image_is_ambiguous(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps")
    tiff = anomaly_map_path(tmp_path / "maps", CAT, LOG, "001")
    shutil.copy(tiff, tiff.with_suffix(".tif"))
    code, _, err = _evaluate(tiny_dataset, tmp_path / "maps", capsys)
    line = _one_error_line(err)
    assert code == 1 and "ambiguous anomaly maps" in line
    assert "logical_anomalies/001.tif " in line and "logical_anomalies/001.tiff " in line


def test_missing_maps_root_is_one_line(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _evaluate(tiny_dataset, tmp_path / "nowhere", capsys)
    assert code == 1 and "anomaly maps root" in _one_error_line(err) and "does not exist" in err


# --------------------------------------------------------------------------------------------------------------------
# 6. ground-truth PNGs decoded as the official evaluator does
# --------------------------------------------------------------------------------------------------------------------


def _palette_mask(path: Path, index: int = 1) -> np.ndarray:
    idx = np.zeros((8, 10), dtype=np.uint8)
    idx[2:5, 3:7] = index
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))  # index 1 is red: B = 0 in OpenCV's BGR
    im.save(path)
    return idx != 0


def test_palette_mask_reads_its_index(tmp_path: Path) -> None:
    expected = _palette_mask(tmp_path / "000.png")
    mask, value = read_gt_mask(tmp_path / "000.png")
    assert value == 1 and np.array_equal(mask, expected)
    rec = ImageRecord("test/logical_anomalies/000.png", tmp_path / "x.png", "test", LOG, (tmp_path / "000.png",))
    defect = DefectType("one", 1, 10, False)
    [(channel, found)] = read_gt_channels(rec, {1: defect})
    assert found is defect and np.array_equal(channel, expected)


def test_mask_with_two_values_is_refused(tmp_path: Path) -> None:
    arr = np.zeros((8, 8), dtype=np.uint8)
    arr[1:3, 1:3] = 255
    arr[5:7, 5:7] = 254
    Image.fromarray(arr).save(tmp_path / "000.png")
    with pytest.raises(DatasetError, match=r"000\.png holds 2 different nonzero values \(254, 255\)"):
        read_gt_mask(tmp_path / "000.png")


@pytest.mark.parametrize(
    ("make", "value", "message"),
    [
        ("grey_rgb", 255, None),
        ("rgb", None, r"is a colour image \(mode RGB\)"),
        ("rgba_transparent", None, "has transparent pixels"),
        ("i16", 300, None),
        ("float", None, r"holds float32 values \(mode F\)"),
        ("zero", None, r"is empty \(all zero\)"),
    ],
)
def test_mask_modes(tmp_path: Path, make: str, value: int | None, message: str | None) -> None:
    base = np.zeros((6, 7), dtype=np.uint8)
    base[2:4, 2:5] = 255
    path = tmp_path / "000.png"
    if make == "grey_rgb":
        Image.fromarray(np.repeat(base[..., None], 3, axis=2)).save(path)
    elif make == "rgb":
        rgb = np.zeros((6, 7, 3), dtype=np.uint8)
        rgb[2:4, 2:5] = (255, 0, 0)
        Image.fromarray(rgb).save(path)
    elif make == "rgba_transparent":
        rgba = np.zeros((6, 7, 4), dtype=np.uint8)
        rgba[2:4, 2:5] = 255
        Image.fromarray(rgba).save(path)
    elif make == "i16":
        cv2.imwrite(str(path), (base.astype(np.uint16) // 255) * 300)
    elif make == "float":
        path = tmp_path / "000.tiff"
        Image.fromarray(base.astype(np.float32)).save(path)
    else:
        Image.fromarray(np.zeros_like(base)).save(path)
    if message is None:
        mask, got = read_gt_mask(path)
        assert got == value and np.array_equal(mask, base != 0)
    else:
        with pytest.raises(DatasetError, match=message) as info:
            read_gt_mask(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_ground_truth_dir_with_only_hidden_files_has_no_ground_truth(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    gt_dir = root / CAT / "ground_truth" / STRUC / "001"
    for p in gt_dir.iterdir():
        p.rename(gt_dir / f"._{p.name}")  # only AppleDouble files left: no ground truth
    (gt_dir / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(DatasetError, match=r"structural_anomalies/001.png has no ground truth"):
        LocoCategory.open(root, CAT)


# --------------------------------------------------------------------------------------------------------------------
# 7. hidden and system files are never data
# --------------------------------------------------------------------------------------------------------------------


def test_list_dir_skips_hidden_and_system_entries(tmp_path: Path) -> None:
    for name in ("000.png", "._000.png", ".DS_Store", "Thumbs.db", "desktop.ini", "b.PNG"):
        (tmp_path / name).write_bytes(b"x")
    for name in (".ipynb_checkpoints", "__MACOSX", "__pycache__", "sub"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "001.png").write_bytes(b"x")
    assert [p.name for p in list_dir(tmp_path)] == ["000.png", "b.PNG", "sub"]
    assert [p.name for p in list_dir(tmp_path, kind="dir")] == ["sub"]
    assert [p.name for p in list_dir(tmp_path, suffixes=(".png",))] == ["000.png", "b.PNG"]
    recursive = list_dir(tmp_path, suffixes=(".png",), recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in recursive] == ["000.png", "b.PNG", "sub/001.png"]
    assert list_dir(tmp_path / "missing") == []
    assert is_hidden("x/__MACOSX") and is_hidden("THUMBS.DB") and not is_hidden(".x/000.png")


def test_hidden_folder_in_maps_root_is_ignored(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _write_maps(tiny_dataset, tmp_path / "maps")
    shutil.copytree(tmp_path / "maps" / CAT, tmp_path / "maps" / ".ipynb_checkpoints")
    (tmp_path / "maps" / "__MACOSX").mkdir()
    (tmp_path / "maps" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "maps" / CAT / "test" / GOOD / "._000.tiff").write_bytes(b"AppleDouble")
    code, out, err = _evaluate(tiny_dataset, tmp_path / "maps", capsys)
    assert code == 0, err
    assert list(_strict_loads(out)) == [CAT]


def test_hidden_files_in_dataset_folders_are_skipped(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    good = root / CAT / "train" / "good"
    (good / ".DS_Store").write_bytes(b"\0\1")
    (good / "._000.png").write_bytes(b"AppleDouble, not a PNG")
    (good / ".ipynb_checkpoints").mkdir()
    shutil.copy(good / "000.png", good / ".ipynb_checkpoints" / "000-checkpoint.png")
    (good / "Thumbs.db").write_bytes(b"\0")
    gt_dir = root / CAT / "ground_truth" / LOG / "000"
    (gt_dir / "._000.png").write_bytes(b"AppleDouble, not a PNG")
    (gt_dir / ".DS_Store").write_bytes(b"\0")
    (root / CAT / "ground_truth" / ".ipynb_checkpoints").mkdir()
    (root / CAT / "ground_truth" / LOG / "__MACOSX").mkdir()
    (root / "__MACOSX").mkdir()
    cat = LocoCategory.open(root, CAT, check_images=True)
    assert [r.key for r in cat.split("train")] == ["train/good/000.png", "train/good/001.png", "train/good/002.png"]
    rec = cat.by_key()["test/logical_anomalies/000.png"]
    assert [p.name for p in rec.gt_paths] == ["000.png"]
    assert len(read_gt_channels(rec, cat.defects)) == 1
    with pytest.raises(DatasetError, match=r"available: breakfast_box$"):
        LocoCategory.open(root, "nope")


def test_penalty_images_skip_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "penalty"
    (folder / "n01").mkdir(parents=True)
    (folder / "__MACOSX" / "n01").mkdir(parents=True)
    (folder / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(folder / "n01" / "a.png")
    for junk in ("n01/._a.png", "__MACOSX/n01/._a.png", ".ipynb_checkpoints/a.png", "n01/.DS_Store"):
        (folder / junk).write_bytes(b"not an image")
    penalty = PenaltyImages(folder, image_size=4)
    assert penalty.paths == [folder / "n01" / "a.png"]


def test_penalty_images_use_the_faithful_decoder(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "half.tiff", np.full((8, 8), 0.5, np.float32))
    x = PenaltyImages(tmp_path, image_size=4).sample(torch.Generator().manual_seed(0))
    assert x.shape == (1, 3, 4, 4) and float(x.mean()) == pytest.approx(128 / 255, abs=1e-3)


# --------------------------------------------------------------------------------------------------------------------
# 8. test sets without every image type; strict JSON everywhere
# --------------------------------------------------------------------------------------------------------------------


def test_write_json_refuses_nan_and_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"m\.json: non-finite value nan at 'auroc\.structural'"):
        write_json(tmp_path / "m.json", {"auroc": {"logical": 0.5, "structural": float("nan")}})
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(ValueError, match=r"'x\[1\]'"):
        json_text({"x": [1.0, np.float32("inf")]})
    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(2), "d": None})
    assert _strict_loads((tmp_path / "m.json").read_text()) == {"a": 0.5, "b": 3, "c": [0, 1], "d": None}


SUBSETS = {
    "logical_only": (STRUC,),
    "structural_only": (LOG,),
    "good_only": (LOG, STRUC),
    "anomalies_only": (GOOD,),
    "no_test_images": (GOOD, LOG, STRUC),
}


@pytest.mark.parametrize("subset", list(SUBSETS))
def test_evaluate_completes_on_any_subset(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture, subset: str
) -> None:
    root = _copy(tiny_dataset, tmp_path)
    for type_ in SUBSETS[subset]:
        _drop_type(root, type_)
    _write_maps(root, tmp_path / "maps")
    (tmp_path / "maps" / CAT / "test").mkdir(parents=True, exist_ok=True)
    out_file = tmp_path / "metrics.json"
    code, out, err = _evaluate(root, tmp_path / "maps", capsys, "--category", CAT, "--output", str(out_file))
    assert code == 0, err
    assert "Traceback" not in err
    metrics = _strict_loads(out_file.read_text())
    assert _strict_loads(out)[CAT] == metrics
    auc = metrics["classification"]["auc_roc"]
    spro = metrics["localization"]["auc_spro"]
    present = {GOOD, LOG, STRUC} - set(SUBSETS[subset])
    for type_ in (LOG, STRUC):
        if {GOOD, type_} <= present:
            assert auc[type_] == pytest.approx(1.0) and f"{type_}_reason" not in auc
        else:
            assert auc[type_] is None and auc[f"{type_}_reason"].startswith("no ")
        if type_ in present:
            assert spro[type_]["0.05"] == pytest.approx(1.0) and f"{type_}_reason" not in spro
        else:
            assert spro[type_] is None and spro[f"{type_}_reason"] == f"no {type_} test images"
    if subset == "logical_only":
        assert auc["structural_anomalies_reason"] == "no structural_anomalies test images"
        assert auc["mean"] == auc[LOG] and spro["mean"] == spro[LOG]
    if subset in ("good_only", "no_test_images"):
        assert auc["mean"] is None and spro["mean"] is None
        assert auc["mean_reason"] and spro["mean_reason"]


def test_evaluate_good_only_exits_cleanly_in_a_subprocess(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    _drop_type(root, LOG)
    _drop_type(root, STRUC)
    _write_maps(root, tmp_path / "maps")
    proc = subprocess.run(
        [sys.executable, "-m", "csad.cli", "evaluate", "--dataset-root", str(root), "--maps", str(tmp_path / "maps")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert _strict_loads(proc.stdout)[CAT]["classification"]["auc_roc"]["logical_anomalies"] is None


def _scores_table(root: Path) -> pd.DataFrame:
    """A scores table like the score stage's, with perfect scores (anomalies score 1, good 0)."""
    cat = LocoCategory.open(root, CAT)
    rows = []
    for rec in cat.split("validation") + cat.split("test"):
        s = float(rec.label)
        rows.append(
            {
                "key": rec.key,
                "split": rec.split,
                "type": rec.type,
                "label": rec.label,
                "patch_hist": s,
                "lgst": s,
                "patch_hist_norm": s,
                "lgst_norm": s,
                "fused": 2 * s,
            }
        )
    return pd.DataFrame(rows)


def test_category_metrics_are_strict_json_with_reasons(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    _drop_type(root, STRUC)
    _write_maps(root, tmp_path / "maps")
    metrics = category_metrics(_scores_table(root), evaluate_maps(root, CAT, tmp_path / "maps", progress=False))
    write_json(tmp_path / "C.json", metrics)
    back = _strict_loads((tmp_path / "C.json").read_text())
    for branch in ("fused", "patch_hist", "lgst"):
        assert back["image_auroc"][branch] == {
            "logical": 1.0,
            "structural": None,
            "structural_reason": "no structural_anomalies test images",
            "mean": 1.0,
        }
    assert back["au_spro_0.05"] == {
        "logical_anomalies": 1.0,
        "structural_anomalies": None,
        "structural_anomalies_reason": "no structural_anomalies test images",
        "mean": 1.0,
    }
    assert back["map_max_auroc"]["structural_anomalies"] is None
    assert back["au_spro"]["structural_anomalies"] is None


def test_category_metrics_without_test_images(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    for type_ in (GOOD, LOG, STRUC):
        _drop_type(root, type_)
    metrics = category_metrics(_scores_table(root), evaluate_maps(root, CAT, tmp_path / "maps", progress=False))
    assert _strict_loads(json_text(metrics))["image_auroc"]["fused"]["mean"] is None
    assert metrics["au_spro_0.05"]["mean"] is None and metrics["au_spro_0.05"]["mean_reason"]


def _cat_metrics(logical: float | None, structural: float | None) -> dict[str, Any]:
    def part(keys: tuple[str, str], values: tuple[float | None, float | None]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in zip(keys, values, strict=True):
            out[k] = v
            if v is None:
                out[f"{k}_reason"] = f"no {k} test images"
        defined = [v for v in values if v is not None]
        out["mean"] = sum(defined) / len(defined) if defined else None
        if not defined:
            out["mean_reason"] = "neither"
        return out

    auc = part(("logical", "structural"), (logical, structural))
    return {
        "image_auroc": {b: auc for b in ("fused", "patch_hist", "lgst")},
        "au_spro_0.05": part((LOG, STRUC), (logical, structural)),
    }


def test_summary_means_only_defined_values_and_names_the_missing() -> None:
    summary = summarize({"a": _cat_metrics(0.8, 0.6), "b": _cat_metrics(0.4, None), "c": _cat_metrics(None, None)})
    fused = summary["image_auroc"]["fused"]
    assert fused["logical"] == pytest.approx(0.6)  # mean of a and b
    assert fused["structural"] == pytest.approx(0.6)  # a only
    assert fused["mean"] == pytest.approx((0.7 + 0.4) / 2)
    assert summary["missing"]["image_auroc.fused.structural"] == {
        "b": "no structural test images",
        "c": "no structural test images",
    }
    assert set(summary["missing"]["image_auroc.fused.logical"]) == {"c"}
    assert summary["au_spro_0.05"][STRUC] == pytest.approx(0.6)
    _strict_loads(json_text(summary))
    table = results_table(summary)
    assert "| b | 40.0 | n/a | 40.0 |" in table and "| c | n/a | n/a | n/a |" in table
    empty = summarize({"c": _cat_metrics(None, None)})
    assert empty["image_auroc"]["fused"]["mean"] is None
    assert empty["image_auroc"]["fused"]["mean_reason"].startswith("undefined in every category (c: ")


def test_roc_writer_skips_undefined_curves(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"split": ["test"] * 3, "type": [GOOD, GOOD, LOG], "fused": [0.1, 0.2, 0.9], "key": ["a", "b", "c"]}
    )
    (tmp_path / "roc").mkdir()
    (tmp_path / "roc" / "C_structural.csv").write_text("stale")
    skipped = write_roc_csvs(table, tmp_path / "roc", "C")
    assert skipped == {"structural": "no structural_anomalies test images"}
    assert sorted(p.name for p in (tmp_path / "roc").iterdir()) == ["C_logical.csv"]
    assert write_roc_csvs(table[table["type"] == GOOD], tmp_path / "roc2", "C").keys() == {"logical", "structural"}
    assert (tmp_path / "roc2").is_dir() and not list((tmp_path / "roc2").iterdir())


@pytest.mark.integration
def test_evaluate_stage_with_logical_anomalies_only(tiny_dataset: Path, tmp_path: Path) -> None:
    """The pipeline's score metrics + evaluate stage on a test set without structural anomalies (was: a
    traceback from the ROC writer after NaNs in metrics/C.json)."""
    root = _copy(tiny_dataset, tmp_path)
    _drop_type(root, STRUC)
    scores_dir = tmp_path / "data" / "scores" / CAT
    _write_maps(root, scores_dir / "maps")
    table = _scores_table(root)
    table.to_parquet(scores_dir / "scores.parquet", index=False)
    for rec in LocoCategory.open(root, CAT).split("test"):
        seg = scores_dir / "segmentation" / "test" / rec.type / f"{rec.stem}.png"
        seg.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(seg), np.zeros((64, 64), np.uint8))
    metrics = category_metrics(table, evaluate_maps(root, CAT, scores_dir / "maps", progress=False))
    write_json(tmp_path / "metrics" / f"{CAT}.json", {"category": CAT, **metrics})
    params = tiny_params([CAT])
    params["dataset"]["root"] = str(root)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "stages" / "evaluate.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    summary = _strict_loads((tmp_path / "metrics" / "summary.json").read_text())
    assert summary["image_auroc"]["fused"]["logical"] == 1.0
    assert summary["image_auroc"]["fused"]["structural"] is None
    assert summary["missing"]["image_auroc.fused.structural"] == {CAT: "no structural_anomalies test images"}
    assert sorted(p.name for p in (tmp_path / "metrics" / "roc").iterdir()) == [f"{CAT}_logical.csv"]
    assert (tmp_path / "metrics" / "report" / f"{CAT}.png").is_file()


# --------------------------------------------------------------------------------------------------------------------
# 9. image and ground-truth sizes disagree
# --------------------------------------------------------------------------------------------------------------------


def test_mask_size_differs_from_image_size(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _copy(tiny_dataset, tmp_path)
    image = root / CAT / "test" / LOG / "000.png"
    cv2.imwrite(str(image), cv2.resize(cv2.imread(str(image)), (64, 48)))  # 64 wide, 48 high
    mask = root / CAT / "ground_truth" / LOG / "000" / "000.png"
    arr = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(mask), cv2.resize(arr, (48, 64), interpolation=cv2.INTER_NEAREST))  # 48 wide, 64 high
    with pytest.raises(DatasetError) as info:
        LocoCategory.open(root, CAT)
    assert str(info.value) == (
        f"ground-truth mask {mask} is 48x64 but its image {image} is 64x48: a mask must have the size of its image"
    )
    (tmp_path / "maps" / CAT).mkdir(parents=True)
    code, _, err = _evaluate(root, tmp_path / "maps", capsys)
    line = _one_error_line(err)
    assert code == 1 and "ground-truth mask" in line and "anomaly map" not in line


def test_two_images_with_one_stem_are_ambiguous(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    good = root / CAT / "test" / GOOD
    cv2.imwrite(str(good / "000.jpg"), cv2.imread(str(good / "000.png")))
    with pytest.raises(DatasetError, match=r"ambiguous images .*good/000.jpg and .*good/000.png"):
        LocoCategory.open(root, CAT)


# --------------------------------------------------------------------------------------------------------------------
# 10. images decoded faithfully, or refused naming the file
# --------------------------------------------------------------------------------------------------------------------


def test_float_image_in_unit_range_is_scaled(tmp_path: Path) -> None:
    arr = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    tifffile.imwrite(tmp_path / "x.tiff", arr)
    img = read_image(tmp_path / "x.tiff")
    assert img.dtype == np.uint8 and img.shape == (4, 5, 3)
    np.testing.assert_array_equal(img[..., 0], np.floor(arr.astype(np.float64) * 255 + 0.5).astype(np.uint8))
    assert img.max() == 255


def test_float_rgb_keeps_channel_order(tmp_path: Path) -> None:
    arr = np.zeros((3, 4, 3), dtype=np.float64)
    arr[..., 0] = 1.0  # red
    arr[..., 2] = 0.5
    tifffile.imwrite(tmp_path / "x.tif", arr, photometric="rgb")
    assert read_image(tmp_path / "x.tif")[0, 0].tolist() == [255, 0, 128]


def test_float16_tiff_is_read(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "x.tiff", np.full((3, 4), 0.25, np.float16))
    assert read_image(tmp_path / "x.tiff")[0, 0].tolist() == [64, 64, 64]


def test_uint32_image_is_scaled_by_its_range(tmp_path: Path) -> None:
    arr = np.array([[0, 2**31, 2**32 - 1]], dtype=np.uint32)
    tifffile.imwrite(tmp_path / "x.tiff", arr)
    assert read_image(tmp_path / "x.tiff")[0, :, 0].tolist() == [0, 128, 255]


def test_grey_alpha_png_is_grey(tmp_path: Path) -> None:
    la = np.zeros((3, 4, 2), dtype=np.uint8)
    la[..., 0] = 77
    la[..., 1] = 255
    Image.fromarray(la, mode="LA").save(tmp_path / "x.png")
    assert read_image(tmp_path / "x.png")[1, 1].tolist() == [77, 77, 77]


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (np.array([[0.0, 3.5]], np.float32), r"float32 pixels with values in \[0, 3\.5\]"),
        (np.array([[-0.5, 0.5]], np.float64), r"float64 pixels with values in \[-0\.5, 0\.5\]"),
        (np.array([[0.0, np.nan]], np.float32), "holds NaN or inf"),
        (np.array([[0, 1]], np.int16), "signed int16 pixels"),
        (np.array([[0, 1]], np.int32), "signed int32 pixels"),
    ],
)
def test_unfaithful_images_are_refused(tmp_path: Path, arr: np.ndarray, message: str) -> None:
    path = tmp_path / "x.tiff"
    tifffile.imwrite(path, arr)
    with pytest.raises(DatasetError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_float_training_image_fails_the_stage_reader(tiny_dataset: Path, tmp_path: Path) -> None:
    """A float [0, 1] TIFF among the train images is read right (was: a black 0/1 image)."""
    root = _copy(tiny_dataset, tmp_path)
    good = root / CAT / "train" / "good"
    rgb = read_image(good / "000.png")
    (good / "000.png").unlink()
    tifffile.imwrite(good / "000.tiff", rgb.astype(np.float32) / 255.0, photometric="rgb")
    rec = LocoCategory.open(root, CAT).split("train")[0]
    assert rec.path.name == "000.tiff"
    np.testing.assert_array_equal(read_image(rec.path), rgb)


def test_read_json_round_trip_of_undefined(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"structural": None, "structural_reason": "no structural_anomalies test images"})
    assert read_json(tmp_path / "m.json")["structural_reason"] == "no structural_anomalies test images"
