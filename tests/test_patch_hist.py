"""Patch Histogram scoring (docs/method.md 4): histograms, Mahalanobis, trimmed normalisation, the scorer's state."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from csad.scoring.patch_hist import (
    COUNT_VARIANCE_FLOOR,
    TRACED_CC_ROUNDS,
    PatchHistogramScorer,
    TrimmedNormalizer,
    class_histograms,
    component_areas,
    component_areas_torch,
    component_counts,
    component_counts_torch,
    count_min_areas,
    fit_count_mahalanobis,
    fit_mahalanobis,
    mahalanobis,
)


def reference_histograms(label_map: np.ndarray, num_classes: int, patch: int) -> np.ndarray:
    """Return the released-style patch histogram of one map: EMPatches order (x outer, y inner), bg entry 0."""
    h, w = label_map.shape
    out = []
    for x in range(0, w, patch):
        for y in range(0, h, patch):
            cell = label_map[y : y + patch, x : x + patch]
            hist = np.bincount(cell.ravel(), minlength=num_classes) / cell.size
            hist[0] = 0.0
            out.append(hist)
    return np.concatenate(out)


def test_hand_made_map_and_column_major_order() -> None:
    label_map = np.zeros((4, 4), np.int64)
    label_map[:2, :2] = 1  # TL
    label_map[2:, :2] = 2  # BL
    label_map[:2, 2:] = 3  # TR
    label_map[3, 3] = 1  # one pixel of BR; the rest of BR is background
    hists = class_histograms(label_map[None], 4)
    np.testing.assert_allclose(hists[(1, 1)], [[0.0, 5 / 16, 4 / 16, 4 / 16]])
    expected = [*[0, 1, 0, 0], *[0, 0, 1, 0], *[0, 0, 0, 1], *[0, 0.25, 0, 0]]  # TL, BL, TR, BR
    np.testing.assert_allclose(hists[(2, 2)], [expected])
    assert hists[(2, 2)].shape == (1, 16)


def test_vectorised_equals_per_image_loop_and_reference() -> None:
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 5, size=(6, 16, 16))
    batch = class_histograms(maps, 5, grids=((1, 1), (2, 2), (4, 4)))
    for i in range(len(maps)):
        single = class_histograms(maps[i], 5, grids=((1, 1), (2, 2), (4, 4)))
        for grid, patch in (((1, 1), 16), ((2, 2), 8), ((4, 4), 4)):
            np.testing.assert_allclose(batch[grid][i], single[grid][0])
            np.testing.assert_allclose(batch[grid][i], reference_histograms(maps[i], 5, patch))


def test_tensor_input_and_non_square_grid() -> None:
    rng = np.random.default_rng(1)
    maps = rng.integers(0, 3, size=(2, 6, 9))
    from_tensor = class_histograms(torch.from_numpy(maps).to(torch.uint8), 3, grids=((1, 3), (3, 2)))
    from_numpy = class_histograms(maps, 3, grids=((1, 3), (3, 2)))
    for grid in ((1, 3), (3, 2)):
        np.testing.assert_array_equal(from_tensor[grid], from_numpy[grid])
    # (3 rows, 2 cols) on 6 x 9: rows of 2 px, cols of 5 and 4 px (np.array_split), column-major
    first = maps[0, 0:2, 0:5]
    np.testing.assert_allclose(from_numpy[(3, 2)][0, 1:3], [(first == 1).mean(), (first == 2).mean()])
    second = maps[0, 2:4, 0:5]  # the cell below the first one comes next
    np.testing.assert_allclose(from_numpy[(3, 2)][0, 4:6], [(second == 1).mean(), (second == 2).mean()])


def test_out_of_range_labels_raise() -> None:
    with pytest.raises(ValueError, match="label values"):
        class_histograms(np.full((1, 4, 4), 3), 3)


def test_mahalanobis_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5))
    mean, inv = fit_mahalanobis(train)
    np.testing.assert_allclose(mean, train.mean(axis=0))
    np.testing.assert_allclose(inv, np.linalg.pinv(np.cov(train.T)))
    test = rng.normal(size=(7, 5))
    expected = [scipy_mahalanobis(row, mean, inv) for row in test]
    np.testing.assert_allclose(mahalanobis(test, mean, inv), expected, rtol=1e-10)


def test_mahalanobis_singular_covariance_uses_pinv() -> None:
    rng = np.random.default_rng(3)
    train = np.zeros((20, 3))
    train[:, 1:] = rng.normal(size=(20, 2))  # column 0 constant (like the background entry)
    mean, inv = fit_mahalanobis(train)
    assert np.all(inv[0] == 0) or np.allclose(inv[0], 0)
    d = mahalanobis(train[:3], mean, inv)
    assert np.all(np.isfinite(d))


def test_mahalanobis_nan_falls_back_to_euclidean() -> None:
    mean = np.zeros(2)
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(mahalanobis(x, mean, -np.eye(2)), [5.0, 1.0])  # negative form -> sqrt NaN
    one_mean, one_inv = fit_mahalanobis(np.array([[1.0, 1.0]]))  # one sample: covariance undefined
    np.testing.assert_allclose(mahalanobis(x, one_mean, one_inv), np.linalg.norm(x - 1.0, axis=1))


def test_trimmed_normalizer_matches_numpy_reference() -> None:
    rng = np.random.default_rng(4)
    val = rng.gamma(2.0, size=23)
    q20, q80 = np.quantile(val, [0.2, 0.8])
    kept = val[(val > q20) & (val < q80)]
    norm = TrimmedNormalizer().fit(val)
    assert norm.mean == pytest.approx(kept.mean()) and norm.std == pytest.approx(kept.std(ddof=0))
    scores = np.array([0.0, 1.0, 10.0])
    np.testing.assert_allclose(norm.transform(scores), (scores - kept.mean()) / kept.std())


def test_trimmed_normalizer_zero_std_only_shifts() -> None:
    norm = TrimmedNormalizer().fit(np.array([1.0, 2.0, 2.0, 2.0, 2.0, 3.0]))  # nothing strictly inside (2, 2)
    assert norm.std == 0.0 and norm.mean == 2.0
    np.testing.assert_allclose(norm.transform(np.array([5.0])), [3.0])
    two = TrimmedNormalizer().fit(np.array([1.0, 3.0]))  # nothing inside [1.4, 2.6]: all scores
    assert two.mean == 2.0 and two.std == 1.0


def random_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return (n, 16, 16) maps: background with a class-1 block of random size and a few class-2 pixels."""
    maps = np.zeros((n, 16, 16), np.int64)
    for i in range(n):
        s = int(rng.integers(4, 9))
        y, x = rng.integers(0, 16 - s, size=2)
        maps[i, y : y + s, x : x + s] = 1
        maps[i, rng.integers(0, 16, 3), rng.integers(0, 16, 3)] = 2
    return maps


