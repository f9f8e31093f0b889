"""Foundation backends (SAM proposals, Grounding DINO, Grounded-SAM) with tiny random models, all offline."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything")
pytest.importorskip("groundingdino")

from csad.errors import CheckpointError, ParamsError
from csad.foundation import FoundationMissingError
from csad.foundation.groundingdino import (
    _extract_state_dict,
    build_groundingdino,
    predict_boxes,
    preprocess_caption,
    resized_size,
)
from csad.foundation.sam import build_sam, sam_architecture, sam_predictor
from csad.pseudo.grounding import (
    GroundedSamGrounding,
    background_pieces,
    build_grounded_sam,
    is_background_phrase,
)
from csad.pseudo.masks import merge_masks
from csad.pseudo.proposals import AMG_DEFAULTS, SamProposals, build_sam_proposals
from csad.pseudo.types import GroundingResult, ProposalResult
from tests.fixtures_foundation import save_tiny_sam, write_offline_bert, write_small_groundingdino

# Thresholds at which random weights still give masks.
PERMISSIVE_AMG = {
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 1.0,
    "points_per_side": 4,
    "crop_n_layers": 0,
    "min_mask_region_area": 0,
}
GD = "ground.grounded_sam"

# Deprecation noise from timm, transformers and groundingdino internals.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:torch.meshgrid:UserWarning")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """Return a small RGB uint8 image: two coloured rectangles on a dark background."""
    img = np.full((96, 128, 3), 40, np.uint8)
    img[20:60, 30:80] = (200, 50, 50)
    img[50:90, 70:120] = (50, 200, 50)
    return img


@pytest.fixture(scope="module")
def tiny_sam_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a tiny random SAM checkpoint."""
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth", seed=0)


@pytest.fixture(scope="module")
def tiny_sam(tiny_sam_path: Path) -> torch.nn.Module:
    """Return the tiny SAM loaded through build_sam."""
    return build_sam("tiny", tiny_sam_path, "propose.sam.checkpoint")


