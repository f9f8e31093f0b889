"""The pretrained-feature grounding backend (csad/pseudo/pretrained.py): texture splits parts of one colour, the
background is learned from the train images' borders, and bad use fails clearly."""

from __future__ import annotations

import numpy as np
import pytest

from csad.errors import ParamsError
from csad.pseudo.pretrained import (
    PretrainedGrounding,
    _leave_one_out_quantile,
    border_labels,
    build_pretrained_grounding,
    enclosed_parts,
    region_means,
)
from csad.pseudo.regions import merge_regions, region_stats

SIZE = 96


def _scene(rng: np.random.Generator, shift: int = 0, striped: bool = True) -> np.ndarray:
    """A textured grey background with an orange 'bottle' whose middle 'label' has the bottle's colour and, when
    ``striped``, darker print stripes: only texture tells the label apart."""
    image = np.full((SIZE, SIZE, 3), 70, np.float64) + rng.normal(0, 3, (SIZE, SIZE, 1))
    y0, y1, x0, x1 = 14 + shift, 82 + shift, 30, 66
    image[y0:y1, x0:x1] = (230, 120, 30)
    if striped:
        label = image[y0 + 22 : y0 + 46, x0 + 4 : x1 - 4]
        label[::4] = (150, 70, 15)
        label[1::4] = (150, 70, 15)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lite0():
    """The bundled ImageNet EfficientNet-Lite0 at strides 4 and 8 (the embedded default's weights)."""
    from csad.models.backbone import build_backbone

    return build_backbone("tf_efficientnet_lite0", "bundled", [4, 8], param="ground.pretrained.weights")


LITE0_NONE = {"name": "tf_efficientnet_lite0", "weights": "none", "seed": 0}


def _backend(extractor, work_size: int = SIZE, **kw) -> PretrainedGrounding:
    base = dict(
        parts={"work_size": work_size, "min_region": 10, "thin_radius": 0.0},
        min_object_fraction=0.005,
        hole_fill_ratio=1e6,
        sample_pixels=500,
    )
    return PretrainedGrounding(extractor, **{**base, **kw})


def test_region_means_and_border_labels() -> None:
    labels = np.array([[0, 0, 1], [2, 2, 1], [2, 2, 1]])
    desc = np.arange(9, dtype=np.float64).reshape(3, 3, 1)
    assert region_means(labels, desc)[:, 0].tolist() == [0.5, 5.0, 5.0]
    inner = np.zeros((5, 5), int)
    inner[2, 2] = 7
    assert border_labels(inner, 1).tolist() == [0]
    assert border_labels(inner, 2).tolist() == [0]
    assert border_labels(inner, 3).tolist() == [0, 7]


def test_leave_one_out_quantile_ignores_the_same_image() -> None:
    desc = np.array([[0.0], [0.1], [5.0], [5.3]])
    owner = np.array([0, 0, 1, 1])
    # Each descriptor's nearest descriptor of the OTHER image is ~5 away, not its own neighbour at 0.1 / 0.3.
    assert _leave_one_out_quantile(desc, owner, 1.0) == pytest.approx(5.2)
    assert _leave_one_out_quantile(desc, np.zeros(4, int), 0.5) == 0.0


def test_merge_regions_uses_every_channel() -> None:
    labels = np.array([[0, 1]])
    same_colour = np.zeros((1, 2, 3), np.float32)
    textured = np.concatenate([same_colour, np.array([[[0.0], [30.0]]], np.float32)], axis=-1)
    assert merge_regions(labels, same_colour, 10.0).max() == 0  # one region: colours equal
    assert merge_regions(labels, textured, 10.0).max() == 1  # the texture channel keeps them apart


