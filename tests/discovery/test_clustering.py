"""Clustering a theta pair: MeanShift counts the centres, KMeans places them, in the standardised or the raw space."""

import numpy as np
import pytest

from mdn_snntorch.discovery import cluster_pair


def test_cluster_pair_counts_blobs_on_unequal_scales():
    """Three blobs separated along a (scale 0.01) and b (scale 0.1): both axes must count."""
    rng = np.random.default_rng(0)
    true = np.array([[0.02, 0.2], [0.05, 0.2], [0.02, 0.5]])
    points = np.concatenate([c + rng.normal(0, [0.002, 0.02], size=(150, 2)) for c in true])
    c = cluster_pair(points)
    assert len(c.centres) == 3 and sorted(c.sizes) == [150, 150, 150]
    for centre in true:
        nearest = c.centres[np.argmin(np.abs((c.centres - centre) / [0.01, 0.1]).sum(axis=1))]
        assert (np.abs(nearest - centre) < [0.002, 0.02]).all(), (nearest, centre)


def test_cluster_pair_of_identical_points_is_one_centre():
    c = cluster_pair(np.tile([[0.02, 0.2]], (20, 1)))
    assert c.centres.tolist() == [[0.02, 0.2]] and c.sizes == [20]


# ---- clustering space and forced counts ------------------------------------------------------------
def blobs_apart_along_a(seed=0, n=1000):
    """Two blobs 0.02 apart in theta_a (std 0.001) and one spread of std 0.1 in theta_b: apart only on the small scale."""
    rng = np.random.default_rng(seed)
    a = np.concatenate([rng.normal(0.0, 0.001, n), rng.normal(0.02, 0.001, n)])
    b = rng.normal(0.2, 0.1, 2 * n)
    return np.stack([a, b], axis=1)


def test_standardised_space_sees_a_separation_the_raw_space_does_not():
    points = blobs_apart_along_a()
    standardised = cluster_pair(points)
    assert len(standardised.centres) == 2 and standardised.sizes == [1000, 1000]
    assert sorted(standardised.centres[:, 0]) == pytest.approx([0.0, 0.02], abs=1e-3)  # centres in theta units
    assert (standardised.labels[:1000] != standardised.labels[1000:].reshape(-1, 1)).all()
    raw = cluster_pair(points, space="raw")
    assert len(raw.centres) == 1 and raw.sizes == [2000]
    assert raw.scale.tolist() == [1.0, 1.0]
    assert raw.centres[0] == pytest.approx(points.mean(axis=0), abs=1e-12)  # the mean in theta units, not z = 0


def test_raw_space_centres_are_in_theta_units():
    rng = np.random.default_rng(1)
    true = np.array([[0.02, 0.2], [0.02, 0.6]])
    points = np.concatenate([c + rng.normal(0, [0.002, 0.02], size=(300, 2)) for c in true])
    c = cluster_pair(points, space="raw")
    assert len(c.centres) == 2 and c.sizes == [300, 300]
    for centre in true:
        assert np.abs(c.centres - centre).sum(axis=1).min() < 0.01


def test_n_clusters_forces_the_number_of_centres():
    points = blobs_apart_along_a(n=300)
    for space in ("standardised", "raw"):
        c = cluster_pair(points, space=space, n_clusters=3)
        assert len(c.centres) == 3 and sum(c.sizes) == 600 and c.sizes == sorted(c.sizes, reverse=True)
        assert set(c.labels.tolist()) == {0, 1, 2}
    # never more centres than distinct points
    assert len(cluster_pair(np.tile([[0.02, 0.2]], (10, 1)), n_clusters=3).centres) == 1


@pytest.mark.parametrize("kwargs", [{"space": "log"}, {"n_clusters": 0}, {"n_clusters": True}, {"n_clusters": 2.0}])
def test_cluster_pair_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        cluster_pair(blobs_apart_along_a(n=20), **kwargs)