def test_scorer_fit_score_and_state_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    train, val, test = random_maps(rng, 30), random_maps(rng, 12), random_maps(rng, 5)
    scorer = PatchHistogramScorer(3).fit(train, val)
    scores = scorer.score(test)
    # score = sum over grids of the trimmed-normalised Mahalanobis distances
    hist_train, hist_val, hist_test = (class_histograms(m, 3) for m in (train, val, test))
    expected = np.zeros(len(test))
    for grid in ((1, 1), (2, 2)):
        mean, inv = fit_mahalanobis(hist_train[grid])
        norm = TrimmedNormalizer().fit(mahalanobis(hist_val[grid], mean, inv))
        expected += norm.transform(mahalanobis(hist_test[grid], mean, inv))
    np.testing.assert_allclose(scores, expected)
    np.savez(tmp_path / "ph.npz", **scorer.state())
    with np.load(tmp_path / "ph.npz") as state:
        loaded = PatchHistogramScorer.from_state(dict(state))
    np.testing.assert_array_equal(loaded.score(test), scores)
    assert loaded.grids == ((1, 1), (2, 2)) and loaded.num_classes == 3
    # an anomalous map (class 1 missing, class 2 everywhere) scores higher than normal ones
    odd = np.full((1, 16, 16), 2)
    assert scorer.score(odd)[0] > scores.max()


def test_unfitted_scorer_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        PatchHistogramScorer(3).score(np.zeros((1, 4, 4), np.int64))


