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
   in both clusters. A candidate with fewer than ``min_support`` neurons (default 1: a combination that
   no trained neuron had) is dropped.
5. Each candidate is simulated on the sine stimulus and constant currents
   (:mod:`mdn_snntorch.dynamics`): degenerate ones (diverging, silent, runaway) are dropped.
6. The paper's accuracy criterion: each remaining candidate, frozen, is trained for ``accuracy_epochs``
   (default 1) on the source task; one below ``min_accuracy`` (0.95) times the best candidate's test
   accuracy is dropped. ``accuracy_epochs=0`` skips this step.
7. The rest are taken in order of accuracy (of support without step 6), and one whose response distance
   to an already kept neuron is below ``duplicate_distance`` (0.1, relative) is dropped as its near-duplicate.

``protocol="authors"`` instead follows the paper authors' published code (docs/model.md#meta-neuron-generation):
theta per batch row and an undetached reset while training (:class:`TrainConfig` ``theta_per_row``,
``detach_reset``), and clustering of the raw theta values with ``quantile=0.5``. Every setting can also
be given on its own.

Output: the library JSON (:func:`~mdn_snntorch.meta_neurons.save_library`) with provenance, and beside it
``<name>_fig3.png`` (accuracy curves and theta scatter with centres) and ``<name>_fig4.png`` (each
kept neuron's V, U, input and attractor under the sine). The library path and the runs folder are
claimed (checked and locked) before any training; every generated name is checked with
:func:`mdn_snntorch.neurons.factory.lookup` against the presets before the library is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
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
MIN_SUPPORT = 1
ACCURACY_EPOCHS = 1
MIN_ACCURACY = 0.95
#: points handed to estimate_bandwidth at most (a random subset; its cost grows with the square)
BANDWIDTH_SAMPLES = 10_000
PAIRS = {"ab": (0, 1), "cd": (2, 3)}
SPACES = ("standardised", "raw")
#: the centres behind the paper's meta neurons (the candidates the authors published: (a, b) x (c, d) of each kind)
PAPER_CENTRES = {
    "spatial": {"ab": [(0.060, 0.219)], "cd": [(-0.065, 0.003), (-0.010, 0.050), (-0.135, -0.051)]},
    "temporal": {"ab": [(-0.009, 0.246), (0.005, 0.158), (0.007, 0.205)], "cd": [(-0.058, 0.065), (0.064, 0.091)]},
}
#: protocol -> (training settings, clustering settings)
PROTOCOLS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "paper": ({}, {"space": "standardised", "quantile": BANDWIDTH_QUANTILE}),
    "authors": ({"theta_per_row": True, "detach_reset": False}, {"space": "raw", "quantile": 0.5}),
}


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


def cluster_pair(
    points: np.ndarray,
    quantile: float = BANDWIDTH_QUANTILE,
    seed: int = 0,
    *,
    space: str = "standardised",
    n_clusters: int | None = None,
) -> Clustering:
    """Number of centres from MeanShift (estimated bandwidth), centres from KMeans with that number.

    ``space``: ``"standardised"`` (z-score per column) or ``"raw"`` (theta units as they are).
    ``n_clusters`` forces the number of centres (MeanShift is then skipped)."""
    from sklearn.cluster import KMeans, MeanShift, estimate_bandwidth

    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1):
        raise ValueError(f"n_clusters must be a positive int or None, got {n_clusters!r}")
    points = np.asarray(points, dtype=np.float64)
    mean, std = points.mean(axis=0), points.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    if space == "raw":
        mean, scale = np.zeros_like(mean), np.ones_like(scale)
    z = (points - mean) / scale
    if len(z) > 1:
        samples = min(len(z), BANDWIDTH_SAMPLES)
        bandwidth = float(estimate_bandwidth(z, quantile=quantile, n_samples=samples, random_state=seed))
    else:
        bandwidth = 0.0
    if n_clusters is not None:
        m = min(n_clusters, len(np.unique(z, axis=0)))
    elif bandwidth > 0:
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
    """theta (a, b, c, d) of every hidden and output neuron of a learnable-theta ThreeLayerSNN, [N, 4]
    (with theta per batch row, every (row, neuron) pair is a point: [B x N, 4])."""
    rows = []
    for layer in (model.hidden, model.output):
        if not getattr(layer, "learn_theta", False):
            raise ValueError("collect_theta needs a network trained with neuron='learnable'")
        rows.append(np.stack([t.detach().cpu().double().reshape(-1).numpy() for t in layer.theta], axis=1))
    return np.concatenate(rows)


