"""Class histograms, HDBSCAN filtering of pseudo-label maps, class pruning and remapping (docs/method.md 2.6)."""

from __future__ import annotations

import numpy as np
import pytest

from csad.pseudo.histfilter import HistFilterResult, class_area_histograms, filter_histograms, remap_labels


def test_class_area_histograms_match_a_hand_computed_table() -> None:
    image_index = np.array([0, 0, 0, 1, 2, 2])
    labels = np.array([0, 2, 0, -1, 1, 2])
    areas = np.array([10, 20, 30, 50, 25, 75])
    image_areas = np.array([100, 100, 200])
    hists = class_area_histograms(image_index, labels, areas, image_areas, n_classes=4)
    expected = np.array(
        [
            [0.4, 0.0, 0.2, 0.0],  # (10 + 30) / 100, 20 / 100
            [0.0, 0.0, 0.0, 0.0],  # its only component was dropped (-1)
            [0.0, 0.125, 0.375, 0.0],  # 25 / 200, 75 / 200
        ]
    )
    assert hists.shape == (3, 4)
    np.testing.assert_allclose(hists, expected)


def test_class_area_histograms_edge_cases_and_errors() -> None:
    none = np.zeros(0, dtype=np.int64)
    assert class_area_histograms(none, none, none, np.array([4, 4]), 3).tolist() == [[0.0] * 3] * 2
    with pytest.raises(ValueError, match="labels"):
        class_area_histograms(np.array([0]), np.array([3]), np.array([1]), np.array([4]), 3)
    with pytest.raises(ValueError, match="image_index"):
        class_area_histograms(np.array([2]), np.array([0]), np.array([1]), np.array([4, 4]), 3)
    with pytest.raises(ValueError, match="area"):
        class_area_histograms(np.array([0]), np.array([0]), np.array([1]), np.array([0]), 3)


def two_clusters() -> np.ndarray:
    """Return 16 histograms: cluster A = images 0..9 (largest), cluster B = images 10..15.

    A: class 0 = 0.3 + d, d = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11] / 1000 (mean 4.8 / 1000, so the L-inf-closest five
    are 5, 4, 6, 3, 7); class 2 = 0.0009 (pruned), class 3 = 0.0011 (kept), class 4 only in image 9 (0.012: mean
    0.0012, kept although image 9 is not selected). B: class 1 = 0.5 + e, e = [0, 1, 2, 3, 5, 8] / 1000 (closest
    three: 13, 12, 14), class 2 = 0.05.
    """
    a = np.zeros((10, 5))
    a[:, 0] = 0.3 + np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 11]) / 1000
    a[:, 1], a[:, 2], a[:, 3] = 0.2, 0.0009, 0.0011
    a[9, 4] = 0.012
    b = np.zeros((6, 5))
    b[:, 0], b[:, 2] = 0.1, 0.05
    b[:, 1] = 0.5 + np.array([0, 1, 2, 3, 5, 8]) / 1000
    return np.vstack([a, b])


def test_top_ratio_selects_the_closest_images_of_the_largest_cluster() -> None:
    result = filter_histograms(two_clusters(), min_cluster_fraction=0.25)
    assert isinstance(result, HistFilterResult)
    assert result.min_cluster_size == 4 and result.warnings == []
    assert result.hdbscan_labels.tolist() == [0] * 10 + [1] * 6
    assert result.largest_cluster == 0
    assert np.flatnonzero(result.labeled).tolist() == [3, 4, 5, 6, 7]


def test_all_clusters_mode_is_the_union_of_each_cluster_selection() -> None:
    result = filter_histograms(two_clusters(), min_cluster_fraction=0.25, largest_only=False)
    assert np.flatnonzero(result.labeled).tolist() == [3, 4, 5, 6, 7, 12, 13, 14]


def test_classes_are_pruned_on_the_largest_cluster_members() -> None:
    result = filter_histograms(two_clusters(), min_cluster_fraction=0.25, largest_only=False)
    assert result.kept_classes.tolist() == [0, 1, 3, 4]  # class 2 is big in B only; class 4 in unselected image 9
    assert filter_histograms(two_clusters(), 0.25, min_class_area=0.0005).kept_classes.tolist() == [0, 1, 2, 3, 4]


def test_min_cluster_size_is_decremented_while_all_noise() -> None:
    rng = np.random.default_rng(0)
    hists = np.vstack([0.1 + k + rng.normal(0.0, 0.001, size=(5, 3)) for k in range(3)])
    result = filter_histograms(hists, min_cluster_fraction=0.5)  # starts at 7: three groups of 5 are noise
    assert result.min_cluster_size == 5
    assert len(result.warnings) == 1 and "[7, 6]" in result.warnings[0]
    assert np.all(result.hdbscan_labels >= 0) and np.unique(result.hdbscan_labels).size == 3
    assert result.labeled.sum() == 2  # int(0.5 * 5) of one group of five


def test_all_noise_stops_at_two_and_falls_back_to_one_cluster() -> None:
    hists = np.tile([0.2, 0.3, 0.0], (40, 1))  # identical histograms: HDBSCAN calls everything noise
    result = filter_histograms(hists)  # min_cluster_size 4, 3, 2, then one cluster allowed at 4
    assert result.min_cluster_size == 4
    assert len(result.warnings) == 1 and "[4, 3, 2]" in result.warnings[0]
    assert "one cluster allowed" in result.warnings[0] and "40 of 40 images" in result.warnings[0]
    assert result.hdbscan_labels.tolist() == [0] * 40 and result.largest_cluster == 0
    assert np.flatnonzero(result.labeled).tolist() == list(range(20))  # all tie: the first half by index
    assert result.kept_classes.tolist() == [0, 1]


