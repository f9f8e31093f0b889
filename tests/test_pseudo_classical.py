"""Weight-free grounding and proposal backends and their region toolkit, on tiny synthetic images and on hand-made
scenes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from csad.data.synth.writer import generate_category
from csad.pseudo.classical import ClassicalGrounding, ClassicalProposals
from csad.pseudo.regions import (
    corner_points,
    corner_regions,
    fill_object_holes,
    merge_regions,
    relabel_by_area,
    segment_parts,
    to_full_size,
)
from csad.pseudo.types import GroundingResult, ProposalResult

#: The per-category grounding params recommended for the synthetic benchmark (same as params.yaml).
GROUNDING = {
    "breakfast_box": {"hole_fill_ratio": 0.1, "parts": {"thin_radius": 0.0}},
    "screw_bag": {"foreground": "contrast", "min_object_radius": 2.0, "shadow_threshold": 3.0},
    "splicing_connectors": {"hole_fill_ratio": 0.0, "background_min_fraction": 1.0, "object_merge_threshold": 25.0},
}
CATEGORIES = tuple(GROUNDING)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Return {category: [(RGB image, component GT)]} of 2 train images at 128 px."""
    root = tmp_path_factory.mktemp("synth128")
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for cat in CATEGORIES:
        generate_category(cat, root / cat, image_size=128, seed=0, counts={"train": 2, "validation": 1}, progress=False)
        pairs = []
        for i in range(2):
            img = cv2.cvtColor(cv2.imread(str(root / cat / "train" / "good" / f"{i:03d}.png")), cv2.COLOR_BGR2RGB)
            gt = cv2.imread(str(root / cat / "component_gt" / "train" / "good" / f"{i:03d}.png"), cv2.IMREAD_GRAYSCALE)
            pairs.append((img, gt))
        out[cat] = pairs
    return out


def gt_instances(gt: np.ndarray) -> list[np.ndarray]:
    """Return the masks of the connected components of every GT class (above 0.1 % of the image)."""
    masks = []
    for k in np.unique(gt[gt > 0]).tolist():
        n, cc = cv2.connectedComponents((gt == k).astype(np.uint8), connectivity=8)
        masks += [cc == j for j in range(1, n) if (cc == j).sum() > 0.001 * gt.size]
    return masks


def best_iou(instances: np.ndarray, mask: np.ndarray) -> float:
    """Return the best IoU of a predicted instance with ``mask``."""
    values, counts = np.unique(instances[mask], return_counts=True)
    best = 0.0
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        if v:
            best = max(best, c / (mask.sum() + (instances == v).sum() - c))
    return best


def assert_instance_map(instances: np.ndarray, shape: tuple[int, int]) -> None:
    assert instances.dtype == np.uint16 and instances.shape == shape
    values, counts = np.unique(instances[instances > 0], return_counts=True)
    assert values.tolist() == list(range(1, len(values) + 1))  # 1..n, no gaps
    assert np.all(np.diff(counts) <= 0)  # ranked by decreasing area


@pytest.mark.parametrize("category", CATEGORIES)
def test_grounding_is_well_formed_and_covers_the_components(synth, category: str) -> None:
    backend = ClassicalGrounding(**GROUNDING[category])
    ious = []
    for image, gt in synth[category]:
        result = backend(image, "ignored . prompt .")
        assert isinstance(result, GroundingResult)
        assert_instance_map(result.instances, gt.shape)
        assert result.background.dtype == bool and result.background.shape == gt.shape
        assert len(result.phrases) == int(result.instances.max())
        assert not np.any(result.background & (result.instances > 0))
        covered = ((result.instances > 0) & (gt > 0)).sum() / (gt > 0).sum()
        assert covered > 0.75
        ious += [best_iou(result.instances, m) for m in gt_instances(gt)]
    assert np.mean(ious) > 0.5
    assert np.mean(np.array(ious) > 0.5) > 0.6


@pytest.mark.parametrize("category", CATEGORIES)
def test_proposals_are_well_formed_and_exclude_the_corner_background(synth, category: str) -> None:
    backend = ClassicalProposals()
    for image, gt in synth[category]:
        result = backend(image)
        assert isinstance(result, ProposalResult)
        assert_instance_map(result.instances, gt.shape)
        assert result.background.dtype == bool and result.background[0, 0] and result.background[-1, -1]
        assert not np.any(result.background & (result.instances > 0))
        covered = ((result.instances > 0) & (gt > 0)).sum() / (gt > 0).sum()
        assert covered > 0.6


def test_backends_are_deterministic(synth) -> None:
    image, _ = synth["breakfast_box"][0]
    a, b = (
        ClassicalGrounding(**GROUNDING["breakfast_box"])(image),
        ClassicalGrounding(**GROUNDING["breakfast_box"])(image),
    )
    assert np.array_equal(a.instances, b.instances) and np.array_equal(a.background, b.background)
    p, q = ClassicalProposals()(image), ClassicalProposals()(image)
    assert np.array_equal(p.instances, q.instances)


def disks_scene() -> np.ndarray:
    """Return a 96 px grey table with a red disk holding a small yellow dot, and a separate blue square."""
    image = np.full((96, 96, 3), 70, np.uint8)
    cv2.circle(image, (30, 30), 16, (200, 40, 40), thickness=-1)
    cv2.circle(image, (30, 30), 4, (230, 210, 40), thickness=-1)
    cv2.rectangle(image, (60, 55), (85, 80), (40, 70, 200), thickness=-1)
    return image


