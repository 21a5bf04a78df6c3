"""Meta neurons from learned theta (paper §3.3, Fig. 2-4): cluster the points, build and filter the candidates.

:func:`generate` clusters (a, b) and (c, d) separately (:func:`~mdn_snntorch.discovery.clustering.cluster_pair`),
makes every centre combination a candidate and runs the filters of :mod:`~mdn_snntorch.discovery.selection`.
Its :class:`Generation` holds the library, the record of every candidate and the clusters, and draws
Fig. 3 and Fig. 4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdn_snntorch import dynamics
from mdn_snntorch.discovery import figures
from mdn_snntorch.discovery.clustering import BANDWIDTH_QUANTILE, PAIRS, SPACES, Clustering, cluster_pair
from mdn_snntorch.discovery.selection import (
    DUPLICATE_DISTANCE,
    MIN_ACCURACY,
    MIN_SUPPORT,
    STEPS,
    Accuracy,
    check_names,
    select_candidates,
)
from mdn_snntorch.discovery.theta import THETA_COLUMNS, ThetaPoints
from mdn_snntorch.meta_neurons import MetaNeuronLibrary

FIGURES = ("clusters", "dynamics")


@dataclass
class Generation:
    """What :func:`generate` made: ``library`` (the kept neurons with provenance; write it with
    :func:`~mdn_snntorch.meta_neurons.save_library`), ``candidates`` (every candidate's record: theta,
    support, accuracy when scored, ``status`` and ``name`` or ``reason``), ``clusters`` (``"ab"``, ``"cd"``),
    the ``points`` clustered and ``characterisations`` (each kept neuron's simulated responses, by name)."""

    library: MetaNeuronLibrary
    candidates: list[dict[str, Any]]
    clusters: dict[str, Clustering]
    points: ThetaPoints
    characterisations: dict[str, dynamics.Characterisation]

    def figure(self, path: str | os.PathLike, kind: str = "clusters", *, curves=None) -> Path:
        """Draw paper Fig. 3 (``kind="clusters"``: the theta scatters with centres; with ``curves``, label ->
        (epoch, accuracy) pairs, a learning-curve panel first) or Fig. 4 (``"dynamics"``: V, U, input and
        attractor of each kept neuron under the sine) as a PNG at ``path``."""
        if kind not in FIGURES:
            raise ValueError(f"figure kind must be one of {', '.join(FIGURES)}, got {kind!r}")
        if kind == "dynamics":
            return figures.dynamics_figure(path, self.characterisations)
        return figures.clusters_figure(path, self.points.theta, self.clusters, curves)


def check_settings(
    *, space: str = "standardised", quantile: float = BANDWIDTH_QUANTILE, min_support: int = MIN_SUPPORT,
    duplicate_distance: float = DUPLICATE_DISTANCE, min_accuracy: float = MIN_ACCURACY, prefix: str = "meta",
    ab_clusters: int | None = None, cd_clusters: int | None = None, steps: int = STEPS,
) -> None:  # fmt: skip
    """``ValueError`` naming the first of :func:`generate`'s settings that is out of range (before any work)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, int) or min_support < 0:
        raise ValueError(f"min_support must be an int >= 0, got {min_support!r}")
    if not 0 <= min_accuracy <= 1:
        raise ValueError(f"min_accuracy must be a fraction in 0..1, got {min_accuracy!r}")
    if not 0 <= duplicate_distance <= 1:
        raise ValueError(f"duplicate_distance must be in 0..1 (a relative distance), got {duplicate_distance!r}")
    for name, count in (("ab_clusters", ab_clusters), ("cd_clusters", cd_clusters)):
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"{name} must be a positive int or None, got {count!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2 * dynamics.RATE_BIN:
        raise ValueError(f"steps must be an int >= {2 * dynamics.RATE_BIN}, got {steps!r}")
    if not isinstance(prefix, str) or not prefix.strip():
        raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")


def _as_points(points: ThetaPoints | np.ndarray) -> ThetaPoints:
    if isinstance(points, ThetaPoints):
        return points
    theta = np.asarray(points, dtype=np.float64)
    return ThetaPoints(theta, np.full(len(theta) if theta.ndim else 0, ""), np.arange(len(theta) if theta.ndim else 0))


def generate(
    points: ThetaPoints | np.ndarray,
    *,
    space: str = "standardised",
    quantile: float = BANDWIDTH_QUANTILE,
    min_support: int = MIN_SUPPORT,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    accuracy: Accuracy | None = None,
    min_accuracy: float = MIN_ACCURACY,
    prefix: str = "meta",
    seed: int = 0,
    ab_clusters: int | None = None,
    cd_clusters: int | None = None,
    steps: int = STEPS,
) -> Generation:
    """Meta neurons from learned theta: the paper's clustering and candidate filters.

    ``points``: :func:`~mdn_snntorch.discovery.collect_theta`'s output (or an ``[N, 4]`` array).
    ``space``/``quantile``: the clustering space and MeanShift's bandwidth quantile; ``ab_clusters`` /
    ``cd_clusters`` force the number of centres of a pair. ``min_support``, ``duplicate_distance``,
    ``steps``: the filters of :mod:`~mdn_snntorch.discovery.selection`. ``accuracy(neuron) -> float``: the
    paper's accuracy criterion, a fraction in [0, 1] that should come from held-out training data (a
    validation split), never the test split; called once per candidate that passes the dynamics filters,
    and those below ``min_accuracy`` x the best are dropped (None: no accuracy criterion). Kept neurons are
    named ``<prefix>-1``, ``<prefix>-2``, ... ``seed``: of the bandwidth estimate and KMeans."""
    counts = {"ab": ab_clusters, "cd": cd_clusters}
    check_settings(
        space=space, quantile=quantile, min_support=min_support, duplicate_distance=duplicate_distance,
        min_accuracy=min_accuracy, prefix=prefix, ab_clusters=ab_clusters, cd_clusters=cd_clusters, steps=steps,
    )  # fmt: skip
    points = _as_points(points)
    clusters = {
        pair: cluster_pair(points.theta[:, list(cols)], quantile, seed, space=space, n_clusters=counts[pair])
        for pair, cols in PAIRS.items()
    }
    kept, candidates, chars = select_candidates(
        clusters["ab"], clusters["cd"], prefix, duplicate_distance, steps,
        min_support=min_support, accuracy=accuracy, min_accuracy=min_accuracy,
    )  # fmt: skip
    check_names(kept)
    selection = {"min_support": min_support, "accuracy": accuracy is not None, "min_accuracy": min_accuracy,
                 "duplicate_distance": duplicate_distance}  # fmt: skip
    provenance = {
        "neurons_clustered": len(points),
        "layers": points.layers,
        "theta_mean": dict(zip(THETA_COLUMNS, points.theta.mean(axis=0).tolist())),
        "clustering": {pair: _clustering_record(c, space, quantile, counts[pair]) for pair, c in clusters.items()},
        "selection": {
            "stimulus": f"sine, std {dynamics.SINE_STD}, period {dynamics.SINE_PERIOD}, {steps} steps; "
            f"constant currents sigmoid({dynamics.CONSTANT_DRIVES.min():g}..{dynamics.CONSTANT_DRIVES.max():g})",
            **selection,
            "candidates": candidates,
        },
    }
    return Generation(MetaNeuronLibrary(kept, provenance), candidates, clusters, points, chars)


def _clustering_record(c: Clustering, space: str, quantile: float, forced: int | None) -> dict[str, Any]:
    method = (
        f"{space} theta, MeanShift(estimate_bandwidth(quantile)) -> M, KMeans(M)"
        if forced is None
        else f"{space} theta, KMeans(M = {forced}, forced)"
    )
    return {"method": method, "space": space, "quantile": quantile, "bandwidth": c.bandwidth,
            "num_centres": len(c.centres), "centres": c.centres.tolist(), "sizes": c.sizes}  # fmt: skip
