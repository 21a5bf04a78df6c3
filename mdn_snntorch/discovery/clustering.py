r"""Clustering one theta pair, ``(a, b)`` or ``(c, d)``: MeanShift for the number of centres, KMeans for the centres.

In the ``"standardised"`` space each column is z-scored over all points first (a column that does not vary
is left unscaled), because theta_a lives on a scale ten times smaller than theta_b and raw distances would
ignore it; ``"raw"`` clusters theta as it is. ``MeanShift(bandwidth=estimate_bandwidth(z, quantile))`` gives
the number of centres M, ``KMeans(n_clusters=M)`` the centres, mapped back to theta units and numbered by
cluster size (docs/model.md#meta-neuron-generation). scikit-learn is imported on first use (the
``pipeline`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdn_snntorch.extras import require

BANDWIDTH_QUANTILE = 0.3
#: points handed to estimate_bandwidth at most (a random subset; its cost grows with the square)
BANDWIDTH_SAMPLES = 10_000
#: the two pairs clustered separately, as the paper does: name -> theta columns
PAIRS = {"ab": (0, 1), "cd": (2, 3)}
SPACES = ("standardised", "raw")
#: the centres behind the paper's meta neurons (the candidates the authors published: (a, b) x (c, d) of each kind)
PAPER_CENTRES = {
    "spatial": {"ab": [(0.060, 0.219)], "cd": [(-0.065, 0.003), (-0.010, 0.050), (-0.135, -0.051)]},
    "temporal": {"ab": [(-0.009, 0.246), (0.005, 0.158), (0.007, 0.205)], "cd": [(-0.058, 0.065), (0.064, 0.091)]},
}


@dataclass
class Clustering:
    """MeanShift + KMeans on one theta pair: ``labels`` per point, ``centres`` [M, 2] in theta units,
    the MeanShift ``bandwidth`` (in the clustering space) and the per-column ``scale`` of that space."""

    labels: np.ndarray
    centres: np.ndarray
    bandwidth: float
    scale: np.ndarray

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.centres)).tolist()


def cluster_pair(
    points: np.ndarray,
    quantile: float = BANDWIDTH_QUANTILE,
    seed: int = 0,
    *,
    space: str = "standardised",
    n_clusters: int | None = None,
) -> Clustering:
    """Number of centres from MeanShift (estimated bandwidth), centres from KMeans with that number.

    ``points``: ``[N, 2]``. ``space``: ``"standardised"`` (z-score per column) or ``"raw"`` (theta units as
    they are). ``n_clusters`` forces the number of centres (MeanShift is then skipped)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1):
        raise ValueError(f"n_clusters must be a positive int or None, got {n_clusters!r}")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"cluster_pair needs points of shape [N >= 1, 2], got {points.shape}")
    cluster = require("sklearn.cluster")
    mean, std = points.mean(axis=0), points.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    if space == "raw":
        mean, scale = np.zeros_like(mean), np.ones_like(scale)
    z = (points - mean) / scale
    if len(z) > 1:
        samples = min(len(z), BANDWIDTH_SAMPLES)
        bandwidth = float(cluster.estimate_bandwidth(z, quantile=quantile, n_samples=samples, random_state=seed))
    else:
        bandwidth = 0.0
    if n_clusters is not None:
        m = min(n_clusters, len(np.unique(z, axis=0)))
    elif bandwidth > 0:
        m = len(cluster.MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(z).cluster_centers_)
    else:  # all points equal: one centre
        m = 1
    kmeans = cluster.KMeans(n_clusters=m, n_init=10, random_state=seed).fit(z)
    order = np.argsort(-np.bincount(kmeans.labels_, minlength=m), kind="stable")  # biggest cluster first
    relabel = np.empty(m, dtype=int)
    relabel[order] = np.arange(m)
    centres = kmeans.cluster_centers_[order] * scale + mean
    return Clustering(relabel[kmeans.labels_], centres, bandwidth, scale)
