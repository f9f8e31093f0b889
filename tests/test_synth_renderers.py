"""Every synthetic category renderer: constraints, ground truth, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from csad.data.synth import SYNTH_CATEGORIES, get_renderer

SIZE = 128


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


@pytest.mark.parametrize("category", SYNTH_CATEGORIES)
def test_good_images_satisfy_constraints(category: str) -> None:
    renderer = get_renderer(category)
    for i in range(6):
        sample = renderer.render(_rng(1, i), SIZE, None)
        assert sample.image.shape == (SIZE, SIZE, 3) and sample.image.dtype == np.uint8
        assert sample.component_gt.shape == (SIZE, SIZE) and sample.component_gt.dtype == np.uint8
        assert sample.defect_masks == []
        assert renderer.violations(sample.facts) == [], sample.facts
        present = set(np.unique(sample.component_gt)) - {0}
        assert present <= set(range(1, len(renderer.component_classes) + 1))
        assert present, "a good image shows no component at all"


@pytest.mark.parametrize("category", SYNTH_CATEGORIES)
def test_every_defect_renders_with_ground_truth(category: str) -> None:
    renderer = get_renderer(category)
    specs = renderer.defect_specs(SIZE)
    assert len({d.name for d in specs}) == len(specs)
    assert {d.kind for d in specs} == {"logical", "structural"}
    for j, spec in enumerate(specs):
        if spec.relative:
            assert isinstance(spec.saturation, float) and 0 < spec.saturation <= 1
        else:
            assert isinstance(spec.saturation, int) and spec.saturation > 0
        for i in range(3):
            sample = renderer.render(_rng(2, j, i), SIZE, spec.name)
            assert sample.defect_masks, f"{category}/{spec.name}: no ground-truth region"
            for mask in sample.defect_masks:
                assert mask.shape == (SIZE, SIZE) and mask.dtype == bool
                assert mask.sum() >= 4, f"{category}/{spec.name}: region of {mask.sum()} px"
            broken = renderer.violations(sample.facts)
            if spec.kind == "logical":
                assert broken, f"{category}/{spec.name} breaks no constraint: {sample.facts}"
            else:
                assert broken == [], f"{category}/{spec.name} should keep the logic: {broken}"


@pytest.mark.parametrize("category", SYNTH_CATEGORIES)
def test_render_is_deterministic_for_a_seed(category: str) -> None:
    renderer = get_renderer(category)
    defect = renderer.defect_specs(SIZE)[0].name
    a = renderer.render(_rng(3, 7), SIZE, defect)
    b = renderer.render(_rng(3, 7), SIZE, defect)
    c = renderer.render(_rng(3, 8), SIZE, defect)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.component_gt, b.component_gt)
    assert all(np.array_equal(x, y) for x, y in zip(a.defect_masks, b.defect_masks, strict=True))
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("category", SYNTH_CATEGORIES)
def test_images_vary_between_seeds(category: str) -> None:
    """Per-image jitter: two good images differ clearly, not only by sensor noise."""
    renderer = get_renderer(category)
    a = renderer.render(_rng(4, 1), SIZE, None).component_gt
    b = renderer.render(_rng(4, 2), SIZE, None).component_gt
    assert (a != b).mean() > 0.01
