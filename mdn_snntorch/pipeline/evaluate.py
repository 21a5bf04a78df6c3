r"""The paper's evaluation (Table 3, Eq. 7, Fig. 8): ``mdn evaluate`` and :func:`evaluate`.

Every neuron type is trained on every task with every seed (frozen theta, :func:`mdn_snntorch.pipeline.trainer.train`).
A run's accuracy is its test accuracy after the last epoch. Per task and neuron:
mean +- std over seeds (sample standard deviation, n - 1; 0 for one seed).

Capability (paper Eq. 7) of neuron i on a task, over the neuron types evaluated on that task:

.. math:: \mathrm{Cap}_i = \frac{\mathrm{Acc}_i - \overline{\mathrm{Acc}}}{\sigma(\mathrm{Acc})}

with :math:`\mathrm{Acc}_i` the neuron's mean accuracy over seeds and :math:`\sigma` the population standard
deviation over the neuron types (the paper writes "var" and calls it the standard deviation); 0 when all
types score the same (docs/model.md#capability).

Files in ``out``: ``runs/<task>/<neuron>/seed<s>/`` (each a training run; when the command is run again,
finished ones are reused, unfinished ones resumed, and ones made with other settings refused),
``runs.csv`` and ``runs.json`` (every run's final metrics), ``table.md`` and ``results.json`` (Table 3 and
capabilities), ``accuracy.png`` and ``capability.png`` (Fig. 8).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mdn_snntorch import meta_neurons
from mdn_snntorch.neurons import factory
from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.checkpoint import write_csv, write_json
from mdn_snntorch.pipeline.report import save_figure, write_atomic
from mdn_snntorch.pipeline.trainer import TrainConfig, train


def capability(acc: dict[str, float]) -> dict[str, float]:
    """Paper Eq. 7: ``(acc - mean) / std`` over the neuron types of one task (population std; 0 if it is 0)."""
    values = np.array(list(acc.values()), dtype=np.float64)
    std = values.std()
    return {name: float((a - values.mean()) / std) if std > 0 else 0.0 for name, a in acc.items()}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def task_names(data_paths: Sequence[str | Path]) -> list[str]:
    """A task name per file: its ``dataset`` attribute, or ``dataset-<file stem>`` when two files share it."""
    from mdn_snntorch.spikefile import read_meta

    names = [str(read_meta(p)["dataset"]) for p in data_paths]
    return [f"{n}-{Path(p).stem}" if names.count(n) > 1 else n for n, p in zip(names, data_paths)]


def _reusable_run(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The ``metrics.json`` of a finished run in ``run_dir`` with exactly these settings, else None
    (nothing there, or unfinished, or finished with fewer epochs: ``train(resume=True)`` continues it).
    A run made with other settings is refused rather than mixed into the table."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    saved, wanted = doc.get("config", {}), config.to_dict()
    housekeeping = {"device", "eval_batch_size", "num_workers", "threads", "progress", "out", "resume", "recipe", "epochs"}
    for name, value in wanted.items():
        old = TrainConfig.saved_value(saved, name)
        same = Path(value).resolve() == Path(old or "").resolve() if name == "data" else old == value
        if name not in housekeeping and not same:
            raise ValueError(f"{run_dir} holds a run made with {name}={old!r}, not {value!r}: remove it or use another --out")
    if (saved.get("epochs") or 0) > config.epochs:
        raise ValueError(
            f"{run_dir} holds a run of {saved['epochs']} epochs, more than the {config.epochs} asked for: "
            "remove it or use another --out"
        )
    if doc.get("status") == "finished" and saved.get("epochs") == config.epochs:
        return doc
    return None


def evaluate(
    data_paths: Sequence[str | Path],
    neurons: Sequence[str] = meta_neurons.PAPER_NEURONS,
    seeds: int | Sequence[int] = 5,
    out_dir: str | Path = "evaluation",
    *,
    libraries: Sequence[str | Path] = (),
    progress: bool = True,
    **train_settings,
) -> dict[str, Any]:
    """Train ``neurons`` x ``data_paths`` x ``seeds`` and write Table 3, capabilities and figures.

    ``neurons``: preset names or names of neurons in ``libraries``. ``seeds``: a count (0..n-1) or a list.
    ``train_settings``: :class:`TrainConfig` fields applied to every run; otherwise each task takes its
    data set's recipe when it has one. Returns the ``results.json`` document.
    """
    from mdn_snntorch.spikefile import read_meta

    out_dir = Path(out_dir)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds or not neurons or not data_paths:
        raise ValueError("evaluate needs at least one data file, one neuron and one seed")
    specs = {name: factory.to_json(factory.lookup(name, [str(p) for p in libraries])) for name in neurons}
    tasks = dict(zip(task_names(data_paths), (str(p) for p in data_paths)))
    plan = [(task, path, neuron, seed) for task, path in tasks.items() for neuron in neurons for seed in seeds]
    runs: list[dict[str, Any]] = []
    bar = tqdm(plan, desc="evaluate", disable=not progress, file=sys.stderr)
    for task, path, neuron, seed in bar:
        bar.set_postfix_str(f"{task} {neuron} seed {seed}")
        settings = {}
        recipe = recipes.canonical(str(read_meta(path)["dataset"]))
        if recipe:
            settings.update(recipes.settings(recipe), recipe=recipe)
        settings.update(train_settings)
        run_dir = out_dir / "runs" / _safe(task) / _safe(neuron) / f"seed{seed}"
        config = TrainConfig(
            data=path, out=str(run_dir), neuron=specs[neuron], seed=seed, resume=True, progress=False, **settings
        )
        done = _reusable_run(run_dir, config)
        if done is not None:
            metrics, reused = done["epochs"], True
        else:
            metrics, reused = train(config).metrics, False
        last = metrics[-1]
        runs.append(
            {
                "task": task,
                "neuron": neuron,
                "seed": seed,
                "test_acc": last["test_acc"],
                "best_test_acc": max(m["test_acc"] for m in metrics),
                "train_acc": last["train_acc"],
                "train_loss": last["train_loss"],
                "hidden_rate": last["test_hidden_rate"],
                "output_rate": last["test_output_rate"],
                "epochs": last["epoch"],
                "epoch_time_s": float(np.mean([m["epoch_time_s"] for m in metrics])),
                "reused": reused,
                "run_dir": str(run_dir),
            }
        )
    return _write_results(out_dir, tasks, list(neurons), seeds, runs)


def _write_results(
    out_dir: Path, tasks: dict[str, str], neurons: list[str], seeds: list[int], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    caps: dict[str, dict[str, float]] = {}
    for task in tasks:
        table[task] = {}
        for neuron in neurons:
            acc = np.array([r["test_acc"] for r in runs if r["task"] == task and r["neuron"] == neuron]) * 100
            table[task][neuron] = {
                "mean": float(acc.mean()),
                "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "n": int(len(acc)),
            }
        caps[task] = capability({n: table[task][n]["mean"] for n in neurons})
    doc = {"tasks": tasks, "neurons": neurons, "seeds": seeds, "accuracy_percent": table, "capability": caps, "runs": runs}
    write_json(out_dir / "results.json", doc)
    write_json(out_dir / "runs.json", runs)
    write_csv(out_dir / "runs.csv", runs)
    write_atomic(out_dir / "table.md", markdown_table(doc))
    _figures(out_dir, doc)
    return doc


def markdown_table(doc: dict[str, Any]) -> str:
    """Table 3 (accuracy %, mean +- std over seeds) and the capability table, as Markdown."""
    neurons, tasks = doc["neurons"], list(doc["tasks"])
    head = "| task | " + " | ".join(neurons) + " |\n|---|" + "---|" * len(neurons) + "\n"
    acc_rows = "".join(
        f"| {t} | "
        + " | ".join(
            f"{doc['accuracy_percent'][t][n]['mean']:.2f} +- {doc['accuracy_percent'][t][n]['std']:.2f}" for n in neurons
        )
        + " |\n"
        for t in tasks
    )
    cap_rows = "".join(f"| {t} | " + " | ".join(f"{doc['capability'][t][n]:+.2f}" for n in neurons) + " |\n" for t in tasks)
    n_seeds = len(doc["seeds"])
    return (
        f"## Test accuracy (%), mean +- std over {n_seeds} seed(s)\n\n{head}{acc_rows}\n"
        f"## Capability (paper Eq. 7: (Acc - mean) / std over the neuron types of a task)\n\n{head}{cap_rows}"
    )


def _figures(out_dir: Path, doc: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neurons, tasks = doc["neurons"], list(doc["tasks"])
    x = np.arange(len(tasks))
    width = 0.8 / len(neurons)
    for name, title, value, err in (
        (
            "accuracy.png",
            "test accuracy (mean +- std over seeds)",
            lambda t, n: doc["accuracy_percent"][t][n]["mean"],
            lambda t, n: doc["accuracy_percent"][t][n]["std"],
        ),
        ("capability.png", "capability (paper Eq. 7, Fig. 8)", lambda t, n: doc["capability"][t][n], None),
    ):
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks) * max(1, len(neurons) / 3)), 4))
        for k, neuron in enumerate(neurons):
            ax.bar(
                x + (k - (len(neurons) - 1) / 2) * width,
                [value(t, neuron) for t in tasks],
                width,
                yerr=[err(t, neuron) for t in tasks] if err else None,
                capsize=3,
                label=neuron,
                color=plt.cm.tab20(k % 20),
            )
        ax.set_xticks(x, tasks)
        ax.set_title(title)
        ax.set_ylabel("accuracy (%)" if err else "capability")
        if err:
            low = min(value(t, n) for t in tasks for n in neurons)
            ax.set_ylim(max(0, low - 10), 100)
        else:
            ax.axhline(0, color="k", lw=0.8)
        ax.legend(fontsize=8, ncol=min(5, len(neurons)))
        save_figure(fig, out_dir / name)
