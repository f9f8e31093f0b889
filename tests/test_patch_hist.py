"""Patch Histogram scoring (docs/method.md 4): histograms, Mahalanobis, trimmed normalisation, the scorer's state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from csad.scoring.patch_hist import (
    PatchHistogramScorer,
    TrimmedNormalizer,
    class_histograms,
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
