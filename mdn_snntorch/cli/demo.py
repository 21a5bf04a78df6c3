"""``mdn demo``: the paper's pipeline end to end on embedded data (paper §3.3-§4; docs/model.md).

1. prepare a spatial task (scikit-learn digits, rate-coded) and a temporal task (the same digits
   read one row per time step) as HDF5 spike files;
2. generate meta neurons from each (learnable theta, MeanShift + KMeans, filtered by dynamics);
3. train the paper's four presets, the generated neurons and the 1st-order neuron on both tasks
   over several seeds: a Table 3-style table and each neuron's capability (paper Eq. 7);
4. validate the preset and generated neurons against Brian2;
5. write ``report.html`` (self-contained) and ``report.md`` with the tables and figures.

Every step keeps its outputs under ``OUT/<mode>/`` and is skipped (or, for training runs, resumed)
when they are already there, so a second run only rebuilds the report.

``--jobs N`` (default: the usable cores): steps 2 and 3 train N runs at a time, each in a worker process
with one thread (``--threads``), and step 4 runs beside step 3 in one more process; ``--jobs 1`` runs
everything in this process, one after the other. The results are the same for any N
(docs/performance.md#determinism-and-threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdn_snntorch import meta_neurons
from mdn_snntorch.cli.options import int_in
from mdn_snntorch.pipeline.protocols import PROTOCOLS
from mdn_snntorch.pipeline.report import Report, write_atomic
from mdn_snntorch.printable import printable

# The four Table 2 presets and the baseline; "init" is validated too (it seeds learnable theta).
PRESET_NEURONS = list(meta_neurons.PAPER_NEURONS)
VALIDATED_PRESETS = ["2-FS", "2-RS", "2-SDS", "2-WDS", "init", "1st-order"]


@dataclass(frozen=True)
class DemoSettings:
    """Training sizes of one demo mode (for the embedded digits tasks)."""

    epochs: int
    hidden: int
    batch_size: int
    lr: float
    lr_theta: float
    seeds: int
    discover_seeds: int
    discover_epochs: int
    quick_validation: bool


# eta_D = 1e-3 as the paper's MNIST row: a larger one drives theta_d negative on digits (every
# candidate then a runaway, U falling with each spike) and leaves the spatial library empty.
FULL = DemoSettings(
    epochs=12,
    hidden=100,
    batch_size=32,
    lr=1e-2,
    lr_theta=1e-3,
    seeds=3,
    discover_seeds=2,
    discover_epochs=12,
    quick_validation=False,
)
QUICK = DemoSettings(
    epochs=4,
    hidden=48,
    batch_size=64,
    lr=1e-2,
    lr_theta=1e-3,
    seeds=2,
    discover_seeds=1,
    discover_epochs=4,
    quick_validation=True,
)


def _say(message: str) -> None:
    print(printable(f"[mdn demo] {message}"), file=sys.stderr, flush=True)


def prepare_data(work: Path, spatial: str | None, temporal: str | None) -> dict[str, Path]:
    """The two task files: the user's, or the embedded digits tasks built once under ``work/data``."""
    from data_prep import digits, digits_rows

    tasks = {}
    for role, given, convert, name in (
        ("spatial", spatial, digits.convert, "digits.h5"),
        ("temporal", temporal, digits_rows.convert, "digits_rows.h5"),
    ):
        if given:
            tasks[role] = Path(given)
        else:
            path = work / "data" / name
            tasks[role] = path if path.exists() else convert(path)
    return tasks


def _discover_job(job: tuple[Path, Path, int, dict[str, Any]]) -> Path:
    """One library (a job of :func:`mdn_snntorch.pipeline.jobs.run_jobs`)."""
    from mdn_snntorch.pipeline.discover import discover

    data, path, seeds, train_settings = job
    discover(data, path, seeds=seeds, **train_settings)
    return path


