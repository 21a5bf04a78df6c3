r"""The paper's evaluation (Table 3, Eq. 7, Figs. 6-8): ``mdn evaluate`` and :func:`evaluate`.

Every neuron type is trained on every task with every seed (frozen theta, :func:`mdn_snntorch.pipeline.trainer.train`).
A run's score is its test accuracy (``score="cosine"``: the cosine score instead, on tasks with bit-vector
targets such as NETtalk, x 100; ``"cosine_first_of_5"``: the cosine score on the paper authors' scored subset,
on the runs that record it) after the last epoch (``report="final"``), its best over the epochs (``"best"``)
or its mean over the last ten (``"last10"``); every run record keeps all three
(:mod:`~mdn_snntorch.pipeline.series`). Per task and neuron: mean +- std over seeds (sample standard
deviation, n - 1; 0 for one seed).

Capability (paper Eq. 7) of neuron i on a task, over the neuron types evaluated on that task:

.. math:: \mathrm{Cap}_i = \frac{\mathrm{Acc}_i - \overline{\mathrm{Acc}}}{\sigma(\mathrm{Acc})}

with :math:`\mathrm{Acc}_i` the neuron's mean score over seeds and :math:`\sigma` the population standard
deviation over the neuron types (the paper writes "var" and calls it the standard deviation); 0 when all
types score the same (docs/model.md#capability).

Spatial and temporal capability (paper Fig. 8): the mean of :math:`\mathrm{Cap}_i` over the tasks of each
kind, :math:`\mathrm{Cap}^k_i = \frac{1}{|T_k|} \sum_{t \in T_k} \mathrm{Cap}_{i,t}` (:func:`group_capability`).
Both are public functions over plain mappings in :mod:`mdn_snntorch.discovery.scores`, which also draws Fig. 8.
A task's kind comes from its data set (:func:`mdn_snntorch.pipeline.recipes.kind`) unless ``kinds`` sets it.

Files in ``out``: ``runs/<task>/<neuron>/seed<s>/`` (each a training run; when the command is run again,
finished ones are reused, unfinished ones resumed, and ones made with other settings refused; a run that
failed in a worker process of ``jobs`` leaves its traceback in the folder's ``error.log``),
``runs.csv`` and ``runs.json`` (every run's final metrics), ``table.md`` and ``results.json`` (Table 3,
capabilities per task and per kind), ``accuracy.png`` (Table 3 as bars with the group means of the
paper's Figs. 6-7), ``capability_per_task.png`` (Eq. 7 per task) and ``capability.png`` (Fig. 8).

:func:`combine` (``mdn combine``) pools the runs of finished evaluations (one task each, say, trained with
different settings) into one table, capability and Fig. 8 without training anything.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mdn_snntorch import meta_neurons
from mdn_snntorch.discovery.scores import KIND_NAMES, capability_figure, group_capability
from mdn_snntorch.discovery.scores import task_capability as capability
from mdn_snntorch.names import folder_name, inside
from mdn_snntorch.neurons import factory
from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.checkpoint import write_csv, write_json
from mdn_snntorch.pipeline.jobs import run_jobs
from mdn_snntorch.pipeline.protocols import protocol_settings
from mdn_snntorch.pipeline.report import md_cell, save_figure, write_atomic
from mdn_snntorch.pipeline.series import STATISTICS, summarise
from mdn_snntorch.pipeline.trainer import TrainConfig, train
from mdn_snntorch.printable import printable
from mdn_snntorch.runlock import claim_dir

#: what a task's numbers are: test accuracy, or a cosine score where the runs have one (bit-vector targets):
#: on every test sample, or on the paper authors' scored subset (the first of every five, ``--protocol authors``)
SCORES = ("accuracy", "cosine", "cosine_first_of_5")
#: each score's per-epoch series in a run's metrics
SCORE_SERIES = {"accuracy": "test_acc", "cosine": "test_cosine", "cosine_first_of_5": "test_cosine_first_of_5"}
#: how tables name each score
SCORE_WORDS = {
    "accuracy": "test accuracy",
    "cosine": "the cosine score (x 100)",
    "cosine_first_of_5": "the cosine score (x 100) on the first of every five test samples (the authors' scored subset)",
}
#: which value of a run's series a table shows: the last epoch's, the best, the mean of the last ten
REPORTS = STATISTICS
#: how tables name each report
REPORT_WORDS = {"final": "final epoch", "best": "best epoch (chosen on the test split)", "last10": "mean of the last ten epochs"}
#: the file of a run folder a run that failed in a worker process leaves its traceback in (``--jobs``)
JOB_LOG = "error.log"
#: the group means drawn on accuracy.png (paper Figs. 6-7): label -> the neuron types averaged
GROUPS = {"spatial meta neurons": ("2-FS", "2-RS"), "temporal meta neurons": ("2-SDS", "2-WDS")}


def task_kinds(
    tasks: Mapping[str, str | Path], overrides: Mapping[str, str | None] | None = None, *, name: str = "kinds"
) -> dict[str, str | None]:
    """Each task's kind: ``recipes.kind`` of its data file's ``dataset``, then ``overrides`` (task -> ``"spatial"``,
    ``"temporal"`` or None). ``tasks``: task name -> data file (:func:`task_names`). ``name`` names the
    overrides in errors."""
    from mdn_snntorch.spikefile import read_meta

    kinds = {task: recipes.kind(str(read_meta(path)["dataset"])) for task, path in tasks.items()}
    for task, value in (overrides or {}).items():
        if task not in kinds:
            raise ValueError(f"{name}: unknown task {task!r}; the tasks are: {', '.join(kinds)}")
        if value is not None and value not in KIND_NAMES:
            raise ValueError(f"{name}: {task}={value!r} is not one of {', '.join(KIND_NAMES)}")
        kinds[task] = value
    return kinds


def task_names(data_paths: Sequence[str | Path]) -> list[str]:
    """A task name per file: its ``dataset`` attribute, or ``dataset-<file stem>`` when two files share it."""
    from mdn_snntorch.spikefile import read_meta

    names = [str(read_meta(p)["dataset"]) for p in data_paths]
    return [f"{n}-{Path(p).stem}" if names.count(n) > 1 else n for n, p in zip(names, data_paths)]


def _run_dir(out_dir: Path, task: str, data: str, neuron: str, seed: int) -> Path:
    """``out_dir/runs/<task>/<neuron>/seed<seed>``, each name made one folder name
    (:func:`mdn_snntorch.names.folder_name`), checked to resolve inside ``out_dir``: a task named ``..`` (a spike
    file's ``dataset`` attribute) or a neuron named ``..`` is refused before any training."""
    task_folder = folder_name(task, f"the task name of {data} (its 'dataset' attribute)")
    run_dir = out_dir / "runs" / task_folder / folder_name(neuron, "the neuron name") / f"seed{seed}"
    return inside(out_dir, run_dir, f"the run folder of {task} {neuron} seed {seed}")


def _reusable_run(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The ``metrics.json`` of a finished run in ``run_dir`` with exactly these settings, else None
    (nothing there, or unfinished, or finished with fewer epochs: ``train(resume=True)`` continues it).
    A run made with other settings is refused rather than mixed into the table."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable run file ({err}); remove {run_dir} to train that run again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise ValueError(f"{path}: not a run's metrics file; remove {run_dir} to train that run again")
    saved, wanted = doc.get("config", {}), config.to_dict()
    housekeeping = {
        "device", "eval_batch_size", "num_workers", "prefetch", "threads", "progress", "out", "resume", "recipe", "epochs",
    }  # fmt: skip
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
    _same_data(doc, config.data, run_dir)
    if doc.get("status") == "finished" and saved.get("epochs") == config.epochs and doc.get("epochs"):
        return doc
    return None


def _same_data(doc: dict[str, Any], data: str, run_dir: Path) -> None:
    """A finished run is reused only on the data it was trained on (meta data and size/mtime, when recorded)."""
    from mdn_snntorch.pipeline.run_data import data_changes
    from mdn_snntorch.spikefile import SpikeDataset

    if "data_meta" not in doc:
        return
    changes = data_changes(doc["data_meta"], doc.get("data_identity"), SpikeDataset(data, "train").identity)
    if changes:
        raise ValueError(f"{run_dir} holds a run trained on another version of {data} ({'; '.join(changes)}): remove it")


def evaluate(
    data_paths: Sequence[str | Path],
    neurons: Sequence[str] = meta_neurons.PAPER_NEURONS,
    seeds: int | Sequence[int] = 5,
    out_dir: str | Path = "evaluation",
    *,
    libraries: Sequence[str | Path] = (),
    progress: bool = True,
    jobs: int = 1,
    kinds: Mapping[str, str | None] | None = None,
    score: str = "accuracy",
    report: str = "final",
    protocol: str = "paper",
    **train_settings,
) -> dict[str, Any]:
    """Train ``neurons`` x ``data_paths`` x ``seeds`` and write Table 3, capabilities and figures.

    ``neurons``: preset names or names of neurons in ``libraries``. ``seeds``: a count (0..n-1) or a list.
    ``train_settings``: :class:`TrainConfig` fields applied to every run; otherwise each task takes its
    data set's recipe when it has one. Returns the ``results.json`` document. ``out_dir`` is claimed
    (checked and locked, :func:`~mdn_snntorch.runlock.claim_dir`) for the whole evaluation.
    ``jobs``: runs trained at a time; above 1 each in its own worker process
    (:func:`~mdn_snntorch.pipeline.jobs.run_jobs`; ``mdn evaluate`` defaults to
    :func:`~mdn_snntorch.pipeline.jobs.default_jobs`). Every run uses ``threads`` threads (default 1),
    so the results do not depend on ``jobs``.
    ``kinds``: task -> ``"spatial"``, ``"temporal"`` or None, setting the kinds taken from the data sets
    (:func:`task_kinds`). ``score``: ``"accuracy"``, or ``"cosine"`` for the cosine score on the tasks whose
    runs record one (bit-vector targets), ``"cosine_first_of_5"`` for it on the authors' scored subset where the
    runs record that; ``report``: ``"final"``, ``"best"`` or ``"last10"`` (:data:`REPORT_WORDS`). Both are read
    from the runs' metrics, so finished runs are reused either way.
    ``protocol``: the training regime of every run (:func:`~mdn_snntorch.pipeline.protocols.protocol_settings`, for
    each task's file), between the recipe and ``train_settings``.
    """
    _check_choice("score", score, SCORES)
    _check_choice("report", report, REPORTS)
    with claim_dir(out_dir, "output directory"):
        return _evaluate(
            data_paths,
            neurons,
            seeds,
            out_dir,
            libraries=libraries,
            progress=progress,
            jobs=jobs,
            kinds=kinds,
            score=score,
            report=report,
            protocol=protocol,
            **train_settings,
        )


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _evaluate(
    data_paths: Sequence[str | Path],
    neurons: Sequence[str],
    seeds: int | Sequence[int],
    out_dir: str | Path,
    *,
    libraries: Sequence[str | Path],
    progress: bool,
    jobs: int,
    kinds: Mapping[str, str | None] | None,
    score: str,
    report: str,
    protocol: str,
    **train_settings,
) -> dict[str, Any]:
    from mdn_snntorch.spikefile import read_meta

    out_dir = Path(out_dir)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds or not neurons or not data_paths:
        raise ValueError("evaluate needs at least one data file, one neuron and one seed")
    specs = {name: factory.to_json(factory.lookup(name, [str(p) for p in libraries])) for name in neurons}
    tasks = dict(zip(task_names(data_paths), (str(p) for p in data_paths)))
    task_kind = task_kinds(tasks, kinds)
    plan = [(task, path, neuron, seed) for task, path in tasks.items() for neuron in neurons for seed in seeds]
    configs, metrics, reused = [], [], []
    for task, path, neuron, seed in plan:  # every run's settings, and the finished ones, before any training
        settings = {}
        recipe = recipes.canonical(str(read_meta(path)["dataset"]))
        if recipe:
            settings.update(recipes.settings(recipe), recipe=recipe)
        settings.update(protocol_settings(protocol, path, specs[neuron]))
        settings.update(train_settings)
        settings["threads"] = settings.get("threads") or 1  # a fixed count: the same results for any --jobs
        run_dir = _run_dir(out_dir, task, path, neuron, seed)
        config = TrainConfig(
            data=path, out=str(run_dir), neuron=specs[neuron], seed=seed, resume=True, progress=False, **settings
        )
        done = _reusable_run(run_dir, config)
        configs.append(config)
        metrics.append(done["epochs"] if done is not None else None)
        reused.append(done is not None)
    _train_runs(plan, configs, metrics, jobs, progress)
    runs: list[dict[str, Any]] = []
    for (task, _, neuron, seed), config, run_metrics, was_reused in zip(plan, configs, metrics, reused):
        last = run_metrics[-1]
        runs.append(
            {
                "task": task,
                "neuron": neuron,
                "seed": seed,
                "test_acc": last["test_acc"],
                "test_cosine": last.get("test_cosine"),
                "best_test_acc": max(m["test_acc"] for m in run_metrics),
                "summary": summarise(run_metrics),
                "train_acc": last["train_acc"],
                "train_loss": last["train_loss"],
                "hidden_rate": last["test_hidden_rate"],
                "output_rate": last["test_output_rate"],
                "epochs": last["epoch"],
                "epoch_time_s": float(np.mean([m["epoch_time_s"] for m in run_metrics])),
                "reused": was_reused,
                "run_dir": config.out,
            }
        )
    return _write_results(out_dir, tasks, list(neurons), seeds, runs, task_kind, score, report)


def _train_metrics(config: TrainConfig) -> list[dict[str, Any]]:
    """One training run's per-epoch metrics (a job of :func:`mdn_snntorch.pipeline.jobs.run_jobs`)."""
    return train(config).metrics


def _train_runs(plan: list[tuple], configs: list[TrainConfig], metrics: list, jobs: int, progress: bool) -> None:
    """Train the runs whose ``metrics`` are None, ``jobs`` at a time, filling in their metrics; one progress
    bar over all runs, the reused ones counted at once."""
    todo = [i for i, m in enumerate(metrics) if m is None]
    jobs = max(1, min(jobs, len(todo)))
    bar = tqdm(total=len(plan), desc="evaluate", unit="run", disable=not progress, file=sys.stderr)
    bar.update(len(plan) - len(todo))
    if todo and jobs > 1:
        from mdn_snntorch.fused import c_kernels

        c_kernels.library()  # built (or checked) once here, before the workers start and load it
    running = [printable(f"{plan[i][0]} {plan[i][2]} seed {plan[i][3]}") for i in todo]
    bar.set_postfix_str(f"{min(jobs, len(todo))} at a time" if jobs > 1 else (running[0] if running else ""))

    def done(k: int, result: list[dict[str, Any]]) -> None:
        metrics[todo[k]] = result
        bar.update(1)
        if jobs == 1 and k + 1 < len(todo):
            bar.set_postfix_str(running[k + 1])

    try:
        logs = [Path(configs[i].out) / JOB_LOG for i in todo]  # a failed run's traceback, in its folder
        run_jobs(_train_metrics, [configs[i] for i in todo], jobs, done, labels=running, logs=logs)
    finally:
        bar.close()


def task_score(runs: Sequence[Mapping[str, Any]], score: str) -> str:
    """The score a task's numbers use: the one asked for when every run of the task records it (a cosine score
    needs bit-vector targets, the scored subset ``--protocol authors``), else ``"accuracy"``."""
    if runs and all(run_value(r, score, "final") is not None for r in runs):
        return score
    return "accuracy"


def run_value(run: Mapping[str, Any], score: str, report: str) -> float | None:
    """A run record's ``score`` (:data:`SCORES`) as ``report`` (:data:`REPORTS`) has it; None when the run does
    not record that score. Records written before runs kept a ``summary`` give their final values (and the
    best accuracy) only: ``ValueError`` naming the run for any other."""
    series = SCORE_SERIES[score]
    summary = run.get("summary")
    if summary is not None:
        values = summary.get(series)
        return None if values is None else float(values[report])
    if report == "final":
        return run.get(series)
    if report == "best" and score == "accuracy":
        return run["best_test_acc"]
    raise ValueError(f"the run {run.get('run_dir', run.get('neuron'))} records final values only: it cannot report {report!r}")


def _write_results(
    out_dir: Path,
    tasks: dict[str, str],
    neurons: list[str],
    seeds: list[int],
    runs: list[dict[str, Any]],
    kinds: dict[str, str | None],
    score: str = "accuracy",
    report: str = "final",
) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    caps: dict[str, dict[str, float]] = {}
    scores: dict[str, str] = {}
    for task in tasks:
        scores[task] = task_score([r for r in runs if r["task"] == task], score)
        table[task] = {}
        for neuron in neurons:
            cell = [r for r in runs if r["task"] == task and r["neuron"] == neuron]
            acc = np.array([run_value(r, scores[task], report) for r in cell], dtype=np.float64) * 100
            table[task][neuron] = {
                "mean": float(acc.mean()),
                "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "n": int(len(acc)),
            }
        caps[task] = capability({n: table[task][n]["mean"] for n in neurons})
    doc = {
        "tasks": tasks,
        "kinds": {t: kinds.get(t) for t in tasks},
        "neurons": neurons,
        "seeds": seeds,
        "score": scores,
        "report": report,
        "accuracy_percent": table,
        "capability": caps,
        "group_capability": group_capability(caps, kinds),
        "runs": runs,
    }
    write_json(out_dir / "results.json", doc)
    write_json(out_dir / "runs.json", runs)
    write_csv(out_dir / "runs.csv", runs)
    write_atomic(out_dir / "table.md", markdown_table(doc))
    _figures(out_dir, doc)
    return doc


def combine(
    sources: Sequence[str | Path | tuple[str, str | Path]],
    out_dir: str | Path,
    neurons: Sequence[str] | None = None,
    report: str | None = None,
) -> dict[str, Any]:
    """Table 3, capabilities and figures in ``out_dir`` from the ``results.json`` of finished evaluations.

    A source is an evaluation folder, or ``(label, folder)`` naming the folder's one task ``label``
    (to tell apart, say, the same data set with spikes and with analog input). ``neurons``: the neuron
    types to keep (default: those every source evaluated, in the first source's order). A task's kind
    and score are the ones its evaluation recorded; ``report`` (:data:`REPORTS`) defaults to the one the sources
    recorded (``"final"`` for sources older than the choice). ``ValueError`` naming the folder when a source
    has no results, a task name repeats, or a neuron is missing. ``out_dir`` is claimed
    (:func:`~mdn_snntorch.runlock.claim_dir`) while the files are written: a folder another run holds
    (an evaluation, another combine) is refused with :class:`~mdn_snntorch.runlock.LockedError`."""
    tasks: dict[str, str] = {}
    kinds: dict[str, str | None] = {}
    runs: list[dict[str, Any]] = []
    seeds: set[int] = set()
    docs = []
    for source in sources:
        label, folder = source if isinstance(source, tuple) else (None, source)
        path = Path(folder) / "results.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not the results of an evaluation ({err})") from None
        if label is not None and len(doc["tasks"]) != 1:
            raise ValueError(f"{path}: a label names one task, but this evaluation has {len(doc['tasks'])}")
        for task, data in doc["tasks"].items():
            name = label or task
            if name in tasks:
                raise ValueError(f"{path}: task {name!r} is also in an earlier source; give it a label (LABEL=FOLDER)")
            tasks[name] = data
            kinds[name] = doc.get("kinds", {}).get(task)
            runs += [{**r, "task": name} for r in doc["runs"] if r["task"] == task]
        seeds.update(doc["seeds"])
        docs.append((path, doc))
    if not docs:
        raise ValueError("combine needs at least one evaluation folder")
    common = [n for n in docs[0][1]["neurons"] if all(n in d["neurons"] for _, d in docs)]
    for name in neurons or ():
        missing = [str(p) for p, d in docs if name not in d["neurons"]]
        if missing:
            raise ValueError(f"neuron {name!r} is not in the evaluation(s) {', '.join(missing)}")
    keep = list(neurons) if neurons else common
    if not keep:
        raise ValueError("the evaluations share no neuron type")
    recorded = {s for _, d in docs for s in d.get("score", {}).values()}
    score = next((s for s in reversed(SCORES) if s in recorded), "accuracy")
    if report is None:
        reports = {d.get("report", "final") for _, d in docs}
        if len(reports) > 1:
            raise ValueError(f"the evaluations report different epochs ({', '.join(sorted(reports))}); choose one (report)")
        report = reports.pop()
    _check_choice("report", report, REPORTS)
    with claim_dir(out_dir, "output directory"):  # checked and locked, like every other writer's output
        return _write_results(
            Path(out_dir), tasks, keep, sorted(seeds), [r for r in runs if r["neuron"] in keep], kinds, score, report
        )


def _kinds_present(doc: dict[str, Any]) -> list[str]:
    kinds = doc.get("kinds") or {}
    return [k for k in KIND_NAMES if k in kinds.values()]


def markdown_table(doc: dict[str, Any]) -> str:
    """Table 3 (score %, mean +- std over seeds), the capability per task and by kind (Fig. 8), as Markdown."""
    neurons, tasks = doc["neurons"], list(doc["tasks"])
    scores, kinds = doc.get("score") or {}, doc.get("kinds") or {}
    counts = {doc["accuracy_percent"][t][n]["n"] for t in tasks for n in neurons}
    n_per_cell = counts.pop() if len(counts) == 1 else None
    over = f"{n_per_cell} seed(s)" if n_per_cell is not None else "seeds (n per cell)"
    head = "| task | " + " | ".join(map(md_cell, neurons)) + " |\n|---|" + "---|" * len(neurons) + "\n"
    acc_rows = "".join(
        f"| {md_cell(t)} | "
        + " | ".join(_cell(doc["accuracy_percent"][t][n], show_n=n_per_cell is None) for n in neurons)
        + " |\n"
        for t in tasks
    )
    cap_rows = "".join(
        f"| {md_cell(t)} | " + " | ".join(f"{doc['capability'][t][n]:+.2f}" for n in neurons) + " |\n" for t in tasks
    )
    cosine = [t for t in tasks if scores.get(t, "accuracy") != "accuracy"]
    what = "Test score" if cosine else "Test accuracy"
    note = "Score: " + "; ".join(
        f"{SCORE_WORDS[s]} on {', '.join(md_cell(t) for t in tasks if scores.get(t, 'accuracy') == s)}"
        for s in SCORES
        if any(scores.get(t, "accuracy") == s for t in tasks)
    )
    note += f". Each run's value: its {REPORT_WORDS[doc.get('report', 'final')]}.\n\n"
    kind_line = "Task kinds: " + ", ".join(f"{md_cell(t)} {kinds.get(t) or 'none'}" for t in tasks) + ".\n\n"
    present = _kinds_present(doc)
    group = doc.get("group_capability") or {}
    if present:
        group_head = "| neuron | " + " | ".join(present) + " |\n|---|" + "---|" * len(present) + "\n"
        group_rows = "".join(
            f"| {md_cell(n)} | " + " | ".join(f"{group[n][k]:+.2f}" for k in present) + " |\n" for n in neurons if n in group
        )
        group_table = group_head + group_rows
    else:
        group_table = "No task has a kind (`--kind TASK=spatial|temporal` gives one).\n"
    return (
        f"## {what} (%), mean +- std over {over}\n\n{note}{head}{acc_rows}\n"
        f"## Capability (paper Eq. 7: (Acc - mean) / std over the neuron types of a task)\n\n{head}{cap_rows}\n"
        "## Capability by kind (paper Fig. 8)\n\n"
        f"The mean of a neuron's Eq. 7 capability over the tasks of each kind. {kind_line}{group_table}"
    )


def _cell(entry: Mapping[str, Any], show_n: bool) -> str:
    text = f"{entry['mean']:.2f} +- {entry['std']:.2f}"
    return f"{text} (n={entry['n']})" if show_n else text


def _figures(out_dir: Path, doc: dict[str, Any]) -> None:
    """``accuracy.png`` (with the group means of Figs. 6-7), ``capability_per_task.png``, ``capability.png`` (Fig. 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neurons, tasks = doc["neurons"], list(doc["tasks"])
    scores = doc.get("score") or {}
    x = np.arange(len(tasks))
    width = 0.8 / len(neurons)
    size = (max(6, 1.6 * len(tasks) * max(1, len(neurons) / 3)), 4)
    cosine = any(scores.get(t, "accuracy") != "accuracy" for t in tasks)
    for name, title, value, err in (
        (
            "accuracy.png",
            "test score (mean +- std over seeds; cosine score where marked)"
            if cosine
            else "test accuracy (mean +- std over seeds)",
            lambda t, n: doc["accuracy_percent"][t][n]["mean"],
            lambda t, n: doc["accuracy_percent"][t][n]["std"],
        ),
        ("capability_per_task.png", "capability per task (paper Eq. 7)", lambda t, n: doc["capability"][t][n], None),
    ):
        fig, ax = plt.subplots(figsize=size)
        for k, neuron in enumerate(neurons):
            ax.bar(
                x + (k - (len(neurons) - 1) / 2) * width,
                [value(t, neuron) for t in tasks],
                width,
                yerr=[err(t, neuron) for t in tasks] if err else None,
                capsize=3,
                label=printable(neuron),
                color=plt.cm.tab20(k % 20),
            )
        labels = [f"{t} (cosine)" if scores.get(t, "accuracy") != "accuracy" else t for t in tasks] if err else tasks
        ax.set_xticks(x, [printable(label) for label in labels])
        ax.set_title(title)
        ax.set_ylabel(("score (%)" if cosine else "accuracy (%)") if err else "capability")
        if err:
            for (label, members), color in zip(GROUPS.items(), ("k", "tab:purple")):
                if all(m in neurons for m in members):  # the group's mean accuracy over its members, per task
                    means = [float(np.mean([value(t, m) for m in members])) for t in tasks]
                    ax.hlines(means, x - 0.45, x + 0.45, colors=color, linestyles="--", lw=1.2, label=label)
            low = min(value(t, n) for t in tasks for n in neurons)
            ax.set_ylim(max(0, low - 10), 100)
        else:
            ax.axhline(0, color="k", lw=0.8)
        ax.legend(fontsize=8, ncol=min(6, len(neurons) + (2 if err else 0)), loc="upper center", bbox_to_anchor=(0.5, -0.1))
        save_figure(fig, out_dir / name)

    capability_figure(doc.get("group_capability") or {}, out_dir / "capability.png", neurons)
