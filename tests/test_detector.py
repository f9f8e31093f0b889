"""The deployable detector: built from tiny trained-format checkpoints, it reproduces the training-side inference
code, is batch-consistent, round-trips through its file, exports to ONNX (and OpenVINO) with parity, and predicts
images of any size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from csad.detector.build import build_detector
from csad.detector.export import export_onnx
from csad.detector.model import CsadDetector, DetectorConfig
from csad.detector.overlay import overlay_picture
from csad.detector.predict import OnnxRunner, TorchRunner, iter_predictions, open_runner, preprocess
from csad.detector.settings import DetectorSettings
from csad.errors import CheckpointError, CsadError
from csad.io import numpy_to_tensors, save_checkpoint
from csad.lgst.checkpoint import save_lgst
from csad.lgst.config import LgstConfig
from csad.lgst.maps import MapNormalizer, lgst_scores
from csad.models.lgst import build_lgst_model
from csad.models.segmenter import ComponentSegmenter, predict_labels
from csad.models.spec import BackboneSpec
from csad.scoring.patch_hist import PatchHistogramScorer, TrimmedNormalizer

SIZE = 64


def _images(n: int, seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def _write_checkpoints(folder: Path, lgst_seed: int = 0) -> tuple[Path, Path]:
    """Write segmenter.pt and lgst.pt in the training stages' formats, from small random ResNet18 models."""
    seg = ComponentSegmenter(4, backbone="resnet18", weights="none", seed=0, aspp_channels=8, decoder_channels=8)
    seg.eval()
    with torch.no_grad():  # a decoder that does not predict one class everywhere
        seg.decoder.fc2[-1].bias.copy_(torch.tensor([0.0, 0.1, -0.1, 0.05]))
    train_maps = np.stack(predict_labels(seg, _images(6, 1), SIZE))
    val_maps = np.stack(predict_labels(seg, _images(4, 2), SIZE))
    scorer = PatchHistogramScorer(4, [(1, 1), (2, 2)], count_min_fraction=0.1).fit(train_maps, val_maps)
    seg_path = folder / "segmenter.pt"
    save_checkpoint(
        seg_path,
        {
            "segmenter": seg.checkpoint(),
            "patch_hist": numpy_to_tensors(scorer.state()),
            "image_size": SIZE,
            "train_config": {},
        },
    )
    cfg = LgstConfig(image_size=SIZE, feat_size=16, channels=8, student_widths=(8, 8, 8), ae_base_dim=8, seed=0)
    spec = BackboneSpec("resnet18", "none", seed=lgst_seed)
    model = build_lgst_model(spec, SIZE, 16, 8, (8, 8, 8), 8, 0).eval()
    with torch.no_grad():
        model.set_teacher_statistics(torch.full((8,), 0.1), torch.full((8,), 2.0))
    lgst_path = folder / "lgst.pt"
    save_lgst(lgst_path, model, MapNormalizer(0.5, 1.5, 0.2, 0.9), cfg)
    return seg_path, lgst_path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[CsadDetector, dict, Path, Path, list[np.ndarray]]:
    folder = tmp_path_factory.mktemp("det")
    seg_path, lgst_path = _write_checkpoints(folder)
    val = _images(7, 3)
    det, summary = build_detector("tiny", seg_path, lgst_path, val, DetectorSettings(threshold_quantile=0.9))
    return det, summary, seg_path, lgst_path, val


def test_forward_shapes_and_typed_outputs() -> None:
    det = CsadDetector(DetectorConfig.tiny())
    out = det(torch.rand(3, 3, 64, 64))
    assert out.score.shape == (3,) and out.score.dtype == torch.float64
    assert out.anomaly_map.shape == (3, 16, 16)
    assert out.segmentation.shape == (3, 64, 64) and out.segmentation.dtype == torch.int64
    with pytest.raises(ValueError, match=r"expected a \(B, 3, 64, 64\) batch"):
        det(torch.rand(1, 3, 32, 32))