def generate_libraries(
    work: Path,
    tasks: dict[str, Path],
    settings: DemoSettings | None,
    jobs: int = 1,
    threads: int = 1,
    protocol: str = "paper",
) -> dict[str, Path]:
    """One meta-neuron library per source task (``spatial.json``, ``temporal.json``), ``jobs`` at a time,
    ``threads`` threads per training run, generated under ``protocol``
    (:func:`~mdn_snntorch.pipeline.discover.discover`)."""
    from mdn_snntorch.pipeline.jobs import run_jobs

    libraries, todo = {}, []
    for role, data in tasks.items():
        path = work / f"{role}.json"
        if not path.exists():
            _say(f"generating {role} meta neurons from {data.name}")
            train_settings: dict[str, Any] = {"progress": False, "threads": threads, "protocol": protocol}
            if settings:
                train_settings.update(
                    epochs=settings.discover_epochs,
                    hidden=settings.hidden,
                    batch_size=settings.batch_size,
                    lr=settings.lr,
                    lr_theta=settings.lr_theta,
                )
            todo.append((data, path, settings.discover_seeds if settings else 1, train_settings))
        libraries[role] = path
    labels = [f"meta-neuron generation from {job[0]}" for job in todo]
    run_jobs(_discover_job, todo, jobs, labels=labels, logs=[job[1].with_suffix(".error.log") for job in todo])
    return libraries


def _validation_job(job: tuple[Path, list[meta_neurons.MetaNeuron], bool]) -> dict[str, Any]:
    """:func:`validate_neurons` in a worker process, without its progress bar (the training has one)."""
    return validate_neurons(*job, progress=False)


def previous_validation(work: Path, neurons: list[meta_neurons.MetaNeuron]) -> dict[str, Any] | None:
    """The previous Brian2 result in ``work``, when it covered the same neurons; else None."""
    previous = work / "validation" / "metrics.json"
    if previous.exists():
        doc = json.loads(previous.read_text())
        if doc.get("settings", {}).get("neurons") == [n.to_dict() for n in neurons]:
            return doc
    return None


def validate_neurons(work: Path, neurons: list[meta_neurons.MetaNeuron], quick: bool, progress: bool = True) -> dict[str, Any]:
    """Brian2 cross-check of ``neurons``; reuses the previous result when it covered the same neurons."""
    from validation.report import run_validation

    return previous_validation(work, neurons) or run_validation(neurons, work / "validation", quick=quick, progress=progress)


