r"""Generating meta neurons from the built-in network (paper §3.3, Fig. 2-4): ``mdn discover`` and :func:`discover`.

A client of :mod:`mdn_snntorch.discovery`, the method for any network (docs/discovery.md); the choices made
where the paper is silent: docs/model.md#meta-neuron-generation.

1. Train the 3-layer SNN with learnable per-neuron theta on a source data set, once per seed.
2. :func:`~mdn_snntorch.discovery.collect_theta` of every hidden and output neuron of every seed, pooled.
3. :func:`~mdn_snntorch.discovery.generate`: MeanShift + KMeans per theta pair, the candidates and their
   filters (support, dynamics, accuracy, near-duplicates).
4. The paper's accuracy criterion (:func:`validation_accuracy`): each candidate that passes the dynamics
   filters, frozen, is trained for ``accuracy_epochs`` (default 1) on the source task with
   ``validation_fraction`` (default 0.1) of its training split held out, chosen by the run's seed; its
   accuracy on that validation split is the score. The test split never takes part in the choice.
   ``accuracy_epochs=0`` skips the criterion.

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
from pathlib import Path
from typing import Any

from mdn_snntorch.discovery import Generation, ThetaPoints, collect_theta, generate
from mdn_snntorch.discovery.clustering import BANDWIDTH_QUANTILE
from mdn_snntorch.discovery.generation import check_settings
from mdn_snntorch.discovery.selection import DUPLICATE_DISTANCE, MIN_ACCURACY, MIN_SUPPORT
from mdn_snntorch.meta_neurons import MetaNeuron, MetaNeuronLibrary, save_library
from mdn_snntorch.pipeline.trainer import TrainConfig, TrainResult, train
from mdn_snntorch.runlock import claim_dir, claim_file

ACCURACY_EPOCHS = 1
#: the fraction of the source task's training split the accuracy criterion holds out and scores on
VALIDATION_FRACTION = 0.1
#: protocol -> (training settings, clustering settings)
PROTOCOLS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "paper": ({}, {"space": "standardised", "quantile": BANDWIDTH_QUANTILE}),
    "authors": ({"theta_per_row": True, "detach_reset": False}, {"space": "raw", "quantile": 0.5}),
}


def _check(protocol: str, accuracy_epochs: int, validation_fraction: float, seeds: int | Sequence[int]) -> list[int]:
    """The settings of training and the accuracy criterion, checked before anything is claimed; the seeds as a list."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if isinstance(accuracy_epochs, bool) or not isinstance(accuracy_epochs, int) or accuracy_epochs < 0:
        raise ValueError(f"accuracy_epochs must be an int >= 0, got {accuracy_epochs!r}")
    fraction = validation_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be a fraction in (0, 1), got {fraction!r}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("discover needs at least one seed")
    return seeds


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
    validation_fraction: float = VALIDATION_FRACTION,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    steps: int = 150,
    figures: bool = True,
    **train_settings,
) -> MetaNeuronLibrary:
    """Train with learnable theta for each seed, generate meta neurons, and write the library JSON (+ figures).

    ``seeds``: a count (seeds 0..n-1) or explicit seeds. ``protocol``: ``"paper"`` or ``"authors"`` (see the
    module docstring); ``quantile`` and ``space`` override its clustering settings, ``train_settings``
    (:class:`TrainConfig` fields: ``epochs``, ``hidden``, ``batch_size``, ``lr``, ``lr_theta``, ``device``,
    ``theta_per_row``, ``detach_reset`` ...) its training settings. ``ab_clusters``/``cd_clusters`` force
    the number of centres of a pair. ``accuracy_epochs``, ``min_accuracy``, ``validation_fraction``: the
    accuracy criterion (:func:`validation_accuracy`). Training runs go to ``runs_dir`` (default
    ``<out>_runs/seed<s>``, the accuracy runs to ``candidates/``) and finished ones are reused.
    """
    seeds = _check(protocol, accuracy_epochs, validation_fraction, seeds)
    training, clustering = PROTOCOLS[protocol]
    train_settings = {**training, **train_settings}
    clustering = {**clustering, **{k: v for k, v in (("quantile", quantile), ("space", space)) if v is not None}}
    generation = dict(clustering, ab_clusters=ab_clusters, cd_clusters=cd_clusters, min_support=min_support,
                      min_accuracy=min_accuracy, duplicate_distance=duplicate_distance, steps=steps)  # fmt: skip
    out_path = Path(out_path)
    check_settings(**generation, prefix=out_path.stem)
    accuracy = {"accuracy_epochs": accuracy_epochs, "validation_fraction": validation_fraction}
    with ExitStack() as claims:  # every output checked and locked before the first epoch
        claims.enter_context(claim_file(out_path, "meta-neuron library"))
        runs_dir = Path(runs_dir) if runs_dir else out_path.with_name(out_path.stem + "_runs")
        for suffix in ("_fig3.png", "_fig4.png") if figures else ():
            claims.enter_context(claim_file(out_path.with_name(out_path.stem + suffix), "figure"))
        claims.enter_context(claim_dir(runs_dir, "runs folder"))
        return _discover(data_path, out_path, seeds, runs_dir, protocol, generation, accuracy, figures, train_settings)