def test_fewer_than_two_images_are_all_labelled_with_a_warning() -> None:
    one = filter_histograms(np.array([[0.5, 0.0005]]))
    assert one.labeled.tolist() == [True] and one.kept_classes.tolist() == [0] and one.warnings
    none = filter_histograms(np.zeros((0, 3)))
    assert none.labeled.shape == (0,) and none.kept_classes.size == 0 and none.largest_cluster == -1 and none.warnings


def test_no_kept_class_is_a_warning_not_an_error() -> None:
    result = filter_histograms(np.full((6, 2), 0.0001))
    assert result.kept_classes.size == 0 and any("no class kept" in w for w in result.warnings)


def test_bad_histograms_raise_value_error() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        filter_histograms(np.array([[np.nan], [0.0]]))
    with pytest.raises(ValueError, match="top_ratio"):
        filter_histograms(np.zeros((3, 2)), top_ratio=0.0)


def test_remap_labels_keeps_the_kept_classes_in_increasing_raw_order() -> None:
    label_map = np.array([[0, 1, 2, 3], [4, 5, 6, 0]])  # raw class = value - 1
    out = remap_labels(label_map, np.array([4, 1, 3]))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 1, 0], [2, 3, 0, 0]]
    assert not remap_labels(label_map, np.zeros(0, dtype=np.int64)).any()
    assert remap_labels(np.zeros((2, 2), np.uint8), np.array([7])).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="255"):
        remap_labels(label_map, np.arange(256))


def test_prune_over_keeps_classes_absent_from_the_largest_cluster() -> None:
    # 6 images with class 0 only, 3 with class 1 only: the largest HDBSCAN cluster never shows class 1
    hists = np.array([[0.2, 0.0]] * 6 + [[0.0, 0.2]] * 3) + np.linspace(0, 1e-3, 9)[:, None]
    largest = filter_histograms(hists, min_cluster_fraction=0.3, largest_only=False, prune_over="largest")
    every = filter_histograms(hists, min_cluster_fraction=0.3, largest_only=False, prune_over="all")
    assert largest.kept_classes.tolist() == [0]
    assert every.kept_classes.tolist() == [0, 1]
    with pytest.raises(ValueError, match="prune_over"):
        filter_histograms(hists, prune_over="some")


def test_faulty_map_among_identical_ones_is_noise_and_its_spurious_class_is_pruned() -> None:
    # 21 identical class histograms and one faulty map with a spurious 3 % class. Plain HDBSCAN calls all 22 noise
    # (it cannot return the root cluster); the old fallback then put the faulty map in the one cluster and the
    # spurious class survived pruning. With one cluster allowed the faulty map is noise and the class is dropped.
    hists = np.vstack([np.tile([0.5, 0.2, 0.0], (21, 1)), [[0.47, 0.2, 0.03]]])
    result = filter_histograms(hists, min_cluster_fraction=0.1)
    assert result.hdbscan_labels.tolist() == [0] * 21 + [-1]
    assert not result.labeled[21]
    assert result.kept_classes.tolist() == [0, 1]
    assert "one cluster allowed" in result.warnings[0]


def test_equally_distant_maps_form_one_cluster_with_a_warning() -> None:
    hists = np.eye(3)  # three maps, each a different single class: no map is an outlier of the others
    result = filter_histograms(hists, min_cluster_fraction=0.1)
    assert result.hdbscan_labels.tolist() == [0, 0, 0]
    assert "3 of 3 images form it" in result.warnings[0]


def test_label_consistency_reports_the_largest_cluster_share_and_class_presence() -> None:
    from csad.pseudo.histfilter import label_consistency

    # Class 1 is in every image; class 0 (a label) is missing in 4 of 10 images: the fault the metric exposes.
    hists = np.array([[0.2, 0.5, 0.0]] * 6 + [[0.0, 0.5, 0.0]] * 4)
    result = filter_histograms(hists, min_cluster_fraction=0.3, min_class_area=0.01, prune_over="all")
    report = label_consistency(hists, result)
    assert result.kept_classes.tolist() == [0, 1]
    assert report["class_presence"] == {"1": 0.6, "2": 1.0}
    assert report["min_class_presence"] == 0.6
    assert report["largest_cluster_share"] == pytest.approx(np.mean(result.hdbscan_labels == result.largest_cluster))
    assert 0.0 < report["largest_cluster_share"] <= 1.0


def test_label_consistency_without_images_or_classes() -> None:
    from csad.pseudo.histfilter import label_consistency

    empty = filter_histograms(np.zeros((0, 2)))
    assert label_consistency(np.zeros((0, 2)), empty) == {
        "largest_cluster_share": 0.0,
        "class_presence": {},
        "min_class_presence": None,
    }


def test_label_consistency_rejects_histograms_of_another_result() -> None:
    from csad.pseudo.histfilter import label_consistency

    hists = np.random.default_rng(0).random((10, 3))
    result = filter_histograms(hists)
    for bad in (hists[:3], hists[:, 0], np.where(np.eye(10, 3) > 0, np.nan, hists)):
        with pytest.raises(ValueError, match="label_consistency"):
            label_consistency(bad, result)
    noise = HistFilterResult(
        labeled=np.zeros(4, bool),
        hdbscan_labels=np.full(4, -1, np.int64),
        largest_cluster=-1,
        min_cluster_size=2,
        kept_classes=np.array([0, 1]),
    )
    assert label_consistency(hists[:4], noise)["largest_cluster_share"] == 0.0  # no cluster: nobody is in it