def run_demo(
    out: str | Path = "demo_out",
    *,
    quick: bool = False,
    spatial: str | None = None,
    temporal: str | None = None,
    jobs: int | None = None,
    threads: int = 1,
    protocol: str = "paper",
) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; returns the summary written to ``OUT/summary.json``.

    ``jobs``: training runs at a time, each in a worker process (default: the usable cores / ``threads``);
    ``threads``: CPU threads per training run (default 1). The results depend on ``threads``, not on ``jobs``
    (docs/performance.md#determinism-and-threads). ``protocol``: ``"paper"`` or ``"authors"``, for the
    generation and the evaluation (:mod:`~mdn_snntorch.pipeline.protocols`) where the demo's own settings
    (epochs, hidden size, batch, learning rate) leave it a say: the schedule's step, fresh spikes, the
    undetached reset, the authors' clustering and 1st-order neuron; its runs go to their own folder."""
    from mdn_snntorch.pipeline.evaluate import evaluate
    from mdn_snntorch.pipeline.jobs import Background, default_jobs
    from mdn_snntorch.pipeline.protocols import protocol_neurons

    out = Path(out)
    mode = ("quick" if quick else "full") + ("" if protocol == "paper" else f"_{protocol}")
    work = out / mode
    settings = QUICK if quick else FULL
    embedded = not spatial and not temporal
    timings: dict[str, float] = {}
    jobs = jobs or default_jobs("auto", threads)

    t0 = time.perf_counter()
    _say(f"1/5 data ({'embedded digits' if embedded else 'your files'})")
    tasks = prepare_data(work, spatial, temporal)
    timings["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _say("2/5 meta-neuron generation")
    libraries = generate_libraries(work, tasks, settings if embedded else None, jobs, threads, protocol)
    generated = {role: meta_neurons.load_library(path) for role, path in libraries.items()}
    timings["generation"] = time.perf_counter() - t0

    to_validate = [meta_neurons.get(n) for n in VALIDATED_PRESETS] + [n for lib in generated.values() for n in lib.neurons]
    background = None
    if jobs > 1 and previous_validation(work, to_validate) is None:  # it needs only the neurons: beside the training
        background = Background(_validation_job, (work, to_validate, settings.quick_validation), "the Brian2 validation")

    t0 = time.perf_counter()
    presets = [n for n in protocol_neurons(protocol) if n in PRESET_NEURONS or n == "1st-order-0.2"]
    neurons = presets + [n.name for lib in generated.values() for n in lib.neurons]
    _say(
        f"3/5 training {len(neurons)} neuron types x {len(tasks)} tasks x {settings.seeds} seeds "
        f"({jobs} at a time, {threads} thread{'s' if threads > 1 else ''} each)"
        + ("; 4/5 Brian2 validation beside it, in one more process" if background is not None else "")
    )
    train_settings = (
        dict(epochs=settings.epochs, hidden=settings.hidden, batch_size=settings.batch_size, lr=settings.lr) if embedded else {}
    )
    try:
        evaluation = evaluate(
            [tasks["spatial"], tasks["temporal"]],
            neurons,
            settings.seeds,
            work / "evaluation",
            libraries=[libraries["spatial"], libraries["temporal"]],
            jobs=jobs,
            threads=threads,
            protocol=protocol,
            **train_settings,
        )
    except BaseException:
        if background is not None:
            background.cancel()
        raise
    timings["evaluation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if background is None:
        _say("4/5 Brian2 validation")
        validation = validate_neurons(work, to_validate, settings.quick_validation)
    else:
        _say("4/5 Brian2 validation: waiting for it to finish")
        validation = background.result()
    timings["validation" if background is None else "validation_after_training"] = time.perf_counter() - t0

    _say("5/5 report")
    summary = {
        "mode": mode,
        "protocol": protocol,
        "settings": dataclasses.asdict(settings) if embedded else "Table 1 defaults per data set",
        "tasks": {role: str(p) for role, p in tasks.items()},
        "task_names": list(evaluation["tasks"]),
        "libraries": {role: {"path": str(p), "neurons": generated[role].names} for role, p in libraries.items()},
        "neurons": neurons,
        "accuracy_percent": evaluation["accuracy_percent"],
        "capability": evaluation["capability"],
        "group_capability": evaluation["group_capability"],
        "validation_passed": bool(validation["passed"]),
        "validation": {"passed": bool(validation["passed"]), "report": str(work / "validation" / "report.html")},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "jobs": jobs,
        "threads_per_run": threads,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    _write_report(out, work, summary, evaluation, generated, libraries, validation)
    return summary


def _write_report(
    out: Path, work: Path, summary: dict, evaluation: dict, generated: dict, libraries: dict, validation: dict
) -> None:
    from mdn_snntorch.pipeline.evaluate import markdown_table
    from mdn_snntorch.spikefile import SpikeDataset

    report = Report("Meta-Dynamic Neurons: demo report")
    report.paragraph(
        f"Mode: {summary['mode']}. Machine: {summary['machine']}. Step times (s): "
        + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items())
        + f". Training settings: {summary['settings']}."
    )
    report.heading("Tasks")
    rows = []
    for role, name in zip(("spatial", "temporal"), summary["task_names"]):
        ds = SpikeDataset(summary["tasks"][role], "train")
        test = SpikeDataset(summary["tasks"][role], "test")
        rows.append([role, name, ds.n_inputs, ds.time_steps, ds.num_classes, len(ds), len(test)])
    report.table(["role", "task", "inputs", "time steps", "classes", "train", "test"], rows)

    report.heading("Generated meta neurons")
    for role, lib in generated.items():
        clustering = lib.provenance.get("clustering", {})
        centres = " x ".join(str(clustering.get(p, {}).get("num_centres", "?")) for p in ("ab", "cd"))
        candidates = lib.provenance.get("selection", {}).get("candidates", [])
        dropped = [c for c in candidates if c.get("status") == "dropped"]
        report.paragraph(
            f"{role} library ({libraries[role].name}): (theta_a, theta_b) x (theta_c, theta_d) centres = {centres}; "
            f"{len(candidates)} candidates, {len(lib.neurons)} kept, {len(dropped)} dropped"
            + (": " + "; ".join(f"{c['id']}: {c['reason']}" for c in dropped) if dropped else ".")
        )
        report.table(
            ["name", "theta_a", "theta_b", "theta_c", "theta_d", "description"],
            [[n.name, *(f"{t:.4f}" for t in n.theta), n.description] for n in lib.neurons],
        )
        for suffix, caption in (
            ("_fig3.png", "theta of every hidden and output neuron with the cluster centres (paper Fig. 3)"),
            ("_fig4.png", "V, U, input and attractor of each kept neuron under the sine input (paper Fig. 4)"),
        ):
            figure = libraries[role].with_name(libraries[role].stem + suffix)
            if figure.exists():
                report.figure(figure, f"{role}: {caption}")

    report.heading("Accuracy and capability (paper Table 3, Eq. 7)")
    report.code(markdown_table(evaluation))
    for name, caption in (
        ("accuracy.png", "test accuracy per neuron and task, with the spatial and temporal group means (paper Figs. 6-7)"),
        ("capability.png", "spatial and temporal capability per neuron (paper Fig. 8)"),
        ("capability_per_task.png", "capability per neuron and task (paper Eq. 7)"),
    ):
        report.figure(work / "evaluation" / name, caption)

    report.heading("Brian2 validation")
    report.paragraph(
        f"Overall: {'PASS' if validation['passed'] else 'FAIL'}. "
        f"Full report: {Path(summary['validation']['report']).relative_to(out)}"
    )
    checks = validation.get("checks", [])
    if checks:
        report.table(
            ["check", "result", "detail"],
            [[c.get("name", ""), "PASS" if c.get("passed") else "FAIL", c.get("detail", "")] for c in checks],
        )
    report.write(out)


def _print_summary(out: Path, summary: dict) -> None:
    tasks = summary["task_names"]
    shown = {name: printable(name) for name in [*tasks, *summary["neurons"]]}  # names from files, escaped
    groups = summary["group_capability"]
    kinds = [k for k in ("spatial", "temporal") if any(g.get(k) is not None for g in groups.values())]
    width = max(len(shown[n]) for n in summary["neurons"])
    print(f"\n{'neuron':<{width}}  " + "  ".join(f"{shown[t]:>18}" for t in tasks) + "".join(f"  {k:>8}" for k in kinds))
    for neuron in summary["neurons"]:
        cells = []
        for t in tasks:
            cell = summary["accuracy_percent"][t][neuron]
            cells.append(f"{cell['mean']:6.2f} +- {cell['std']:5.2f} ({summary['capability'][t][neuron]:+.1f})")
        fig8 = "".join(f"  {groups[neuron][k]:>+8.2f}" for k in kinds)
        print(f"{shown[neuron]:<{width}}  " + "  ".join(f"{c:>18}" for c in cells) + fig8)
    print("(test accuracy %, mean +- std over seeds; capability per task in brackets; then spatial and temporal")
    print(" capability, paper Fig. 8)")
    print(f"Brian2 validation: {'PASS' if summary['validation_passed'] else 'FAIL'}")
    print(printable(f"Report: {out / 'report.html'} (and report.md)"))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--quick", action="store_true", help="smaller settings, a few minutes (what CI runs)")
    parser.add_argument("--spatial", help="use this spike file (e.g. MNIST from `mdn prep mnist`) as the spatial task")
    parser.add_argument("--temporal", help="use this spike file (e.g. `mdn prep tidigits`) as the temporal task")
    parser.add_argument(
        "--jobs",
        type=int_in("jobs", 1, 4096),
        help="training runs at a time, each in a worker process (default: the usable cores / --threads)",
    )
    parser.add_argument(
        "--threads",
        type=int_in("threads", 1, 4096),
        default=1,
        help="CPU threads per training run (default 1; the results depend on it, not on --jobs)",
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="paper",
        help="the training regime where the demo's settings leave it a say: paper (default) or authors (the "
        "paper authors' code: its schedule step, fresh spikes, undetached reset, clustering, 1st-order-0.2)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    if bool(args.spatial) != bool(args.temporal):
        print("mdn demo: give both --spatial and --temporal, or neither", file=sys.stderr)
        return 2
    for flag in ("spatial", "temporal"):
        path = getattr(args, flag)
        if path and not Path(path).exists():
            print(f"mdn demo: --{flag} file {path} does not exist", file=sys.stderr)
            return 2
    out = Path(args.out)
    summary = run_demo(
        out, quick=args.quick, spatial=args.spatial, temporal=args.temporal, jobs=args.jobs, threads=args.threads,
        protocol=args.protocol,
    )  # fmt: skip
    _print_summary(out, summary)
    return 0 if summary["validation_passed"] else 1