def select_candidates(
    ab: Clustering,
    cd: Clustering,
    prefix: str,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    steps: int = 150,
    *,
    min_support: int = MIN_SUPPORT,
    accuracy: Callable[[MetaNeuron], float] | None = None,
    min_accuracy: float = MIN_ACCURACY,
) -> tuple[list[MetaNeuron], list[dict[str, Any]], dict[str, dynamics.Characterisation]]:
    """Candidates = all centre combinations, filtered by support, dynamics, accuracy and duplicates (steps 4-7
    of the module docstring); ``accuracy(neuron)`` is a candidate's test accuracy on the source task (None:
    no accuracy step). Returns (kept neurons, a record per candidate, characterisations of the kept)."""
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
    chars = {}
    for record in candidates:
        if record["support"] < min_support:
            record.update(status="dropped", reason=f"support {record['support']} < min_support {min_support}")
            continue
        char = dynamics.characterise(MetaNeuron(record["id"], 2, tuple(record["theta"])), steps)
        record["sine_rate"] = char.sine_rate
        if char.problem:
            record.update(status="dropped", reason=f"degenerate: {char.problem}")
            continue
        chars[record["id"]] = char
    order = [r for r in candidates if r["id"] in chars]
    if accuracy is not None and order:
        for record in order:
            record["accuracy"] = float(accuracy(MetaNeuron(record["id"], 2, tuple(record["theta"]))))
        best = max(r["accuracy"] for r in order)
        for record in order:
            if record["accuracy"] < min_accuracy * best:
                record.update(
                    status="dropped",
                    reason=f"accuracy {100 * record['accuracy']:.2f} % < {min_accuracy:g} x the best {100 * best:.2f} %",
                )
        order = sorted((r for r in order if "status" not in r), key=lambda r: -r["accuracy"])
    kept: list[MetaNeuron] = []
    kept_chars: dict[str, dynamics.Characterisation] = {}
    n_bins = steps // dynamics.RATE_BIN
    for record in order:
        char = chars[record["id"]]
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
            provenance={"candidate": record["id"], "support": record["support"], "accuracy": record.get("accuracy")},
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
    protocol: str = "paper",
    quantile: float | None = None,
    space: str | None = None,
    ab_clusters: int | None = None,
    cd_clusters: int | None = None,
    min_support: int = MIN_SUPPORT,
    accuracy_epochs: int = ACCURACY_EPOCHS,
    min_accuracy: float = MIN_ACCURACY,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    steps: int = 150,
    figures: bool = True,
    **train_settings,
) -> MetaNeuronLibrary:
    """Train with learnable theta for each seed, cluster, filter, and write the library JSON (+ figures).

    ``seeds``: a count (seeds 0..n-1) or explicit seeds. ``protocol``: ``"paper"`` or ``"authors"`` (see the
    module docstring); ``quantile`` and ``space`` override its clustering settings, ``train_settings``
    (:class:`TrainConfig` fields: ``epochs``, ``hidden``, ``batch_size``, ``lr``, ``lr_theta``, ``device``,
    ``theta_per_row``, ``detach_reset`` ...) its training settings. ``ab_clusters``/``cd_clusters`` force
    the number of centres of a pair. Training runs go to ``runs_dir`` (default ``<out>_runs/seed<s>``, the
    accuracy runs to ``candidates/``) and finished ones are reused.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, int) or min_support < 0:
        raise ValueError(f"min_support must be an int >= 0, got {min_support!r}")
    if isinstance(accuracy_epochs, bool) or not isinstance(accuracy_epochs, int) or accuracy_epochs < 0:
        raise ValueError(f"accuracy_epochs must be an int >= 0, got {accuracy_epochs!r}")
    if not 0 <= min_accuracy <= 1:
        raise ValueError(f"min_accuracy must be a fraction in 0..1, got {min_accuracy!r}")
    training, clustering = PROTOCOLS[protocol]
    train_settings = {**training, **train_settings}
    clustering = {**clustering, **{k: v for k, v in (("quantile", quantile), ("space", space)) if v is not None}}
    clustering["counts"] = {"ab": ab_clusters, "cd": cd_clusters}
    selection = {"min_support": min_support, "accuracy_epochs": accuracy_epochs, "min_accuracy": min_accuracy,
                 "duplicate_distance": duplicate_distance, "steps": steps}  # fmt: skip
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
        return _discover(data_path, out_path, seeds, runs_dir, protocol, clustering, selection, figures, train_settings)


def check_names(neurons: Sequence[MetaNeuron]) -> None:
    """Each generated name must resolve to its own neuron (:func:`factory.lookup`): none may shadow a preset."""
    library = MetaNeuronLibrary(list(neurons))
    for neuron in neurons:
        factory.lookup(neuron.name, [library])


def candidate_accuracy(data_path, runs_dir: Path, epochs: int, train_settings: dict[str, Any]) -> Callable[[MetaNeuron], float]:
    """The paper's accuracy criterion: a candidate's test accuracy after ``epochs`` epochs on the source task,
    frozen, with the discovery's training settings (seed 0); runs in ``runs_dir/<candidate>-<theta hash>``."""
    settings = {k: v for k, v in train_settings.items() if k != "theta_per_row"}
    settings["epochs"] = epochs

    def accuracy(neuron: MetaNeuron) -> float:
        key = hashlib.sha256(json.dumps(list(neuron.theta)).encode()).hexdigest()[:8]
        config = TrainConfig(
            data=str(data_path), out=str(runs_dir / f"{neuron.name}-{key}"), neuron=neuron.to_dict(), seed=0, resume=True,
            **settings,
        )  # fmt: skip
        return train(config).test_acc

    return accuracy


