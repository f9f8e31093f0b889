"""Seeded random projection + MeanShift clustering of component features (docs/method.md 2.5)."""

from __future__ import annotations

import numpy as np
import pytest

from csad.pseudo.cluster import (
    ClusterResult,
    alpha_min_members,
    cluster_components,
    merge_steady_clusters,
    random_projection,
)
from csad.pseudo.cluster_config import ClusterConfig


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


def _looks_of_one_part(n_images: int = 40, seed: int = 0) -> tuple[ClusterResult, np.ndarray, np.ndarray]:
    """Return a clustering (numbered by size, as :func:`cluster_components` gives it) of 4 clusters over
    ``n_images`` images, with the (image, area) of every component: clusters 0 and 1 are two looks of one part (10
    pieces per image, each in one of the two at random), 2 is a steady second part, 3 a part in a third of the
    images."""
    rng = np.random.default_rng(seed)
    labels, image, area = [], [], []
    for i in range(n_images):
        for _ in range(10):  # the part with two looks: area 1 each, in cluster 0 or 2
            labels.append(0 if rng.random() < 0.6 else 1)
            image.append(i)
            area.append(1.0)
        labels.append(2)  # a steady part, area 5 +- noise
        image.append(i)
        area.append(5.0 + rng.normal(0, 0.5))
        if i % 3 == 0:  # a rare part
            labels.append(3)
            image.append(i)
            area.append(2.0)
    labels_a = np.array(labels)
    sizes = np.bincount(labels_a)
    return ClusterResult(labels_a, 4, sizes, np.array([2, 1])), np.array(image), np.array(area)


def test_steady_merge_joins_two_looks_of_one_part_and_keeps_the_rest() -> None:
    clustering, image, area = _looks_of_one_part()
    result, merges = merge_steady_clusters(clustering, image, area, 40, max_std_ratio=0.8, min_copresence=0.75)
    assert [(m.into, m.merged) for m in merges] == [(0, 1)]
    assert merges[0].std_ratio == 0.0 and merges[0].copresence == 1.0  # 10 pieces every image: the sum is constant
    # renumbered by size: the merged part (400 members) first, then the steady part, then the rare one
    assert result.n_clusters == 3 and result.sizes.tolist() == [400, 40, 14]
    assert np.array_equal(result.labels, np.array([0, 0, 1, 2])[clustering.labels])
    assert result.dropped_sizes.tolist() == [2, 1]


def test_steady_merge_is_off_at_ratio_zero_and_respects_copresence() -> None:
    clustering, image, area = _looks_of_one_part()
    same, merges = merge_steady_clusters(clustering, image, area, 40, max_std_ratio=0.0, min_copresence=0.75)
    assert merges == [] and np.array_equal(same.labels, clustering.labels)
    assert same.sizes.tolist() == clustering.sizes.tolist()
    # two looks that never meet in one image (variants of a product): not merged, however steady their sum
    variants = ClusterResult(np.array([0, 1, 0, 1]), 2, np.array([2, 2]), np.zeros(0, dtype=np.int64))
    kept, merges = merge_steady_clusters(
        variants, np.array([0, 1, 2, 3]), np.ones(4), 4, max_std_ratio=0.8, min_copresence=0.75
    )
    assert merges == [] and kept.n_clusters == 2
    # the same pair merges once co-presence is not asked for
    _, merges = merge_steady_clusters(variants, np.array([0, 1, 2, 3]), np.ones(4), 4, 0.8, min_copresence=0.0)
    assert [(m.into, m.merged) for m in merges] == [(0, 1)]


def test_steady_merge_counts_images_without_components_and_keeps_dropped_labels() -> None:
    # cluster 0 and 1 trade off in images 0-1; images 2-3 have neither, so their sum is not steady over 4 images
    clustering = ClusterResult(np.array([0, 1, 1, 0, -1]), 2, np.array([2, 2]), np.array([1]))
    image, area = np.array([0, 0, 1, 1, 1]), np.array([3.0, 1.0, 3.0, 1.0, 7.0])
    _, merges = merge_steady_clusters(clustering, image, area, 2, max_std_ratio=0.8, min_copresence=0.5)
    assert len(merges) == 1
    result, merges = merge_steady_clusters(clustering, image, area, 4, max_std_ratio=0.8, min_copresence=0.5)
    assert merges == [] and result.labels.tolist() == [0, 1, 1, 0, -1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_images": 1}, "image_index"),
        ({"area": np.array([1.0, -1.0, 1.0])}, "areas"),
        ({"area": np.array([1.0, np.nan, 1.0])}, "areas"),
        ({"max_std_ratio": -0.1}, "max_std_ratio"),
        ({"min_copresence": 1.5}, "min_copresence"),
        ({"area": np.ones(2)}, "shapes"),
    ],
)
def test_steady_merge_rejects_bad_inputs(kwargs: dict, match: str) -> None:
    clustering = ClusterResult(np.array([0, 1, 0]), 2, np.array([2, 1]), np.zeros(0, dtype=np.int64))
    args = {"image_index": np.array([0, 1, 1]), "area": np.ones(3), "n_images": 2}
    args.update({"max_std_ratio": 0.8, "min_copresence": 0.5})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        merge_steady_clusters(clustering, **args)


@pytest.mark.parametrize(
    ("field", "value"),
    [("merge_max_std_ratio", -1.0), ("merge_max_std_ratio", float("inf")), ("merge_min_copresence", 2)],
)
def test_cluster_config_rejects_bad_merge_settings(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ClusterConfig(**{field: value})


def test_steady_merge_of_an_empty_or_all_dropped_clustering() -> None:
    empty = ClusterResult(np.zeros(0, dtype=np.int64), 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    result, merges = merge_steady_clusters(empty, np.zeros(0, dtype=np.int64), np.zeros(0), 0, 0.8, 0.75)
    assert result.n_clusters == 0 and result.labels.size == 0 and merges == []
    dropped = ClusterResult(np.array([-1, -1]), 0, np.zeros(0, dtype=np.int64), np.array([2]))
    result, merges = merge_steady_clusters(dropped, np.array([0, 1]), np.ones(2), 2, 0.8, 0.75)
    assert result.labels.tolist() == [-1, -1] and result.n_clusters == 0 and result.dropped_sizes.tolist() == [2]