def test_grounding_on_a_hand_made_scene() -> None:
    image = disks_scene()
    separate = ClassicalGrounding(parts={"work_size": 0}, hole_fill_ratio=2.0)(image)
    assert separate.instances.max() == 3  # disk, dot, square
    assert separate.background[0, 0] and separate.background[50, 50]
    filled = ClassicalGrounding(parts={"work_size": 0}, hole_fill_ratio=0.0)(image)
    assert filled.instances.max() == 2  # the dot is a hole of the disk
    assert filled.instances[30, 30] == filled.instances[30, 20]


def test_contrast_foreground_finds_faint_objects_and_drops_border_ones() -> None:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(120, 2, (96, 96, 3)), 0, 255).astype(np.uint8)
    cv2.rectangle(image, (40, 40), (60, 48), (135, 135, 135), thickness=-1)  # faint bar
    cv2.rectangle(image, (0, 80), (95, 95), (160, 160, 160), thickness=-1)  # a band on the image border
    result = ClassicalGrounding(parts={"work_size": 0}, foreground="contrast", contrast_threshold=4.0)(image)
    assert result.instances.max() == 1
    bar = np.zeros((96, 96), bool)
    bar[40:49, 40:61] = True
    assert best_iou(result.instances, bar) > 0.8


def test_work_size_rescales_and_votes_back() -> None:
    image = cv2.resize(disks_scene(), (192, 192), interpolation=cv2.INTER_NEAREST)
    result = ClassicalGrounding(parts={"work_size": 96}, hole_fill_ratio=2.0)(image)
    assert result.instances.shape == (192, 192) and result.instances.max() == 3
    labels = np.zeros((4, 4), np.int32)
    labels[:3, :3] = 5
    labels[3, 3] = 2
    assert to_full_size(labels, (2, 2)).tolist() == [[5, 5], [5, 0]]  # area vote: 5 covers 4/4, 2/4, 2/4, 1/4
    assert to_full_size(labels, (8, 8)).shape == (8, 8)


def test_merge_regions_joins_similar_neighbours_only() -> None:
    lab = np.zeros((4, 6, 3), np.float32)
    lab[:, :2] = (50, 0, 0)
    lab[:, 2:4] = (53, 0, 0)  # 3 Lab units from the first
    lab[:, 4:] = (50, 40, 0)  # 40 units away
    labels = np.repeat(np.array([[0, 0, 1, 1, 2, 2]]), 4, axis=0)
    merged = merge_regions(labels, lab, threshold=5.0)
    assert merged[0, 0] == merged[0, 2] != merged[0, 4]
    assert len(np.unique(merge_regions(labels, lab, threshold=50.0))) == 1
    assert len(np.unique(merge_regions(labels, lab, threshold=5.0, lightness_weight=0.0, min_region=100))) == 1


def test_fill_object_holes_by_ratio() -> None:
    objects = np.zeros((20, 20), np.int32)
    objects[2:18, 2:18] = 1
    objects[5:8, 5:8] = 2  # 9 px hole holding another object
    objects[12:14, 12:14] = 0  # 4 px empty speck
    kept = fill_object_holes(objects, ratio=0.5, min_area=5)
    assert (kept == 2).sum() == 9 and kept[12, 12] == 1
    assert (fill_object_holes(objects, ratio=0.0, min_area=5) == 1).sum() == 256


def test_relabel_by_area_and_corner_points() -> None:
    inst = np.array([[7, 7, 7, 0], [3, 0, 0, 0]])
    assert relabel_by_area(inst).tolist() == [[1, 1, 1, 0], [2, 0, 0, 0]]
    assert corner_points(100, 200, 10)[:4].tolist() == [[10, 10], [10, 90], [190, 10], [190, 90]]
    assert [199, 99] in corner_points(100, 200, 10).tolist()
    labels = np.zeros((100, 200), np.int32)
    labels[:, 100:] = 1
    labels[50:, :] += 2
    assert corner_regions(labels, 10) == {0, 1, 2, 3}


def test_corner_points_are_clipped_into_the_image() -> None:
    pts = corner_points(50, 80)
    assert pts.shape == (8, 2) and pts.dtype == np.float32
    assert pts[:4].tolist() == [[10, 10], [10, 40], [70, 10], [70, 40]]
    assert pts[4:].tolist() == [[0, 0], [0, 49], [79, 0], [79, 49]]


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        ClassicalProposals()(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="foreground"):
        ClassicalGrounding(foreground="magic")
    with pytest.raises(ValueError, match="background_lightness"):
        ClassicalGrounding(background_lightness=(0, 50, 100))


def test_segment_parts_partitions_the_image() -> None:
    parts = segment_parts(disks_scene())
    assert parts.shape == (96, 96) and parts.min() == 0
    assert len(np.unique(parts)) == parts.max() + 1 >= 3


def test_empty_image_gives_warnings_not_errors(tmp_path: Path) -> None:
    image = np.full((64, 64, 3), 128, np.uint8)
    g = ClassicalGrounding(parts={"work_size": 0})(image)
    p = ClassicalProposals(parts={"work_size": 0})(image)
    assert g.instances.max() == 0 and g.warnings == ["no detections"]
    assert p.instances.max() == 0 and p.warnings