def _discover(data_path, out_path: Path, seeds: list[int], runs_dir: Path, protocol: str, clustering: dict[str, Any],
              selection: dict[str, Any], figures: bool, train_settings) -> MetaNeuronLibrary:  # fmt: skip
    results, thetas = [], []
    for seed in seeds:
        config = TrainConfig(
            data=str(data_path), out=str(runs_dir / f"seed{seed}"), neuron="learnable", seed=seed, resume=True, **train_settings
        )
        result = train(config)
        results.append(result)
        thetas.append(collect_theta(result.model))
    theta = np.concatenate(thetas)
    clusters = {
        pair: cluster_pair(
            theta[:, list(cols)], clustering["quantile"], space=clustering["space"], n_clusters=clustering["counts"][pair]
        )
        for pair, cols in PAIRS.items()
    }
    prefix = out_path.stem
    accuracy = (
        candidate_accuracy(data_path, runs_dir / "candidates", selection["accuracy_epochs"], train_settings)
        if selection["accuracy_epochs"] > 0
        else None
    )
    kept, candidates, kept_chars = select_candidates(
        clusters["ab"], clusters["cd"], prefix, selection["duplicate_distance"], selection["steps"],
        min_support=selection["min_support"], accuracy=accuracy, min_accuracy=selection["min_accuracy"],
    )  # fmt: skip
    check_names(kept)
    provenance = {
        "source": str(data_path),
        "dataset": dataset_name(data_path),
        "seeds": seeds,
        "protocol": protocol,
        "training": {k: v for k, v in results[0].config.items() if k not in ("data", "out", "seed", "resume", "progress")},
        "final_test_acc": {str(s): r.test_acc for s, r in zip(seeds, results)},
        "neurons_clustered": int(len(theta)),
        "theta_mean": dict(zip("abcd", theta.mean(axis=0).tolist())),
        "clustering": {
            pair: {
                "method": f"{clustering['space']} theta, MeanShift(estimate_bandwidth(quantile)) -> M, KMeans(M)"
                if clustering["counts"][pair] is None
                else f"{clustering['space']} theta, KMeans(M = {clustering['counts'][pair]}, forced)",
                "space": clustering["space"],
                "quantile": clustering["quantile"],
                "bandwidth": c.bandwidth,
                "num_centres": len(c.centres),
                "centres": c.centres.tolist(),
                "sizes": c.sizes,
            }
            for pair, c in clusters.items()
        },
        "selection": {
            "stimulus": f"sine, std {dynamics.SINE_STD}, period {dynamics.SINE_PERIOD}, {selection['steps']} steps; "
            f"constant currents sigmoid({dynamics.CONSTANT_DRIVES.min():g}..{dynamics.CONSTANT_DRIVES.max():g})",
            **{k: v for k, v in selection.items() if k != "steps"},
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
        for kind, colour in (("spatial", "tab:red"), ("temporal", "tab:blue")):
            ref = np.array(PAPER_CENTRES[kind][pair])
            ax.scatter(ref[:, 0], ref[:, 1], marker="*", s=200, facecolors="none", edgecolors=colour, label=f"paper {kind}")
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
