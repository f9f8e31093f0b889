"""Seeded random projection + MeanShift clustering of component features (docs/method.md 2.5)."""

from __future__ import annotations

import numpy as np
import pytest

from csad.pseudo.cluster import ClusterResult, alpha_min_members, cluster_components, random_projection


def blobs(
    sizes: tuple[int, ...], dim: int, spread: float, scale: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (features, blob id) of well-separated Gaussian blobs with the given member counts."""
    rng = np.random.default_rng(seed)
    centres = np.eye(len(sizes), dim) * scale
    ids = np.repeat(np.arange(len(sizes)), sizes)
    return centres[ids] + rng.normal(0.0, spread, size=(ids.size, dim)), ids


def test_random_projection_is_seeded_gaussian_without_bias() -> None:
    x = np.random.default_rng(1).normal(size=(5, 40))
    a, b = random_projection(x, 16, seed=3), random_projection(x, 16, seed=3)
    assert a.shape == (5, 16) and np.array_equal(a, b)
    assert not np.allclose(a, random_projection(x, 16, seed=4))
    weight = random_projection(np.eye(400), 100, seed=0)  # the identity reads W back
    assert abs(weight.std() - 0.01) < 0.0005 and abs(weight.mean()) < 0.0005
    assert not random_projection(np.zeros((3, 40)), 16, seed=0).any()  # no bias


def test_random_projection_with_out_dim_zero_is_identity() -> None:
    x = np.arange(6.0).reshape(2, 3)
    assert random_projection(x, 0, seed=0) is x
    assert random_projection(x, -1, seed=0) is x


def test_three_blobs_small_cluster_dropped_and_renumbered_by_size() -> None:
    x, ids = blobs((12, 20, 4), dim=16, spread=0.1, scale=10.0)
    result = cluster_components(x, bandwidth=2.0, min_members=5, proj_dim=0, seed=0)
    assert isinstance(result, ClusterResult)
    assert result.n_clusters == 2
    assert result.sizes.tolist() == [20, 12] and result.dropped_sizes.tolist() == [4]
    assert np.all(result.labels[ids == 1] == 0)  # the largest blob is cluster 0
    assert np.all(result.labels[ids == 0] == 1)
    assert np.all(result.labels[ids == 2] == -1)


def test_min_members_boundary_is_inclusive() -> None:
    x, _ = blobs((12, 20, 4), dim=16, spread=0.1, scale=10.0)
    assert cluster_components(x, 2.0, min_members=4, proj_dim=0, seed=0).n_clusters == 3
    assert cluster_components(x, 2.0, min_members=13, proj_dim=0, seed=0).sizes.tolist() == [20]


def test_clustering_after_projection_is_deterministic() -> None:
    x, ids = blobs((10, 15, 8), dim=64, spread=0.5, scale=100.0)
    first = cluster_components(x, bandwidth=1.0, min_members=1, proj_dim=32, seed=7)
    second = cluster_components(x, bandwidth=1.0, min_members=1, proj_dim=32, seed=7)
    assert np.array_equal(first.labels, second.labels)
    assert first.n_clusters == 3 and first.sizes.tolist() == [15, 10, 8]
    for blob in range(3):  # each blob is exactly one cluster
        assert np.unique(first.labels[ids == blob]).size == 1


def test_empty_single_and_all_dropped_inputs() -> None:
    empty = cluster_components(np.zeros((0, 8)), 1.0, min_members=1, proj_dim=4, seed=0)
    assert empty.labels.shape == (0,) and empty.n_clusters == 0 and empty.sizes.size == 0
    one = cluster_components(np.ones((1, 8)), 1.0, min_members=1, proj_dim=4, seed=0)
    assert one.labels.tolist() == [0] and one.n_clusters == 1 and one.sizes.tolist() == [1]
    x, _ = blobs((3, 3), dim=4, spread=0.01, scale=10.0)
    dropped = cluster_components(x, 1.0, min_members=4, proj_dim=0, seed=0)
    assert dropped.n_clusters == 0 and np.all(dropped.labels == -1)
    assert dropped.sizes.size == 0 and dropped.dropped_sizes.tolist() == [3, 3]


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        cluster_components(np.ones((3, 2)), 0.0, min_members=1, proj_dim=0, seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        cluster_components(np.array([[np.nan, 0.0]]), 1.0, min_members=1, proj_dim=0, seed=0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        cluster_components(np.ones(3), 1.0, min_members=1, proj_dim=0, seed=0)


def test_alpha_min_members() -> None:
    assert alpha_min_members(351, 0.5) == 175
    assert alpha_min_members(10, 0.5) == 5
    assert alpha_min_members(1, 0.5) == 1
    assert alpha_min_members(0, 0.5) == 1
    with pytest.raises(ValueError):
        alpha_min_members(10, -0.1)


def test_auto_bandwidth_follows_the_spread_of_the_features() -> None:
    from csad.pseudo.cluster import auto_bandwidth, cluster_components

    rng = np.random.default_rng(0)
    tight = np.concatenate([rng.normal(0, 0.05, (40, 3)), rng.normal(3, 0.05, (40, 3))])
    wide = tight * 10
    b_tight, b_wide = auto_bandwidth(tight, 0.4), auto_bandwidth(wide, 0.4)
    assert b_wide == pytest.approx(10 * b_tight, rel=1e-6)  # the rule scales with the data
    for x, bw in ((tight, b_tight), (wide, b_wide)):
        assert cluster_components(x, bw, min_members=5, proj_dim=0, seed=0).n_clusters == 2
    assert auto_bandwidth(tight, 0.4) == b_tight  # deterministic
    assert auto_bandwidth(tight[:1], 0.1) == 1.0  # one component: nothing to estimate from


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_auto_bandwidth_rejects_a_bad_quantile(bad: float) -> None:
    from csad.pseudo.cluster import auto_bandwidth

    with pytest.raises(ValueError, match="bandwidth_quantile"):
        auto_bandwidth(np.zeros((4, 2)), bad)


def test_auto_bandwidth_never_measures_a_component_against_itself() -> None:
    from csad.pseudo.cluster import auto_bandwidth

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (50, 3))
    # quantile x N < 2: scikit-learn's nearest "neighbour" is the component itself (distance 0); at least the
    # nearest other component is used instead of falling back to an arbitrary constant.
    assert 0 < auto_bandwidth(x, 0.01) <= auto_bandwidth(x, 0.3)
    assert auto_bandwidth(x[:2], 0.1) == pytest.approx(float(np.linalg.norm(x[0] - x[1])))
    # Every component repeated 10 times: the estimate on the raw rows is 0, so the distinct ones give the scale.
    blobs = np.repeat(np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]]), 10, axis=0)
    assert auto_bandwidth(blobs, 0.1) == pytest.approx(0.1)
    assert auto_bandwidth(np.ones((20, 4)), 0.3, proj_dim=8, seed=1) == 1.0  # all identical: any bandwidth
