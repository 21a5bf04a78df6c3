r"""Generating meta neurons (paper §3.3, Fig. 2-4): ``mdn discover`` and :func:`discover`.

The choices made where the paper is silent: docs/model.md#meta-neuron-generation.

1. Train the SNN with learnable per-neuron theta on a source data set, once per seed.
2. Collect theta_k = (a, b, c, d) of every hidden and output neuron of every seed.
3. Cluster (a, b) and (c, d) separately. Each pair is standardised per column (z-score over all
   neurons; a column that does not vary is left unscaled), because theta_a lives on a scale ten times
   smaller than theta_b and raw distances would ignore it. ``MeanShift`` with the bandwidth from
   ``estimate_bandwidth(X, quantile=0.3)`` (scikit-learn's default quantile: the mean distance to the
   30 % nearest neighbours) gives the number of centres M; ``KMeans(n_clusters=M)`` gives the centres,
   mapped back to theta units.
4. Every (a, b) centre x (c, d) centre is a candidate; its support is the number of neurons that fall
   in both clusters.
5. Each candidate is simulated on the sine stimulus and constant currents
   (:mod:`mdn_snntorch.dynamics`): degenerate ones (diverging, silent, runaway) are dropped; the rest
   are taken in order of support, and one whose response distance to an already kept neuron is below
   ``duplicate_distance`` (0.1, relative) is dropped as its near-duplicate.

Output: the library JSON (:func:`~mdn_snntorch.meta_neurons.save_library`) with provenance, and beside it
``<name>_fig3.png`` (accuracy curves and theta scatter with centres) and ``<name>_fig4.png`` (each
kept neuron's V, U, input and attractor under the sine). The library path and the runs folder are
claimed (checked and locked) before any training; every generated name is checked with
:func:`mdn_snntorch.neurons.factory.lookup` against the presets before the library is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdn_snntorch import dynamics
from mdn_snntorch.meta_neurons import MetaNeuron, MetaNeuronLibrary, save_library
from mdn_snntorch.neurons import factory
from mdn_snntorch.pipeline.trainer import TrainConfig, train
from mdn_snntorch.runlock import claim_dir, claim_file

BANDWIDTH_QUANTILE = 0.3
DUPLICATE_DISTANCE = 0.1
PAIRS = {"ab": (0, 1), "cd": (2, 3)}


@dataclass
class Clustering:
    """MeanShift + KMeans on one theta pair: ``labels`` per neuron, ``centres`` [M, 2] in theta units."""

    labels: np.ndarray
    centres: np.ndarray
    bandwidth: float
    scale: np.ndarray

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.centres)).tolist()


def cluster_pair(points: np.ndarray, quantile: float = BANDWIDTH_QUANTILE, seed: int = 0) -> Clustering:
    """Number of centres from MeanShift (estimated bandwidth), centres from KMeans with that number."""
    from sklearn.cluster import KMeans, MeanShift, estimate_bandwidth

    points = np.asarray(points, dtype=np.float64)
    mean, std = points.mean(axis=0), points.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    z = (points - mean) / scale
    bandwidth = float(estimate_bandwidth(z, quantile=quantile, random_state=seed)) if len(z) > 1 else 0.0
    if bandwidth > 0:
        m = len(MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(z).cluster_centers_)
    else:  # all points equal: one centre
        m = 1
    kmeans = KMeans(n_clusters=m, n_init=10, random_state=seed).fit(z)
    order = np.argsort(-np.bincount(kmeans.labels_, minlength=m), kind="stable")  # biggest cluster first
    relabel = np.empty(m, dtype=int)
    relabel[order] = np.arange(m)
    centres = kmeans.cluster_centers_[order] * scale + mean
    return Clustering(relabel[kmeans.labels_], centres, bandwidth, scale)


def collect_theta(model) -> np.ndarray:
    """theta (a, b, c, d) of every hidden and output neuron of a learnable-theta ThreeLayerSNN, [N, 4]."""
    rows = []
    for layer in (model.hidden, model.output):
        if not getattr(layer, "learn_theta", False):
            raise ValueError("collect_theta needs a network trained with neuron='learnable'")
        rows.append(np.stack([t.detach().cpu().double().numpy() for t in layer.theta], axis=1))
    return np.concatenate(rows)


def select_candidates(
    ab: Clustering, cd: Clustering, prefix: str, duplicate_distance: float = DUPLICATE_DISTANCE, steps: int = 150
) -> tuple[list[MetaNeuron], list[dict[str, Any]], dict[str, dynamics.Characterisation]]:
    """Candidates = all centre combinations; returns (kept neurons, a record per candidate, characterisations of the kept)."""
    candidates = []
    for i, (a, b) in enumerate(ab.centres):
        for j, (c, d) in enumerate(cd.centres):
            support = int(((ab.labels == i) & (cd.labels == j)).sum())
            candidates.append(
                {
                    "id": f"ab{i}-cd{j}",
                    "ab_centre": i,
                    "cd_centre": j,
                    "theta": [float(a), float(b), float(c), float(d)],
                    "support": support,
                }
            )
    candidates.sort(key=lambda r: -r["support"])
    kept: list[MetaNeuron] = []
    kept_chars: dict[str, dynamics.Characterisation] = {}
    n_bins = steps // dynamics.RATE_BIN
    for record in candidates:
        char = dynamics.characterise(MetaNeuron(record["id"], 2, tuple(record["theta"])), steps)
        record["sine_rate"] = char.sine_rate
        if char.problem:
            record.update(status="dropped", reason=f"degenerate: {char.problem}")
            continue
        distances = {name: dynamics.response_distance(char.response, c.response, n_bins) for name, c in kept_chars.items()}
        closest = min(distances, key=distances.get) if distances else None
        if closest is not None and distances[closest] < duplicate_distance:
            record.update(
                status="dropped",
                reason=f"near-duplicate of {closest} (response distance {distances[closest]:.3f} < {duplicate_distance})",
            )
            continue
        name = f"{prefix}-{len(kept) + 1}"
        neuron = MetaNeuron(
            name,
            2,
            tuple(record["theta"]),
            description=f"generated: (a, b) centre {record['ab_centre']}, (c, d) centre {record['cd_centre']}, "
            f"support {record['support']} neurons",
            provenance={"candidate": record["id"], "support": record["support"]},
        )
        record.update(status="kept", name=name)
        kept.append(neuron)
        kept_chars[name] = dynamics.Characterisation(neuron, char.sine, char.constant, char.response, None)
    return kept, candidates, kept_chars


def discover(
    data_path: str | Path,
    out_path: str | Path,
    *,
    seeds: int | Sequence[int] = 1,
    runs_dir: str | Path | None = None,
    quantile: float = BANDWIDTH_QUANTILE,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    steps: int = 150,
    figures: bool = True,
    **train_settings,
) -> MetaNeuronLibrary:
    """Train with learnable theta for each seed, cluster, filter, and write the library JSON (+ figures).

    ``seeds``: a count (seeds 0..n-1) or explicit seeds. ``train_settings`` are :class:`TrainConfig`
    fields (``epochs``, ``hidden``, ``batch_size``, ``lr``, ``lr_theta``, ``device``, ...). Training
    runs go to ``runs_dir`` (default ``<out>_runs/seed<s>``) and finished ones are reused.
    """
    out_path = Path(out_path)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("discover needs at least one seed")
    with ExitStack() as claims:  # every output checked and locked before the first epoch
        claims.enter_context(claim_file(out_path, "meta-neuron library"))
        runs_dir = Path(runs_dir) if runs_dir else out_path.with_name(out_path.stem + "_runs")
        for suffix in ("_fig3.png", "_fig4.png") if figures else ():
            claims.enter_context(claim_file(out_path.with_name(out_path.stem + suffix), "figure"))
        claims.enter_context(claim_dir(runs_dir, "runs folder"))
        return _discover(data_path, out_path, seeds, runs_dir, quantile, duplicate_distance, steps, figures, train_settings)


def check_names(neurons: Sequence[MetaNeuron]) -> None:
    """Each generated name must resolve to its own neuron (:func:`factory.lookup`): none may shadow a preset."""
    library = MetaNeuronLibrary(list(neurons))
    for neuron in neurons:
        factory.lookup(neuron.name, [library])


def _discover(data_path, out_path: Path, seeds: list[int], runs_dir: Path, quantile, duplicate_distance, steps, figures,
              train_settings) -> MetaNeuronLibrary:  # fmt: skip
    results, thetas = [], []
    for seed in seeds:
        config = TrainConfig(
            data=str(data_path), out=str(runs_dir / f"seed{seed}"), neuron="learnable", seed=seed, resume=True, **train_settings
        )
        result = train(config)
        results.append(result)
        thetas.append(collect_theta(result.model))
    theta = np.concatenate(thetas)
    clusters = {pair: cluster_pair(theta[:, list(cols)], quantile) for pair, cols in PAIRS.items()}
    prefix = out_path.stem
    kept, candidates, kept_chars = select_candidates(clusters["ab"], clusters["cd"], prefix, duplicate_distance, steps)
    check_names(kept)
    provenance = {
        "source": str(data_path),
        "dataset": dataset_name(data_path),
        "seeds": seeds,
        "training": {k: v for k, v in results[0].config.items() if k not in ("data", "out", "seed", "resume", "progress")},
        "final_test_acc": {str(s): r.test_acc for s, r in zip(seeds, results)},
        "neurons_clustered": int(len(theta)),
        "clustering": {
            pair: {
                "method": "z-score per column, MeanShift(estimate_bandwidth(quantile)) -> M, KMeans(M)",
                "quantile": quantile,
                "bandwidth_standardised": c.bandwidth,
                "num_centres": len(c.centres),
                "centres": c.centres.tolist(),
                "sizes": c.sizes,
            }
            for pair, c in clusters.items()
        },
        "selection": {
            "stimulus": f"sine, std {dynamics.SINE_STD}, period {dynamics.SINE_PERIOD}, {steps} steps; "
            f"constant currents sigmoid({dynamics.CONSTANT_DRIVES.min():g}..{dynamics.CONSTANT_DRIVES.max():g})",
            "duplicate_distance": duplicate_distance,
            "candidates": candidates,
        },
    }
    save_library(out_path, kept, provenance)
    if figures:
        _figure_clusters(out_path.with_name(out_path.stem + "_fig3.png"), theta, clusters, results, seeds)
        _figure_dynamics(out_path.with_name(out_path.stem + "_fig4.png"), kept_chars)
    return MetaNeuronLibrary(kept, provenance)


def dataset_name(path) -> str:
    from mdn_snntorch.spikefile import read_meta

    return str(read_meta(path).get("dataset", Path(path).stem))


# ---- figures -----------------------------------------------------------------------------------
def _figure_clusters(path: Path, theta: np.ndarray, clusters: dict[str, Clustering], results, seeds) -> None:
    """Paper Fig. 3: test accuracy while learning theta, and the (a, b) and (c, d) clusters with centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdn_snntorch.pipeline.report import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)
    for seed, result in zip(seeds, results):
        epochs = [m["epoch"] for m in result.metrics]
        axes[0].plot(epochs, [100 * m["test_acc"] for m in result.metrics], marker="o", label=f"seed {seed}")
    axes[0].set(xlabel="epoch", ylabel="test accuracy (%)", title="learning with learnable theta")
    axes[0].legend(fontsize=8)
    for ax, (pair, cols), names in zip(axes[1:], PAIRS.items(), (("theta_a", "theta_b"), ("theta_c", "theta_d"))):
        c = clusters[pair]
        ax.scatter(theta[:, cols[0]], theta[:, cols[1]], c=c.labels, cmap="tab10", s=8, alpha=0.6, vmin=0, vmax=9)
        ax.scatter(c.centres[:, 0], c.centres[:, 1], marker="X", s=180, c="k", edgecolors="w", label="KMeans centres")
        for k, (x, y) in enumerate(c.centres):
            ax.annotate(f"{pair}{k} (n={c.sizes[k]})", (x, y), textcoords="offset points", xytext=(8, 8), fontsize=8)
        ax.set(xlabel=names[0], ylabel=names[1], title=f"({names[0]}, {names[1]}): M = {len(c.centres)} centres")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def _figure_dynamics(path: Path, chars: dict[str, dynamics.Characterisation]) -> None:
    """Paper Fig. 4: V, U, input current and stable attractor of each kept neuron under the sine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdn_snntorch.pipeline.report import save_figure

    n = max(1, len(chars))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), squeeze=False, constrained_layout=True)
    for ax, (name, char) in zip(axes[:, 0], chars.items()):
        tr = char.sine
        t = np.arange(len(tr.current))
        ax.plot(t, tr.v[:, 0], color="tab:red", lw=1, label="V")
        ax.plot(t, tr.u[:, 0], color="tab:green", lw=1, label="U")
        ax.plot(t, tr.current[:, 0], color="tab:blue", lw=1, label="input I")
        ax.plot(t, dynamics.attractor_trace(tr)[:, 0], color="goldenrod", lw=1, ls="--", label="attractor V*")
        spikes = np.flatnonzero(tr.spikes[:, 0])
        ax.plot(spikes, np.full(len(spikes), 0.5), "|", color="k", ms=8, label="spikes")
        a, b, c, d = char.neuron.theta
        ax.set(
            ylim=(-1.2, 1.2),
            ylabel=name,
            title=f"{name}: theta = ({a:.3g}, {b:.3g}, {c:.3g}, {d:.3g}), sine rate {char.sine_rate:.2f}",
        )
        ax.legend(fontsize=7, loc="upper right", ncol=5)
    if not chars:
        axes[0, 0].text(0.5, 0.5, "no candidate survived the filters", ha="center", va="center")
    axes[-1, 0].set_xlabel("time step")
    save_figure(fig, path)
