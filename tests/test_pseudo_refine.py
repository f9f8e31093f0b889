"""Fine and coarse refinement of proposals / grounding instances into one instance map (docs/method.md 2.3)."""

from __future__ import annotations

import numpy as np
import pytest

from csad.pseudo.refine import refine_instances

SHAPE = (64, 64)


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Return a SHAPE mask that is True on [y0:y1, x0:x1]."""
    mask = np.zeros(SHAPE, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def instances(*masks: np.ndarray) -> np.ndarray:
    """Return a uint16 instance map painting ``masks`` as 1, 2, ... in order."""
    out = np.zeros(SHAPE, dtype=np.uint16)
    for k, mask in enumerate(masks, start=1):
        out[mask] = k
    return out


NONE = np.zeros(SHAPE, dtype=bool)
NO_INSTANCES = np.zeros(SHAPE, dtype=np.uint16)


def fine(proposals: np.ndarray, **kwargs: object) -> np.ndarray:
    """Return fine-mode refinement with empty backgrounds/grounding unless given in ``kwargs``."""
    args = {"proposal_background": NONE, "grounding": NO_INSTANCES, "grounding_background": NONE}
    args.update(kwargs)
    use_filter = bool(args.pop("use_grounding_filter", False))
    return refine_instances(proposals, mode="fine", use_grounding_filter=use_filter, **args)  # type: ignore[arg-type]


def test_fine_prefers_parts_and_drops_a_mostly_covered_object() -> None:
    obj = box(10, 40, 10, 40)  # 900 px
    left, right = box(10, 40, 10, 25), box(10, 40, 25, 38)  # 450 + 390 px: 93% of the object
    out = fine(np.stack([obj, left, right]))
    assert out.dtype == np.uint16
    assert sorted(np.unique(out).tolist()) == [0, 1, 2]
    assert np.all(out[left] == 1) and np.all(out[right] == 2)  # ranked by decreasing area
    assert np.all(out[obj & ~left & ~right] == 0)  # the object itself is gone


def test_fine_keeps_an_object_with_enough_uncovered_area_under_its_part() -> None:
    obj, part = box(10, 50, 10, 50), box(20, 30, 20, 30)
    out = fine(np.stack([part, obj]))
    assert np.all(out[obj & ~part] == 1)  # largest first ...
    assert np.all(out[part] == 2)  # ... so the part is painted on top


def test_fine_instance_map_keeps_disjoint_proposals() -> None:
    a, b = box(5, 20, 5, 20), box(30, 60, 30, 60)
    out = fine(instances(a, b))
    assert np.all(out[b] == 1) and np.all(out[a] == 2)
    assert np.count_nonzero(out) == a.sum() + b.sum()


def test_fine_removes_masks_on_either_background() -> None:
    band, inner, other = box(0, 20, 0, 64), box(30, 50, 20, 40), box(52, 62, 50, 62)
    proposals = instances(band, inner, other)
    out = fine(proposals, proposal_background=box(0, 22, 0, 64))
    assert np.all(out[band] == 0) and np.all(out[inner] == 1) and np.all(out[other] == 2)
    out = fine(proposals, proposal_background=box(0, 22, 0, 64), grounding_background=box(28, 64, 18, 42))
    assert np.all(out[inner] == 0) and np.all(out[other] == 1)


def test_background_overlap_threshold_is_background_ratio() -> None:
    mask = box(10, 30, 10, 30)  # 400 px
    background = box(11, 40, 10, 40)  # 870 px covering 380 of the 400 px = 95%
    assert np.count_nonzero(fine(instances(mask), proposal_background=background)) == 0
    kept = fine(instances(mask), proposal_background=background, background_ratio=0.96)
    assert np.count_nonzero(kept) == 400


def test_grounding_filter_keeps_only_proposals_inside_the_grounding_foreground() -> None:
    inside, outside = box(30, 50, 20, 40), box(5, 15, 45, 60)
    proposals = instances(inside, outside)
    grounding = instances(box(25, 55, 15, 45))
    out = fine(proposals, grounding=grounding, use_grounding_filter=True)
    assert np.all(out[inside] == 1) and np.all(out[outside] == 0)
    out = fine(proposals, grounding=grounding, use_grounding_filter=False)
    assert np.all(out[inside] == 1) and np.all(out[outside] == 2)


def test_fine_keeps_at_most_max_masks_largest() -> None:
    big, mid, small = box(0, 20, 0, 20), box(30, 45, 30, 45), box(50, 60, 0, 10)
    out = fine(instances(big, mid, small), max_masks=2)
    assert np.all(out[big] == 1) and np.all(out[mid] == 2) and np.all(out[small] == 0)


def test_coarse_splits_grounding_instances_into_components_and_ignores_proposals() -> None:
    left, right, speck = box(10, 30, 5, 20), box(10, 40, 40, 55), box(60, 63, 60, 63)  # speck: 9 px < 50
    grounding = instances(left | right | speck, box(45, 55, 10, 30))
    junk = np.full(SHAPE, 7, dtype=np.uint16)
    out = refine_instances(junk, NONE, grounding, NONE, "coarse", use_grounding_filter=True)
    assert np.all(out[right] == 1)  # 450 px
    assert np.all(out[left] == 2)  # 300 px
    assert np.all(out[box(45, 55, 10, 30)] == 3)  # 200 px
    assert np.all(out[speck] == 0)


def test_nothing_left_gives_an_all_zero_map() -> None:
    mask = box(10, 30, 10, 30)
    out = fine(instances(mask), proposal_background=mask)
    assert out.shape == SHAPE and out.dtype == np.uint16 and not out.any()
    out = refine_instances(NO_INSTANCES, NONE, NO_INSTANCES, NONE, "coarse", False)
    assert out.shape == SHAPE and not out.any()
    assert not fine(np.zeros((0, *SHAPE), dtype=bool)).any()


def test_unknown_mode_names_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="'fine', 'coarse'"):
        refine_instances(NO_INSTANCES, NONE, NO_INSTANCES, NONE, "medium", False)


def test_shape_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="one shape"):
        refine_instances(NO_INSTANCES, np.zeros((8, 8), bool), NO_INSTANCES, NONE, "fine", False)
