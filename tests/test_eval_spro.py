"""Tests for csad.eval.spro: sPRO curve, FPR and AU-sPRO against hand-computed values and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from csad.eval.spro import (
    DEFAULT_LIMITS,
    GtChannel,
    SproCurve,
    _counts_ge,
    au_spro,
    compute_au_spro,
    saturation_area,
    spro_curve,
)


def _mask(shape: tuple[int, int], *pixels: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for p in pixels:
        m[p] = True
    return m


# --------------------------------------------------------------------------------------------------------------------
# Brute-force reference: one threshold at a time, straight from the definition.
# --------------------------------------------------------------------------------------------------------------------


def _reference_curve(maps: list[np.ndarray], channels: list[list[GtChannel]]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]
    thresholds = [math.inf, *scores.tolist()]
    fprs, spros = [], []
    for t in thresholds:
        fp = 0
        free = 0
        channel_spros = []
        for amap, chans in zip(maps, channels, strict=True):
            positive = amap >= t
            union = np.zeros(amap.shape, dtype=bool)
            for ch in chans:
                union |= ch.mask
                sat = ch.saturation_area
                if sat == 0:
                    channel_spros.append(1.0)
                else:
                    tp = int(np.sum(positive & ch.mask))
                    channel_spros.append(min(tp / sat, 1.0))
            fp += int(np.sum(positive & ~union))
            free += int(np.sum(~union))
        fprs.append(fp / free)
        spros.append(sum(channel_spros) / len(channel_spros))
    return np.array(fprs), np.array(spros)


def _reference_au(fpr: np.ndarray, spro: np.ndarray, max_fpr: float) -> float:
    # Dense resampling of the piecewise-linear curve (vertical segments only at repeated FPR values).
    area = 0.0
    for i in range(len(fpr) - 1):
        x0, x1, y0, y1 = fpr[i], fpr[i + 1], spro[i], spro[i + 1]
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += 0.5 * (y0 + y1) * (x1 - x0)
    return area / max_fpr


def _random_case(
    rng: np.random.Generator, n_images: int, shape: tuple[int, int], levels: int | None
) -> tuple[list[np.ndarray], list[list[GtChannel]]]:
    maps, channels = [], []
    for i in range(n_images):
        if levels is None:
            amap = rng.random(shape).astype(np.float32)
        else:  # few distinct values -> many ties
            amap = (rng.integers(0, levels, size=shape) / levels).astype(np.float32)
        chans = []
        if i % 3 != 2:  # every third image is a good image
            for _ in range(int(rng.integers(1, 4))):
                y0, x0 = rng.integers(0, shape[0] - 2), rng.integers(0, shape[1] - 2)
                h, w = rng.integers(2, shape[0] // 2 + 2), rng.integers(2, shape[1] // 2 + 2)
                mask = np.zeros(shape, dtype=bool)
                mask[y0 : y0 + h, x0 : x0 + w] = True  # rectangles of one image often overlap
                amap[mask] += np.float32(rng.random() * 0.5)
                if rng.random() < 0.5:
                    chans.append(GtChannel(mask, float(rng.choice([0.1, 0.35, 0.5, 1.0])), relative=True))
                else:
                    chans.append(GtChannel(mask, int(rng.integers(1, 40)), relative=False))
        maps.append(amap)
        channels.append(chans)
    return maps, channels


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    maps, channels = _random_case(rng, n_images=5, shape=(9, 11), levels=None if seed % 2 else 12)
    ref_fpr, ref_spro = _reference_curve(maps, channels)
    curve = spro_curve(maps, channels)
    np.testing.assert_allclose(curve.fpr, ref_fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.spro, ref_spro, rtol=0, atol=1e-12)
    for limit in DEFAULT_LIMITS:
        assert au_spro(curve, limit) == pytest.approx(_reference_au(ref_fpr, ref_spro, limit), abs=1e-12)


def test_matches_brute_force_with_single_image_and_empty_channel() -> None:
    # One image only (the defect-free group is larger than the number of thresholds) and a channel with an empty mask
    # (saturation area 0 -> counted as saturated, sPRO 1, at every threshold).
    rng = np.random.default_rng(7)
    amap = (rng.integers(0, 5, size=(8, 8)) / 5).astype(np.float32)
    chans = [
        GtChannel(_mask((8, 8), (1, 1), (1, 2), (2, 2)), 2, relative=False),
        GtChannel(np.zeros((8, 8), dtype=bool), 10, relative=False),
    ]
    ref_fpr, ref_spro = _reference_curve([amap], [chans])
    curve = spro_curve([amap], [chans])
    np.testing.assert_allclose(curve.fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(curve.spro, ref_spro, atol=1e-12)
    assert curve.spro[0] == 0.5  # the empty channel is saturated even at threshold +inf


@pytest.mark.parametrize("n_values", [3, 50, 5000])
def test_counts_ge_both_branches(n_values: int) -> None:
    rng = np.random.default_rng(n_values)
    edges = np.unique(rng.integers(0, 100, size=200)).astype(np.float64)
    values = rng.integers(-5, 105, size=n_values).astype(np.float64)
    expected = np.array([np.sum(values >= e) for e in edges])
    np.testing.assert_array_equal(_counts_ge(values, edges), expected)


# --------------------------------------------------------------------------------------------------------------------
# Hand-computed cases.
# --------------------------------------------------------------------------------------------------------------------


def test_saturation_area_definitions() -> None:
    assert saturation_area(1000, 6300, relative=False) == 1000  # min(6300, 1000)
    assert saturation_area(10000, 6300, relative=False) == 6300
    assert saturation_area(4, 0.7, relative=True) == 2  # int(2.8) truncates
    assert saturation_area(3, 0.3, relative=True) == 0  # int(0.9)
    ch = GtChannel.from_config(
        _mask((2, 2), (0, 0), (0, 1)), {"saturation_threshold": 0.5, "relative_saturation": True}
    )
    assert (ch.area, ch.saturation_area, ch.relative) == (2, 1, True)


def test_overlapping_channels_are_not_false_positives() -> None:
    # scores (x10):   9 8 7       channel A = {(0,0),(0,1)}, absolute 2 -> saturation 2
    #                 6 5 4       channel B = {(0,1),(1,0)}, absolute 1 -> saturation 1
    #                 3 2 1       union = 3 pixels; defect-free = 6 pixels with scores .7 .5 .4 .3 .2 .1
    # threshold  A tp  B tp  sPRO=(A+B)/2      FP  FPR
    #   inf       0     0     0                 0   0
    #   .9        1     0    (1/2+0)/2 = .25    0   0
    #   .8        2     1    (1+1)/2 = 1        0   0     <- (0,1) lies in both channels: never a false positive
    #   .7        2     1     1                 1   1/6
    #   .6        2     2     1                 1   1/6   <- (1,0) lies in channel B only: not a false positive
    #   .5 .4 .3 .2 .1: FP = 2..6 -> FPR 2/6..6/6, sPRO 1
    amap = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4], [0.3, 0.2, 0.1]], dtype=np.float32)
    chans = [
        GtChannel(_mask((3, 3), (0, 0), (0, 1)), 2, relative=False),
        GtChannel(_mask((3, 3), (0, 1), (1, 0)), 1, relative=False),
    ]
    curve = spro_curve([amap], [chans])
    np.testing.assert_allclose(curve.fpr, [0, 0, 0, 1 / 6, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1])
    np.testing.assert_allclose(curve.spro, [0, 0.25, 1, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(curve.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], rtol=1e-6)
    # sPRO reaches 1 at FPR 0, so every AU-sPRO is 1.
    assert compute_au_spro([amap], [chans]) == {limit: pytest.approx(1.0) for limit in DEFAULT_LIMITS}


def test_relative_saturation_truncates() -> None:
    # Channel: 4 pixels scoring .9 .8 .7 .6, relative 0.7 -> saturation int(0.7*4) = int(2.8) = 2.
    # sPRO: threshold .9 -> 1/2, .8 -> min(2/2, 1) = 1 (rounding 2.8 up to 3 would give 2/3 here).
    # Defect-free pixels: .5 .4 .3 .2 .1 .05 -> FPR 0 until threshold .5.
    amap = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.4, 0.3, 0.2, 0.1, 0.05]], dtype=np.float32)
    mask = _mask((2, 5), (0, 0), (0, 1), (0, 2), (0, 3))
    curve = spro_curve([amap], [[GtChannel(mask, 0.7, relative=True)]])
    np.testing.assert_allclose(curve.spro[:4], [0, 0.5, 1, 1])
    np.testing.assert_allclose(curve.fpr[:6], [0, 0, 0, 0, 0, 1 / 6])


def test_absolute_saturation_larger_than_defect() -> None:
    # 2-pixel defect with saturation_threshold 6300 -> saturation min(6300, 2) = 2 -> sPRO 1/2 after the top pixel.
    amap = np.array([[0.9, 0.5, 0.1, 0.2]], dtype=np.float32)
    mask = _mask((1, 4), (0, 0), (0, 1))
    curve = spro_curve([amap], [[GtChannel(mask, 6300, relative=False)]])
    # thresholds: inf .9 .5 .2 .1; defect-free pixels .1 .2
    np.testing.assert_allclose(curve.spro, [0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(curve.fpr, [0, 0, 0, 0.5, 1])


def test_good_images_add_only_false_positive_pixels() -> None:
    # Anomalous image [.9 .4 .3 .1] with a 1-pixel channel on .9 (saturation 1); good image [.95 .6 .2 0].
    # Defect-free pixels: 3 + 4 = 7. The good image adds no channel, so sPRO is the single channel's sPRO.
    # threshold: inf  .95  .9   .6   .4   .3   .2   .1   0
    # FP:         0    1    1    2    3    4    5    6    7    (/7)
    # sPRO:       0    0    1    1    1    1    1    1    1
    anomalous = np.array([[0.9, 0.4, 0.3, 0.1]], dtype=np.float32)
    good = np.array([[0.95, 0.6, 0.2, 0.0]], dtype=np.float32)
    chans = [[GtChannel(_mask((1, 4), (0, 0)), 1, relative=False)], []]
    curve = spro_curve([anomalous, good], chans)
    np.testing.assert_allclose(curve.fpr, np.array([0, 1, 1, 2, 3, 4, 5, 6, 7]) / 7)
    np.testing.assert_allclose(curve.spro, [0, 0, 1, 1, 1, 1, 1, 1, 1])
    # AU(1.0): sPRO is 0 up to FPR 1/7 (vertical jump there), then 1 -> area 6/7.
    # AU(0.3): area (0.3 - 1/7) * 1, divided by 0.3. AU(0.05), AU(0.1): 0 (below the jump).
    result = compute_au_spro([anomalous, good], chans)
    assert result[1.0] == pytest.approx(6 / 7)
    assert result[0.3] == pytest.approx((0.3 - 1 / 7) / 0.3)
    assert result[0.05] == 0.0
    assert result[0.1] == 0.0
    # Without the good image: the defect is ranked first, so everything is 1.
    assert compute_au_spro([anomalous], chans[:1])[0.05] == pytest.approx(1.0)


def test_integration_limits_interpolate_at_the_limit() -> None:
    curve = SproCurve(fpr=np.array([0.0, 0.02, 0.1, 1.0]), spro=np.array([0.0, 0.4, 0.8, 1.0]))
    # 0.01: y(0.01) = 0.2 (between (0,0) and (0.02,0.4)); area 0.5*0.2*0.01 = 0.001 -> /0.01 = 0.1
    assert au_spro(curve, 0.01) == pytest.approx(0.1)
    # 0.05: area to 0.02 = 0.5*0.4*0.02 = 0.004; y(0.05) = 0.4 + 0.4*0.03/0.08 = 0.55;
    #       + 0.5*(0.4+0.55)*0.03 = 0.01425 -> 0.01825 / 0.05 = 0.365
    assert au_spro(curve, 0.05) == pytest.approx(0.365)
    # 0.1 (a curve point, no interpolation): 0.004 + 0.5*(0.4+0.8)*0.08 = 0.052 -> 0.52
    assert au_spro(curve, 0.1) == pytest.approx(0.52)
    # 0.3: y(0.3) = 0.8 + 0.2*0.2/0.9 = 0.84444; 0.052 + 0.5*(0.8+0.84444)*0.2 = 0.216444 -> /0.3 = 0.721481
    assert au_spro(curve, 0.3) == pytest.approx((0.052 + 0.5 * (0.8 + 0.8 + 0.2 * 0.2 / 0.9) * 0.2) / 0.3)
    # 1.0: 0.052 + 0.5*(0.8+1)*0.9 = 0.862
    assert au_spro(curve, 1.0) == pytest.approx(0.862)


def test_perfect_map_gives_one() -> None:
    # Defects score 1, everything else 0: curve (0,0) -> (0,1) -> (1,1), area 1 at every limit.
    shape = (6, 7)
    masks = [_mask(shape, (0, 0), (0, 1), (1, 1)), _mask(shape, (1, 1), (2, 2)), _mask(shape, (5, 6))]
    maps, chans = [], []
    for group in ([masks[0], masks[1]], [masks[2]], []):
        amap = np.zeros(shape, dtype=np.float32)
        for m in group:
            amap[m] = 1.0
        maps.append(amap)
        chans.append([GtChannel(m, 0.5, relative=True) for m in group])
    assert compute_au_spro(maps, chans) == {limit: pytest.approx(1.0) for limit in DEFAULT_LIMITS}


def test_constant_map_gives_diagonal() -> None:
    # One distinct score: curve (0,0) -> (1,1). Area up to L under y = x is L^2/2, divided by L -> AU-sPRO = L/2.
    shape = (5, 5)
    maps = [np.full(shape, 0.3, dtype=np.float32), np.full(shape, 0.3, dtype=np.float32)]
    chans = [[GtChannel(_mask(shape, (1, 1), (1, 2)), 1, relative=False)], []]
    result = compute_au_spro(maps, chans)
    assert result == {limit: pytest.approx(limit / 2) for limit in DEFAULT_LIMITS}


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"max_exact_pixels": 0, "num_quantiles": 2000, "sample_size": 20000}, (48, 64)),
        ({}, (256, 256)),  # 4 * 65536 pixels > default max_exact_pixels: default quantile settings
    ],
)
def test_quantile_path_agrees_with_exact_path(kwargs: dict[str, int], shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    maps, channels = [], []
    for i in range(4):
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        amap = (np.sin(xx / 7.0 + i) * np.cos(yy / 5.0) + rng.normal(0, 0.3, shape)).astype(np.float32)
        chans = []
        if i != 3:
            for k in range(2):
                mask = np.zeros(shape, dtype=bool)
                mask[5 + 4 * k : shape[0] // 2 + 4 * k, 3 + 6 * i : shape[1] // 3 + 6 * i] = True
                amap[mask] += np.float32(0.3)
                chans.append(GtChannel(mask, 0.4 if k else 300, relative=bool(k)))
        maps.append(amap)
        channels.append(chans)
    exact = compute_au_spro(maps, channels, max_exact_pixels=10**9)
    approx = compute_au_spro(maps, channels, **kwargs)
    assert 0.05 < exact[0.05] < 0.95  # a non-trivial case
    for limit in DEFAULT_LIMITS:
        assert approx[limit] == pytest.approx(exact[limit], abs=1e-3)
    curve = spro_curve(maps, channels, **kwargs)
    assert (curve.fpr[0], curve.spro[0], curve.fpr[-1], curve.spro[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert curve.fpr.size < spro_curve(maps, channels, max_exact_pixels=10**9).fpr.size


def test_quantile_path_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    maps, channels = _random_case(rng, n_images=6, shape=(30, 30), levels=None)
    a = compute_au_spro(maps, channels, max_exact_pixels=0, num_quantiles=50, sample_size=500)
    b = compute_au_spro(maps, channels, max_exact_pixels=0, num_quantiles=50, sample_size=500)
    assert a == b


# --------------------------------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------------------------------


def test_shape_mismatch_names_index_and_shapes() -> None:
    maps = [np.zeros((4, 4), np.float32), np.zeros((4, 5), np.float32)]
    chans = [[], [GtChannel(np.ones((5, 4), bool), 1, relative=False)]]
    with pytest.raises(ValueError, match=r"anomaly map 1 has shape \(4, 5\).*channel 0 has shape \(5, 4\)"):
        spro_curve(maps, chans)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores(bad: float) -> None:
    amap = np.zeros((3, 3), np.float32)
    amap[1, 1] = bad
    chans = [[GtChannel(_mask((3, 3), (0, 0)), 1, relative=False)], []]
    with pytest.raises(ValueError, match="anomaly map 1 contains NaN or inf"):
        spro_curve([np.zeros((3, 3), np.float32), amap], chans)


def test_no_channels_in_subset() -> None:
    with pytest.raises(ValueError, match="no ground-truth channels"):
        spro_curve([np.zeros((3, 3)), np.ones((3, 3))], [[], None])


def test_other_input_errors() -> None:
    m = np.zeros((2, 2), np.float32)
    ch = GtChannel(np.ones((2, 2), bool), 1, relative=False)
    with pytest.raises(ValueError, match="got 1 anomaly maps but 2"):
        spro_curve([m], [[ch], []])
    with pytest.raises(ValueError, match="no anomaly maps"):
        spro_curve([], [])
    with pytest.raises(ValueError, match="must be 2-D"):
        spro_curve([np.zeros((2, 2, 1))], [[ch]])
    with pytest.raises(ValueError, match="no defect-free pixels"):
        spro_curve([m], [[ch]])
    with pytest.raises(ValueError, match="relative saturation_threshold must lie in"):
        GtChannel(np.ones((2, 2), bool), 1.5, relative=True)
    with pytest.raises(ValueError, match="absolute saturation_threshold must be >= 0"):
        GtChannel(np.ones((2, 2), bool), -1, relative=False)
    with pytest.raises(ValueError, match="max_fpr must lie in"):
        au_spro(SproCurve(np.array([0.0, 1.0]), np.array([0.0, 1.0])), 0.0)
    with pytest.raises(ValueError, match="start at 0 and end at 1"):
        au_spro(SproCurve(np.array([0.1, 1.0]), np.array([0.0, 1.0])), 0.5)