def train_learnable(data_path, runs_dir: Path, seeds: Sequence[int], train_settings: dict[str, Any]) -> list[TrainResult]:
    """Step 1: the learnable-theta network of each seed, trained (or reused) in ``runs_dir/seed<s>``."""
    results = []
    for seed in seeds:
        config = TrainConfig(
            data=str(data_path), out=str(runs_dir / f"seed{seed}"), neuron="learnable", seed=seed, resume=True, **train_settings
        )
        results.append(train(config))
    return results


def validation_accuracy(
    data_path, runs_dir: Path, epochs: int, train_settings: dict[str, Any], validation_fraction: float = VALIDATION_FRACTION
) -> Callable[[MetaNeuron], float]:
    """The paper's accuracy criterion as ``accuracy(neuron) -> float``: a candidate's accuracy on a validation
    split after ``epochs`` epochs on the rest of the source task's training split, frozen, with the
    discovery's training settings (seed 0, which also fixes the split); runs in
    ``runs_dir/<candidate>-<hash of theta and fraction>``."""
    settings = {k: v for k, v in train_settings.items() if k != "theta_per_row"}
    settings["epochs"] = epochs

    def accuracy(neuron: MetaNeuron) -> float:
        key = hashlib.sha256(json.dumps([list(neuron.theta), validation_fraction]).encode()).hexdigest()[:8]
        config = TrainConfig(
            data=str(data_path), out=str(runs_dir / f"{neuron.name}-{key}"), neuron=neuron.to_dict(), seed=0, resume=True,
            validation_fraction=validation_fraction, **settings,
        )  # fmt: skip
        return train(config).val_acc

    return accuracy


def _discover(data_path, out_path: Path, seeds: list[int], runs_dir: Path, protocol: str, settings: dict[str, Any],
              accuracy: dict[str, Any], figures: bool, train_settings) -> MetaNeuronLibrary:  # fmt: skip
    results = train_learnable(data_path, runs_dir, seeds, train_settings)
    points = ThetaPoints.concatenate(collect_theta(r.model) for r in results)
    criterion = (
        validation_accuracy(data_path, runs_dir / "candidates", accuracy["accuracy_epochs"], train_settings,
                            accuracy["validation_fraction"])
        if accuracy["accuracy_epochs"] > 0
        else None
    )  # fmt: skip
    made = generate(points, accuracy=criterion, prefix=out_path.stem, **settings)
    provenance = {
        "source": str(data_path),
        "dataset": dataset_name(data_path),
        "seeds": seeds,
        "protocol": protocol,
        "training": {k: v for k, v in results[0].config.items() if k not in ("data", "out", "seed", "resume", "progress")},
        "final_test_acc": {str(s): r.test_acc for s, r in zip(seeds, results)},
        **made.library.provenance,
    }
    provenance["selection"] = _selection(made, accuracy)
    save_library(out_path, made.library.neurons, provenance)
    if figures:
        curves = {f"seed {s}, test split": [(m["epoch"], m["test_acc"]) for m in r.metrics] for s, r in zip(seeds, results)}
        made.figure(out_path.with_name(out_path.stem + "_fig3.png"), curves=curves)
        made.figure(out_path.with_name(out_path.stem + "_fig4.png"), "dynamics")
    return MetaNeuronLibrary(made.library.neurons, provenance)


def _selection(made: Generation, accuracy: dict[str, Any]) -> dict[str, Any]:
    """The generation's selection record, with the accuracy criterion's settings in place of its on/off flag."""
    selection = {k: v for k, v in made.library.provenance["selection"].items() if k not in ("accuracy", "candidates")}
    return {**selection, **accuracy, "candidates": made.candidates}


def dataset_name(path) -> str:
    from mdn_snntorch.spikefile import read_meta

    return str(read_meta(path).get("dataset", Path(path).stem))