@pytest.fixture(scope="module")
def gdino_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Return (config, checkpoint, bert folder) of a small random Grounding DINO."""
    root = tmp_path_factory.mktemp("gdino")
    bert = write_offline_bert(root / "bert", seed=0)
    config, checkpoint = write_small_groundingdino(root, bert, seed=0)
    return config, checkpoint, bert


@pytest.fixture(scope="module")
def gdino(gdino_files: tuple[Path, Path, Path]) -> torch.nn.Module:
    """Return the small Grounding DINO loaded through build_groundingdino."""
    config, checkpoint, bert = gdino_files
    return build_groundingdino(config, checkpoint, bert, {"checkpoint": f"{GD}.checkpoint"})


# --- (a) missing or unusable files ------------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoint", [None, "does/not/exist.pth"])
def test_missing_sam_checkpoint_names_param_and_file(checkpoint: str | None) -> None:
    with pytest.raises(CheckpointError) as err:
        build_sam("vit_h", checkpoint, "propose.sam.checkpoint")
    assert "propose.sam.checkpoint" in str(err.value)
    assert "sam_vit_h_4b8939.pth" in str(err.value)


def test_sam_proposals_factory_missing_checkpoint_and_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"propose\.sam\.checkpoint.*sam_vit_b_01ec64\.pth"):
        build_sam_proposals({"model_type": "vit_b", "checkpoint": str(tmp_path / "x.pth")})
    with pytest.raises(ParamsError, match=r"propose\.sam\.points_per_sid"):
        build_sam_proposals({"checkpoint": "x.pth", "points_per_sid": 8})
    with pytest.raises(ParamsError, match=r"propose\.sam\.points_per_side"):
        build_sam_proposals({"checkpoint": "x.pth", "points_per_side": 2.5})


def test_sam_checkpoint_not_a_plain_state_dict(tmp_path: Path, tiny_sam_path: Path) -> None:
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(tiny_sam_path, weights_only=True), "epoch": 3}, wrapped)
    with pytest.raises(CheckpointError, match="not a plain SAM state dict"):
        build_sam("tiny", wrapped, "propose.sam.checkpoint")
    pickled = tmp_path / "pickled.pth"
    torch.save({"args": argparse.Namespace(lr=1.0)}, pickled)
    with pytest.raises(CheckpointError, match="only tensors are loaded"):
        build_sam("tiny", pickled, "propose.sam.checkpoint")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"propose\.sam\.checkpoint"):
        build_sam("tiny", broken, "propose.sam.checkpoint")
    partial = tmp_path / "partial.pth"
    state = torch.load(tiny_sam_path, weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, partial)
    with pytest.raises(CheckpointError, match="does not fit SAM tiny"):
        build_sam("tiny", partial, "propose.sam.checkpoint")


def test_grounded_sam_factory_missing_files_name_params(tmp_path: Path, tiny_sam_path: Path) -> None:
    bert = tmp_path / "bert"
    cfg = {
        "config": "",
        "checkpoint": str(tmp_path / "groundingdino_swint_ogc.pth"),
        "bert_path": str(bert),
        "sam_model_type": "tiny",
        "sam_checkpoint": str(tiny_sam_path),
        "box_threshold": 0.3,
        "text_threshold": 0.25,
        "background_prompt": "",
        "short_side": 800,
    }
    with pytest.raises(CheckpointError) as err:
        build_grounded_sam(cfg)
    assert f"{GD}.bert_path" in str(err.value) and str(bert) in str(err.value)
    bert.mkdir()
    with pytest.raises(CheckpointError) as err:
        build_grounded_sam(cfg)
    assert f"{GD}.checkpoint" in str(err.value) and "groundingdino_swint_ogc.pth" in str(err.value)
    with pytest.raises(CheckpointError, match=rf"{GD}\.config"):
        build_grounded_sam({**cfg, "config": str(tmp_path / "nope.py")})
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "groundingdino_swint_ogc.pth")
    with pytest.raises(CheckpointError, match=rf"{GD}\.sam_checkpoint.*sam_vit_h_4b8939\.pth"):
        build_grounded_sam({**cfg, "sam_model_type": "vit_h", "sam_checkpoint": str(tmp_path / "sam.pth")})
    with pytest.raises(ParamsError, match=rf"{GD}\.box_treshold"):
        build_grounded_sam({**cfg, "box_treshold": 0.3})


def test_groundingdino_checkpoint_with_pickled_objects(tmp_path: Path) -> None:
    checkpoint = tmp_path / "gd.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1.0)}, checkpoint)
    with pytest.raises(CheckpointError) as err:
        build_groundingdino(None, checkpoint, tmp_path, {"checkpoint": f"{GD}.checkpoint"})
    message = str(err.value)
    assert "only tensors are loaded" in message and f"{GD}.checkpoint" in message
    assert "weights_only=False)['model']" in message


def test_extract_state_dict_accepts_official_and_plain() -> None:
    w = torch.ones(2)
    assert _extract_state_dict({"model": {"module.a": w}}, Path("x"), "p") == {"a": w}
    assert _extract_state_dict({"a": w}, Path("x"), "p") == {"a": w}
    with pytest.raises(CheckpointError, match="p"):
        _extract_state_dict({"model": 3}, Path("x"), "p")


def test_missing_packages_give_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(FoundationMissingError, match=r"pip install -e '\.\[foundation\]'"):
        sam_architecture("tiny")


def test_backend_modules_import_without_foundation_packages() -> None:
    code = (
        "import sys\n"
        "for name in ('segment_anything', 'groundingdino', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "import csad.pseudo.grounding, csad.pseudo.proposals, csad.foundation.sam, csad.foundation.groundingdino\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# --- (b) SAM proposals --------------------------------------------------------------------------------------------


def test_amg_defaults_reach_the_generator(tiny_sam: torch.nn.Module) -> None:
    generator = SamProposals(tiny_sam).generator
    assert generator.points_per_batch == 16
    assert generator.pred_iou_thresh == 0.88
    assert generator.stability_score_thresh == 0.96
    assert generator.crop_n_layers == 1
    assert generator.crop_overlap_ratio == pytest.approx(512 / 1500)
    assert generator.min_mask_region_area == 500
    assert len(generator.point_grids[0]) == 32 * 32
    assert AMG_DEFAULTS["box_nms_thresh"] == 0.7


def test_sam_proposals_on_tiny_sam(tiny_sam: torch.nn.Module, image: np.ndarray) -> None:
    proposals = SamProposals(tiny_sam, PERMISSIVE_AMG)
    result = proposals(image)
    assert isinstance(result, ProposalResult)
    assert result.instances.shape == image.shape[:2] and result.instances.dtype == np.uint16
    assert result.background.shape == image.shape[:2] and result.background.dtype == bool
    assert result.warnings == []
    values = np.unique(result.instances)
    assert values.max() >= 1 and values.max() <= 255

    masks, background = proposals.masks(image)
    areas = [int(m.sum()) for m in masks]
    assert 0 < len(masks) <= 255
    assert areas == sorted(areas, reverse=True)
    np.testing.assert_array_equal(background, result.background)
    np.testing.assert_array_equal(merge_masks(masks), result.instances)
    # Instance k is the k-th largest kept mask: visible where no smaller mask was painted over it.
    for k in (1, int(values.max())):
        assert np.all(masks[k - 1][result.instances == k])


def test_sam_proposals_cap_and_empty(tiny_sam: torch.nn.Module, image: np.ndarray) -> None:
    capped = SamProposals(tiny_sam, PERMISSIVE_AMG, max_masks=3)(image)
    assert 1 <= capped.instances.max() <= 3
    strict = SamProposals(tiny_sam, {**PERMISSIVE_AMG, "pred_iou_thresh": 2.0})(image)
    assert not strict.instances.any() and strict.warnings
    # segment-anything's cross-crop NMS crashes when no crop keeps a mask: an empty result instead.
    cropped = SamProposals(tiny_sam, {"points_per_side": 2, "crop_n_layers": 1})(image)
    assert not cropped.instances.any() and cropped.warnings


# --- (c) Grounding DINO -------------------------------------------------------------------------------------------


def test_caption_and_resize_rules() -> None:
    assert preprocess_caption("  Apple . Container ") == "apple . container."
    assert preprocess_caption("pin .") == "pin ."
    assert resized_size(1600, 1280) == (800, 1000)  # breakfast_box W x H
    assert resized_size(800, 1600) == (1332, 666)  # juice_bottle: long side capped at 1333
    assert resized_size(128, 96, short_side=256) == (256, 341)


def test_predict_boxes_small_groundingdino(gdino: torch.nn.Module, image: np.ndarray) -> None:
    boxes, phrases, scores = predict_boxes(gdino, image, "Apple . zip-lock bag", 0.0, 0.0, short_side=256)
    n = gdino.num_queries
    assert boxes.shape == (n, 4) and boxes.dtype == np.float32
    assert scores.shape == (n,) and np.all((scores > 0) & (scores <= 1))
    assert len(phrases) == n and all(isinstance(p, str) for p in phrases)
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
    assert "zip - lock bag" in phrases[0]  # every token passes text_threshold 0
    boxes, phrases, scores = predict_boxes(gdino, image, "apple .", 1.0, 0.0, short_side=256)
    assert boxes.shape == (0, 4) and phrases == [] and scores.shape == (0,)


# --- (d) Grounded-SAM ---------------------------------------------------------------------------------------------


def test_background_phrase_rule() -> None:
    assert background_pieces(" container .") == ["container"]
    assert background_pieces("") == []
    assert is_background_phrase("container", " container .")  # FIX: the released code never matched this
    assert is_background_phrase("zip - lock bag", "zip-lock bag")
    assert not is_background_phrase("bag", "zip-lock bag")
    assert not is_background_phrase("anything", "")
    assert not is_background_phrase("anything", " . ")


def test_grounded_sam_normal_background_and_empty(
    gdino: torch.nn.Module, tiny_sam: torch.nn.Module, image: np.ndarray
) -> None:
    grounding = GroundedSamGrounding(gdino, sam_predictor(tiny_sam), 0.0, 0.0, "", short_side=256)
    result = grounding(image, "apple . container .")
    assert isinstance(result, GroundingResult)
    assert result.instances.shape == image.shape[:2] and result.instances.dtype == np.uint16
    assert result.warnings == [] and not result.background.any()
    assert 1 <= result.instances.max() == len(result.phrases) <= gdino.num_queries
    assert all("container" in p for p in result.phrases)

    # Every phrase contains "container" at text_threshold 0: all boxes are background, nothing crashes.
    grounding.background_prompt = " container ."
    result = grounding(image, "apple . container .")
    assert not result.instances.any() and result.phrases == []
    assert result.background.any() and "only background" in result.warnings[0]

    grounding.box_threshold = 1.0
    result = grounding(image, "apple . container .")
    assert not result.instances.any() and not result.background.any()
    assert "no Grounding DINO detections" in result.warnings[0]


def test_build_grounded_sam_from_params(
    gdino_files: tuple[Path, Path, Path], tiny_sam_path: Path, image: np.ndarray
) -> None:
    config, checkpoint, bert = gdino_files
    cfg = {
        "config": str(config),
        "checkpoint": str(checkpoint),
        "bert_path": str(bert),
        "sam_model_type": "tiny",
        "sam_checkpoint": str(tiny_sam_path),
        "box_threshold": 1.0,
        "text_threshold": 0.2,
        "background_prompt": "zip-lock bag",
        "short_side": 128,
    }
    grounding = build_grounded_sam(cfg)
    assert grounding.short_side == 128 and grounding.background_prompt == "zip-lock bag"
    result = grounding(image, "apple .")
    assert result.warnings and not result.instances.any()