def test_texture_splits_a_label_of_the_liquid_colour(lite0) -> None:
    rng = np.random.default_rng(0)
    train = [_scene(rng, shift=s) for s in (-3, 0, 3, 1)]
    colour_only = _backend(lite0, feature_weight=0.0)
    colour_only.fit(train)
    textured = _backend(lite0, feature_weight=20.0)
    summary = textured.fit(train)
    assert summary["images"] == 4 and summary["border_parts"] > 0 and summary["tau"] >= 0
    test = _scene(np.random.default_rng(1))
    label_pixel, liquid_pixel = (14 + 34, 48), (14 + 8, 48)
    plain = colour_only(test).instances
    split = textured(test).instances
    assert plain[liquid_pixel] > 0 and split[liquid_pixel] > 0 and split[label_pixel] > 0
    assert split[label_pixel] != split[liquid_pixel]  # texture keeps the printed label apart from the liquid


def test_background_is_learned_from_the_borders(lite0) -> None:
    rng = np.random.default_rng(2)
    backend = _backend(lite0)
    backend.fit([_scene(rng, shift=s, striped=False) for s in (-2, 0, 2)])
    result = backend(_scene(np.random.default_rng(3), striped=False))
    assert result.background[2, 2] and result.background[SIZE // 2, 5]  # the grey surround
    assert result.instances[SIZE // 2, SIZE // 2] > 0  # the bottle
    assert not result.background[SIZE // 2, SIZE // 2]
    assert result.phrases == ["object"] * int(result.instances.max())
    state = backend.state()
    assert state["border_descriptors"].ndim == 2 and float(state["tau"]) == backend.tau


def test_fit_is_deterministic(lite0) -> None:
    rng = np.random.default_rng(4)
    train = [_scene(rng, shift=s) for s in (0, 2)]
    a, b = _backend(lite0), _backend(lite0)
    assert a.fit(train) == b.fit(train)
    test = _scene(np.random.default_rng(5))
    assert np.array_equal(a(test).instances, b(test).instances)


def test_misuse_fails_clearly(lite0) -> None:
    backend = _backend(lite0)
    with pytest.raises(RuntimeError, match="fit"):
        backend(_scene(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="at least one"):
        backend.fit([])
    backend.fit([_scene(np.random.default_rng(0))])
    with pytest.raises(ValueError, match="uint8"):
        backend(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="background_quantile"):
        PretrainedGrounding(lite0, background_quantile=0.0)


def test_enclosed_parts_needs_a_larger_different_surface_around_most_of_the_part() -> None:
    labels = np.zeros((12, 12), np.int64)
    labels[4:7, 4:7] = 1  # inside part 0 on every side
    labels[9:12, 0:12] = 2  # a strip along the bottom edge
    labels[8, 4:7] = 3  # between part 0 (3 sides) and part 2 (1 side): 60 % of its boundary on part 0
    means = np.array([[0.0], [5.0], [9.0], [5.0]])
    stats = region_stats(labels, np.zeros((*labels.shape, 3)))
    every = np.ones(4, bool)
    assert enclosed_parts(stats, means, every, every, 1.0, 0.5, 4.0).tolist() == [1, 3]
    assert enclosed_parts(stats, means, every, every, 1.0, 0.75, 4.0).tolist() == [1]  # part 3 is not enclosed
    assert enclosed_parts(stats, means, every, every, 5.0, 0.75, 4.0).tolist() == []  # not farther than 5
    assert enclosed_parts(stats, means, every, every, 1.0, 0.75, 200.0).tolist() == []  # surface not 200x larger
    not_one = np.array([True, False, True, True])
    assert enclosed_parts(stats, means, not_one, every, 1.0, 0.75, 4.0).tolist() == []  # not a candidate
    assert enclosed_parts(stats, means, every, ~np.eye(4, dtype=bool)[0], 1.0, 0.75, 4.0).tolist() == []
    assert (
        enclosed_parts(
            region_stats(np.zeros((3, 3), np.int64), np.zeros((3, 3, 3))),
            np.zeros((1, 1)),
            every[:1],
            every[:1],
            0,
            0.5,
            1,
        ).size
        == 0
    )
    with pytest.raises(ValueError, match="4 parts but 3 means"):
        enclosed_parts(stats, means[:3], every, every, 1.0, 0.75, 4.0)


def _bag_scene(rng: np.random.Generator, full_bag: bool, sliver: bool, screw: bool) -> np.ndarray:
    """A dark table, a light bag on it (reaching the image border when ``full_bag``), optionally a bright strip of
    the bag's edge along the top border (``sliver``) and a 'screw' of that strip's colour lying on the bag."""
    image = np.full((SIZE, SIZE, 3), 40.0) + rng.normal(0, 1.5, (SIZE, SIZE, 1))
    lo, hi = (0, SIZE) if full_bag else (10, SIZE - 10)
    image[lo:hi, lo:hi] = 150 + rng.normal(0, 1.5, (hi - lo, hi - lo, 1))
    if sliver:
        image[0:6, 20:76] = 210
    if screw:
        image[40:50, 30:66] = 210
    return np.clip(image, 0, 255).astype(np.uint8)


def test_an_object_lying_on_the_background_surface_is_found() -> None:
    """The screw's colour is a border part (the bag's bright edge touches the border in some train images), so the
    border-distance rule alone calls it background; enclosed by the bag and far from it, it is an object."""
    train = [_bag_scene(np.random.default_rng(i), full_bag=i % 2 == 0, sliver=i < 4, screw=False) for i in range(8)]
    test = _bag_scene(np.random.default_rng(99), full_bag=False, sliver=False, screw=True)
    found = {}
    for ratio in (0.0, 0.75):
        backend = _backend(None, feature_weight=0.0, enclosure_boundary_ratio=ratio)
        backend.fit(train)
        found[ratio] = backend(test)
    assert found[0.0].background[45, 48]  # matched the edge strip of the train borders
    assert not found[0.75].background[45, 48] and found[0.75].instances[45, 48] > 0
    assert found[0.75].background[20, 20] and found[0.75].background[2, 2]  # the bag and the table stay background
    with pytest.raises(ValueError, match="enclosure_boundary_ratio"):
        PretrainedGrounding(None, feature_weight=0.0, enclosure_boundary_ratio=1.5)
    with pytest.raises(ValueError, match="enclosure_area_ratio"):
        PretrainedGrounding(None, feature_weight=0.0, enclosure_area_ratio=0.5)


def test_build_names_the_param_of_a_wrong_key() -> None:
    cfg = {"backbone": LITE0_NONE, "strides": [4, 8], "merge_treshold": 3.0}
    with pytest.raises(ParamsError, match="merge_treshold"):
        build_pretrained_grounding(cfg, "cpu")
    cfg = {"backbone": LITE0_NONE, "strides": [4, 8], "feature_weight": 0.0}
    assert build_pretrained_grounding(cfg, "cpu").extractor is None  # colour only: no CNN is built


def _colour_only(**kw) -> PretrainedGrounding:
    """A backend without a CNN (feature_weight 0): fast, and needs no weights."""
    return _backend(None, feature_weight=0.0, **kw)


def test_parts_cache_tells_images_with_the_same_bytes_apart() -> None:
    # A 64 x 32 image and its bytes read as 32 x 64: the cache must not hand one's parts to the other.
    tall = np.full((64, 32, 3), 60, np.uint8)
    tall[20:44, 8:24] = (230, 120, 30)
    wide = tall.reshape(32, 64, 3).copy()
    cached = _colour_only(work_size=64)
    cached.fit([tall])
    fresh = _colour_only(work_size=64)
    fresh.fit([tall])
    fresh._parts_cache.clear()
    assert np.array_equal(cached(wide).instances, fresh(wide).instances)
    assert np.array_equal(cached(wide).background, fresh(wide).background)


def test_fit_rejects_images_that_are_not_rgb_uint8() -> None:
    good = _scene(np.random.default_rng(0))
    for bad in (good[..., 0], np.dstack([good, good[..., :1]]), good.astype(np.float32)):
        with pytest.raises(ValueError, match="train image 1 is"):
            _colour_only().fit([good, bad])


def test_fit_warns_when_the_background_model_is_degenerate() -> None:
    rng = np.random.default_rng(0)
    single = _colour_only().fit([_scene(rng)])
    assert single["tau"] == 0 and "only one train image" in single["warnings"][0]
    same = _scene(rng)
    assert "repeat exactly" in _colour_only().fit([same, same.copy()])["warnings"][0]
    assert "warnings" not in _colour_only().fit([_scene(rng, shift=s) for s in (-2, 0, 2)])
    # 20 x 300 px at work size 64 is 4 x 64 px: a 4 px border band covers every pixel, objects become background.
    strips = [np.ascontiguousarray(_scene(rng)[38:58].repeat(3, axis=1)[:, :300]) for _ in range(2)]
    summary = _colour_only(work_size=64).fit(strips)
    assert any("border_band" in w and "work_size" in w for w in summary["warnings"])


def test_build_reports_bad_params_clearly() -> None:
    base = {"backbone": LITE0_NONE, "strides": [4, 8]}
    with pytest.raises(ParamsError, match="lacks backbone"):
        build_pretrained_grounding({"strides": [4]}, "cpu")
    with pytest.raises(ParamsError, match=r"ground\.pretrained\.backbone lacks weights"):
        build_pretrained_grounding({"backbone": {"name": "tf_efficientnet_lite0"}, "strides": [4]}, "cpu")
    with pytest.raises(ParamsError, match=r"ground\.pretrained\.backbone must be a mapping"):
        build_pretrained_grounding({"backbone": "tf_efficientnet_lite0", "strides": [4]}, "cpu")
    for key, value in (("feature_weight", None), ("feature_weight", "8")):
        with pytest.raises(ParamsError, match=f"{key} must be a number"):
            build_pretrained_grounding({**base, key: value}, "cpu")
    for value in (float("nan"), float("inf")):
        with pytest.raises(ParamsError, match="feature_weight must be a finite number"):
            build_pretrained_grounding({**base, "feature_weight": value}, "cpu")
    with pytest.raises(ParamsError, match=r"merge_feature_weight .* feature_weight is 0"):
        build_pretrained_grounding({**base, "feature_weight": 0.0, "merge_feature_weight": 5.0}, "cpu")
    with pytest.raises(ParamsError) as err:
        build_pretrained_grounding({**base, "enclosure_boundary_ratio": 2.0}, "cpu")
    assert str(err.value) == (
        "params.yaml: ground.pretrained.enclosure_boundary_ratio must be in [0, 1] (0 = off), got 2.0"
    )
    for key, value in (("feature_weight", -1.0), ("pca_dim", 0), ("pad", -1), ("border_band", 0)):
        with pytest.raises(ParamsError) as err:
            build_pretrained_grounding({**base, key: value}, "cpu")
        assert str(err.value).startswith(f"params.yaml: ground.pretrained.{key} must be >= ")  # named once
    with pytest.raises(ParamsError, match=r"ground\.pretrained\.backbone/strides"):
        build_pretrained_grounding({**base, "strides": []}, "cpu")
    # Colour only: the weights are never read, so a missing checkpoint file does not matter.
    nowhere = {**LITE0_NONE, "weights": "/nonexistent/weights.pt"}
    colour = build_pretrained_grounding({**base, "backbone": nowhere, "feature_weight": 0.0}, "cpu")
    assert colour.extractor is None


def test_ground_backend_without_its_params_section_names_it() -> None:
    from csad.pseudo.backends import build_ground_backend

    for cfg in ({"backend": "pretrained"}, {"backend": "classical", "classical": None}):
        with pytest.raises(ParamsError, match=f"ground.{cfg['backend']} is None"):
            build_ground_backend(cfg, "cpu", "my.yaml")