def test_detector_reproduces_the_training_side_inference(built) -> None:
    """The detector's scores equal segmenter + PatchHistogramScorer + LGST maps + trimmed fusion, computed by the
    training-side code from the two checkpoints."""
    det, summary, seg_path, lgst_path, val = built
    from csad.lgst.checkpoint import load_lgst
    from csad.seg.checkpoint import load_segmenter

    seg, scorer, size = load_segmenter(seg_path)
    lgst, normalizer, _ = load_lgst(lgst_path)
    images = val + _images(5, 9)
    ph = scorer.score(np.stack(predict_labels(seg, images, size)))
    lg, maps = lgst_scores(lgst, normalizer, images)
    fused = np.zeros(len(images))
    for raw in (ph, lg):
        fused += TrimmedNormalizer(0.2, 0.8).fit(raw[: len(val)]).transform(raw)
    out = TorchRunner(det).run(preprocess(images, det.image_size))
    np.testing.assert_allclose(out["patch_hist_raw"], ph, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(out["lgst_raw"], lg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["anomaly_map"], maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["score"], fused, rtol=1e-4, atol=1e-4)
    assert summary["shared_backbone"] is True and det.config.shared_backbone
    # the threshold is the 0.9 quantile of the fused validation scores, nothing else
    assert float(det.threshold) == pytest.approx(np.quantile(fused[: len(val)], 0.9))


def test_encoders_that_differ_are_kept_apart(tmp_path: Path) -> None:
    seg_path, lgst_path = _write_checkpoints(tmp_path, lgst_seed=1)
    det, summary = build_detector("tiny", seg_path, lgst_path, _images(3, 3), DetectorSettings())
    assert summary["shared_backbone"] is False and det.lgst_backbone is not None
    assert det(torch.rand(2, 3, SIZE, SIZE)).score.shape == (2,)


def test_batched_equals_one_at_a_time(built) -> None:
    det = built[0]
    x = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        together = det(x)
        alone = [det(x[i : i + 1]) for i in range(4)]
    for name, value in together._asdict().items():
        single = torch.cat([getattr(a, name) for a in alone])
        torch.testing.assert_close(value, single, rtol=1e-5, atol=1e-5, msg=name)


def test_save_load_round_trip_is_the_whole_model(built, tmp_path: Path) -> None:
    det = built[0]
    det.save(tmp_path / "detector.pt", meta={"category": "tiny"})
    again = CsadDetector.load(tmp_path / "detector.pt")
    assert again.meta == {"category": "tiny"}
    assert float(again.threshold) == float(det.threshold)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        for a, b in zip(det(x), again(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    payload = torch.load(tmp_path / "detector.pt", weights_only=True)
    assert set(payload["state_dict"]) == set(det.state_dict())  # statistics are buffers in the state dict
    assert {"threshold", "fusion_stats", "map_norm", "teacher_mean", "ph_invcov_2x2"} <= set(payload["state_dict"])


def test_checkpoint_bytes_depend_only_on_the_model(tmp_path: Path) -> None:
    """Two saves of one model are byte-identical whatever the path (so DVC does not rerun the stages downstream)."""
    det = CsadDetector(DetectorConfig.tiny())
    det.save(tmp_path / "a.pt")
    (tmp_path / "elsewhere").mkdir()
    det.save(tmp_path / "elsewhere" / "other_name.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "elsewhere" / "other_name.pt").read_bytes()


def test_load_refuses_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found: run the detector stage first \(`dvc repro detector`\)"):
        CsadDetector.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        CsadDetector.load(tmp_path)
    with pytest.raises(CheckpointError, match="--backend onnx"):
        CsadDetector.load(tmp_path / "model.onnx")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        CsadDetector.load(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read CSAD detector checkpoint"):
        CsadDetector.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"format tag 'other', expected"):
        CsadDetector.load(tmp_path / "other.pt")
    det = CsadDetector(DetectorConfig.tiny())
    det.save(tmp_path / "ok.pt")
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["config"] = dataclasses.replace(DetectorConfig.tiny(), channels=16).to_json()
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not fit its config"):
        CsadDetector.load(tmp_path / "mismatch.pt")


def test_build_needs_validation_images(built, tmp_path: Path) -> None:
    _, _, seg_path, lgst_path, _ = built
    with pytest.raises(CsadError, match="validation/good holds no image"):
        build_detector("tiny", seg_path, lgst_path, [], DetectorSettings())


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_parity(built, tmp_path: Path, batch: int) -> None:
    det = built[0]
    path = export_onnx(det, tmp_path / "detector.onnx")
    onnx_runner, torch_runner = OnnxRunner(path), TorchRunner(det)
    assert onnx_runner.threshold == float(det.threshold) and onnx_runner.image_size == SIZE
    x = preprocess(_images(batch, 11), SIZE)
    a, b = onnx_runner.run(x), torch_runner.run(x)
    for name in ("score", "patch_hist", "lgst", "patch_hist_raw", "lgst_raw"):
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(a["anomaly_map"], b["anomaly_map"], rtol=0, atol=1e-3)
    assert (a["segmentation"] == b["segmentation"]).mean() > 0.999


@pytest.mark.parametrize("batch", [1, 4])
def test_openvino_parity(built, tmp_path: Path, batch: int) -> None:
    pytest.importorskip("openvino")
    from csad.detector.predict import OpenVinoRunner

    det = built[0]
    runner = OpenVinoRunner(export_onnx(det, tmp_path / "detector.onnx"))
    x = preprocess(_images(batch, 12), SIZE)
    a, b = runner.run(x), TorchRunner(det).run(x)
    for name in ("score", "patch_hist", "lgst"):
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(a["anomaly_map"], b["anomaly_map"], rtol=0, atol=1e-3)


def test_predict_any_size_and_bad_items(built, tmp_path: Path) -> None:
    det = built[0]
    big = _images(1, 5, size=(90, 130))[0]
    (tmp_path / "broken.png").write_bytes(b"not an image")
    preds = det.predict([big, tmp_path / "broken.png", np.zeros((5, 5), np.uint8), _images(1, 6)[0]], batch_size=2)
    assert [p.error is None for p in preds] == [True, False, False, True]
    first = preds[0]
    assert first.anomaly_map.shape == (90, 130) and first.segmentation.shape == (90, 130)
    assert first.verdict == ("anomalous" if first.score > float(det.threshold) else "good")
    assert "broken.png" in preds[1].source and preds[1].error
    # the same image alone or in a batch gives the same score (resized as in training, then batched)
    alone = det.predict([big])[0]
    assert alone.score == pytest.approx(first.score, abs=1e-4)


def test_overlay_picture(built) -> None:
    det = built[0]
    pred = next(iter_predictions(TorchRunner(det), _images(1, 7, size=(80, 100)), keep_image=True))
    picture = overlay_picture(pred, height=80)
    assert picture.dtype == np.uint8 and picture.shape == (22 + 80, 600, 3)


def test_open_runner_backends(built, tmp_path: Path) -> None:
    det = built[0]
    det.save(tmp_path / "d.pt")
    assert isinstance(open_runner(tmp_path / "d.pt"), TorchRunner)
    onnx = open_runner(tmp_path / "d.pt", backend="onnx")  # exported on the fly
    assert isinstance(onnx, OnnxRunner)
    with pytest.raises(CsadError, match="unknown backend"):
        open_runner(tmp_path / "d.pt", backend="tensorrt")
    with pytest.raises(CheckpointError, match="not found"):
        open_runner(tmp_path / "missing.onnx")


def test_category_without_test_images_scores_and_says_nothing_to_evaluate(built, tmp_path: Path) -> None:
    """A user's new product has only train/good and validation/good: scoring works, and every test metric is
    null with a reason, through score, summary, ROC curves and the visual report."""
    from csad.data.loco import LocoCategory
    from csad.io import write_png
    from csad.pipeline.score import score_category
    from csad.report import summarize, visual_report, write_roc_csvs

    det = built[0]
    det.save(tmp_path / "detector.pt")
    for split, n in (("train", 3), ("validation", 2)):
        for i, image in enumerate(_images(n, 20 + n, size=(50, 70))):
            write_png(tmp_path / "data" / "widget" / split / "good" / f"{i:03d}.png", image)
    category = LocoCategory.open(tmp_path / "data", "widget")
    table, metrics = score_category(category, tmp_path / "detector.pt", {"batch_size": 4}, "cpu", tmp_path / "out")
    assert list(table["split"]) == ["validation", "validation"]
    assert metrics["image_auroc"]["fused"]["mean"] is None
    assert "nothing to evaluate" in metrics["image_auroc"]["fused"]["mean_reason"]
    assert metrics["verdict"]["false_reject_rate"] is None and metrics["verdict"]["false_reject_rate_reason"]
    assert metrics["verdict"]["validation_false_reject_rate"] in (0.0, 0.5, 1.0)
    summary = summarize({"widget": metrics})
    assert summary["image_auroc"]["fused"]["mean"] is None
    write_roc_csvs(table, tmp_path / "roc", "widget")
    assert visual_report(category, table, tmp_path / "out").ndim == 3


def test_cli_predict_and_export_refuse_bad_arguments_with_one_line(built, tmp_path: Path, capsys) -> None:
    from csad.cli import main as csad_main
    from csad.io import write_png

    det = built[0]
    model = tmp_path / "d.pt"
    det.save(model)
    images = tmp_path / "imgs"
    write_png(images / "a.png", _images(1, 30)[0])
    (tmp_path / "afile").write_text("x")
    assert csad_main(["predict", "--model", str(model), str(images), "--out", str(tmp_path / "afile")]) == 1
    assert "is a file" in capsys.readouterr().err
    assert (
        csad_main(["predict", "--model", str(model), str(images), "--out", str(tmp_path / "o"), "--device", "banana"])
        == 1
    )
    assert "unknown device" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        csad_main(["predict", "--model", str(model), str(images), "--out", str(tmp_path / "o"), "--batch-size", "0"])
    assert csad_main(["predict", "--model", str(tmp_path), str(images), "--out", str(tmp_path / "o")]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert csad_main(["export", "--model", str(model), "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert csad_main(["export", "--model", str(model), "--out", str(tmp_path / "x.onx")]) == 1
    assert "*.onnx" in capsys.readouterr().err
    # results written inside the input folder are not rescored on the next run
    out = images / "results"
    for _ in range(2):
        assert csad_main(["predict", "--model", str(model), str(images), "--out", str(out), "--quiet"]) == 0
    import pandas as pd

    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 1 and list(table.columns) == [
        "path",
        "score",
        "verdict",
        "threshold",
        "patch_hist",
        "lgst",
        "error",
        "overlay",
    ]
    # outputs are readable by the team (umask permissions), not owner-only like mkstemp's files
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert (out / "predictions.csv").stat().st_mode & 0o777 == 0o666 & ~mask


def test_predict_accepts_one_image_and_refuses_bad_batch_sizes(built, tmp_path: Path) -> None:
    det = built[0]
    image = _images(1, 31, size=(40, 30))[0]
    assert len(det.predict(image)) == 1
    assert [p.error is None for p in det.predict([image, np.zeros((0, 10, 3), np.uint8)])] == [True, False]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        det.predict([image], batch_size=0)