# ---- component counts ----------------------------------------------------------------------------------------------
def opencv_areas(label_map: np.ndarray, k: int) -> list[int]:
    """Return the sorted areas of the 8-connected components of class k (OpenCV, the reference)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats((label_map == k).astype(np.uint8), connectivity=8)
    return sorted(int(a) for a in stats[1:, cv2.CC_STAT_AREA])


def torch_areas(areas: np.ndarray, label_map: np.ndarray, k: int) -> list[int]:
    return sorted(int(a) for a in areas[(areas > 0) & (label_map.ravel() == k)])


def serpentine(size: int) -> np.ndarray:
    """Return a (size, size) map holding one class-1 path of width 1 that fills every second row (the longest
    geodesic a map of that size holds)."""
    m = np.zeros((size, size), np.int64)
    m[::2] = 1
    for r in range(1, size, 2):
        m[r, size - 1 if (r // 2) % 2 == 0 else 0] = 1
    return m


def spiral(size: int) -> np.ndarray:
    """Return a (size, size) map holding one class-1 spiral of width 1."""
    m = np.zeros((size, size), np.int64)
    y0, x0, y1, x1 = 0, 0, size - 1, size - 1
    while y0 + 2 <= y1 and x0 + 2 <= x1:
        m[y0, x0 : x1 + 1] = 1
        m[y0 : y1 + 1, x1] = 1
        m[y1, x0 : x1 + 1] = 1
        m[y0 + 2 : y1 + 1, x0] = 1
        m[y0 + 2, x0 : x0 + 3] = 1
        y0, x0, y1, x1 = y0 + 2, x0 + 2, y1 - 2, x1 - 2
    return m


def maze(size: int, seed: int) -> np.ndarray:
    """Return a (size, size) map holding one class-1 maze of corridors of width 1: a random depth-first spanning
    tree of the (size / 2)^2 cells (long, branching paths)."""
    rng = np.random.default_rng(seed)
    cells = size // 2
    m = np.zeros((size, size), np.int64)
    seen = np.zeros((cells, cells), bool)
    stack, seen[0, 0], m[0, 0] = [(0, 0)], True, 1
    while stack:
        y, x = stack[-1]
        free = [
            (y + dy, x + dx)
            for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))
            if 0 <= y + dy < cells and 0 <= x + dx < cells and not seen[y + dy, x + dx]
        ]
        if not free:
            stack.pop()
            continue
        ny, nx = free[rng.integers(len(free))]
        seen[ny, nx], m[2 * ny, 2 * nx], m[y + ny, x + nx] = True, 1, 1
        stack.append((ny, nx))
    return m


@pytest.mark.parametrize("shape", [(5, 5), (7, 12), (16, 16)])
def test_component_areas_equal_opencv_8_connectivity(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    maps = rng.integers(0, 3, (40, *shape))
    eager = component_areas_torch(torch.from_numpy(maps)).numpy()
    fixed = component_areas_torch(torch.from_numpy(maps), rounds=TRACED_CC_ROUNDS).numpy()
    np.testing.assert_array_equal(eager, fixed)
    for m, a in zip(maps, eager, strict=True):
        for k in (1, 2):
            assert torch_areas(a, m, k) == opencv_areas(m, k)
        assert a[m.ravel() == 0].sum() == 0  # background forms no component


@pytest.mark.parametrize(
    "make",
    [
        serpentine,
        spiral,
        lambda size: serpentine(size).T[::-1].copy(),
        lambda size: spiral(size)[::-1, ::-1].copy(),
        lambda size: maze(size, 0),
        lambda size: maze(size, 1),
    ],
    ids=["serpentine", "spiral", "serpentine-turned", "spiral-reversed", "maze-0", "maze-1"],
)
def test_component_labelling_converges_within_the_traced_rounds_on_the_longest_paths(make) -> None:
    m = make(256)
    assert opencv_areas(m, 1) == [int(m.sum())]
    # converged with a margin: half the traced rounds already give the one component
    areas = component_areas_torch(torch.from_numpy(m[None]), rounds=TRACED_CC_ROUNDS // 2 + 2).numpy()[0]
    assert torch_areas(areas, m, 1) == [int(m.sum())]


def test_component_counts_per_class_with_smallest_counted_areas() -> None:
    m = np.zeros((1, 12, 12), np.int64)
    m[0, 0:3, 0:3] = 1  # 9 px
    m[0, 5, 5] = 1  # a 1-px speck of class 1
    m[0, 8:10, 8:12] = 2  # 8 px
    m[0, 0:2, 8:10] = 2  # 4 px, diagonal to nothing
    m[0, 2, 10] = 2  # touches the block above diagonally: one component of 5 px
    floor = torch.tensor([0.0, 2.0, 6.0], dtype=torch.float64)
    counts = component_counts_torch(torch.from_numpy(m), 3, floor)
    assert counts.dtype == torch.float64 and counts.tolist() == [[0.0, 1.0, 1.0]]
    np.testing.assert_array_equal(component_counts(m, 3, np.zeros(3)), [[0.0, 2.0, 2.0]])
    areas = component_areas(m, 3)
    assert areas[0].size == 0 and areas[1].tolist() == [1.0, 9.0] and areas[2].tolist() == [5.0, 8.0]
    with pytest.raises(ValueError, match="label values"):
        component_counts(np.full((1, 2, 2), 3), 3, np.zeros(3))


def test_count_min_areas_follow_each_class_typical_part() -> None:
    # class 1: parts of 100 px and specks; class 2: none in the train maps
    areas = [np.zeros(0), np.array([1.0, 2.0, 100.0, 100.0, 110.0]), np.zeros(0)]
    np.testing.assert_allclose(count_min_areas(areas, 0.1), [4.0, 10.0, 4.0])
    np.testing.assert_allclose(count_min_areas(areas, 0.0), [4.0, 4.0, 4.0])  # never under 4 px


def test_count_mahalanobis_keeps_constant_counts() -> None:
    counts = np.tile([0.0, 15.0, 2.0], (20, 1))
    counts[::2, 2] = 3.0  # class 2 varies, class 1 is always 15
    mean, inv = fit_count_mahalanobis(counts)
    assert np.all(np.isfinite(inv))
    # one part more of the constant class: sqrt(12) standard deviations (the rounding variance 1/12)
    assert mahalanobis(np.array([[0.0, 16.0, 2.5]]), mean, inv)[0] == pytest.approx(np.sqrt(1 / COUNT_VARIANCE_FLOOR))


def blob_maps(rng: np.random.Generator, n: int, blobs: int) -> np.ndarray:
    """Return (n, 32, 32) maps with ``blobs`` class-1 squares of 2-4 px side on a 4 x 4 grid of slots, so their
    total area varies a lot from map to map, plus one class-2 bar."""
    maps = np.zeros((n, 32, 32), np.int64)
    for i in range(n):
        for slot in rng.permutation(16)[:blobs]:
            s = int(rng.integers(2, 5))
            y, x = 8 * (slot // 4) + 1, 8 * (slot % 4) + 1
            maps[i, y : y + s, x : x + s] = 1
        maps[i, 30, 4:28] = 2
    return maps


def test_scorer_count_term_finds_a_missing_part_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, val = blob_maps(rng, 40, 8), blob_maps(rng, 12, 8)
    missing = blob_maps(rng, 6, 7)
    plain = PatchHistogramScorer(3).fit(train, val)
    counting = PatchHistogramScorer(3, count_min_fraction=0.1).fit(train, val)
    assert counting.counts and not plain.counts
    # the counts alone separate every map with a part missing from every normal one
    assert counting.count_distances(missing).min() > counting.count_distances(val).max()
    assert (
        counting.score(missing).mean() - counting.score(val).mean()
        > plain.score(missing).mean() - plain.score(val).mean()
    )
    np.savez(tmp_path / "ph.npz", **counting.state())
    with np.load(tmp_path / "ph.npz") as state:
        loaded = PatchHistogramScorer.from_state(dict(state))
    assert loaded.counts
    np.testing.assert_array_equal(loaded.score(missing), counting.score(missing))
    # a state written before the count term existed has none
    old = {k: v for k, v in plain.state().items() if not k.startswith("count_")}
    assert not PatchHistogramScorer.from_state(old).counts
    np.testing.assert_array_equal(PatchHistogramScorer.from_state(old).score(missing), plain.score(missing))


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_scorer_rejects_a_bad_count_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"segment\.patch_hist\.count_min_fraction must be in \[0, 1\]"):
        PatchHistogramScorer(3, count_min_fraction=fraction)
