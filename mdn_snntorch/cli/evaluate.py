"""``mdn evaluate``: train every neuron on every task for a Table 3-style table, capability per task (Eq. 7)
and per task kind (spatial, temporal: Fig. 8)."""

from __future__ import annotations

import argparse

from mdn_snntorch import meta_neurons
from mdn_snntorch.cli.options import add_training_arguments, int_in, settings_from_args
from mdn_snntorch.pipeline.evaluate import KIND_NAMES, REPORTS, SCORES, evaluate, markdown_table, task_kinds, task_names
from mdn_snntorch.pipeline.jobs import default_jobs
from mdn_snntorch.pipeline.protocols import protocol_neurons


def task_kind(text: str) -> tuple[str, str | None]:
    """An argparse type: ``TASK=spatial``, ``TASK=temporal`` or ``TASK=none`` (left out of Fig. 8's groups)."""
    task, sep, kind = text.rpartition("=")
    if not sep or not task:
        raise argparse.ArgumentTypeError(f"{text!r} is not TASK=spatial, TASK=temporal or TASK=none")
    if kind not in (*KIND_NAMES, "none"):
        raise argparse.ArgumentTypeError(f"{text!r}: the kind {kind!r} is not one of {', '.join(KIND_NAMES)}, none")
    return task, None if kind == "none" else kind


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="HDF5 spike files, one per task")
    parser.add_argument(
        "--neurons",
        nargs="+",
        help="neuron types: presets and --library names (default: the paper's five, plus every library neuron)",
    )
    parser.add_argument("--library", nargs="+", default=[], help="meta-neuron library JSON(s) (mdn discover)")
    parser.add_argument("--seeds", type=int_in("seeds", 1, 1000), default=5, help="seeds per neuron and task, 0..N-1 (default 5)")
    parser.add_argument("--out", default="evaluation", help="output folder (default evaluation)")
    parser.add_argument(
        "--jobs",
        type=int_in("jobs", 1, 4096),
        help="training runs at a time, each in a worker process (default: the usable cores / --threads; 1 on a GPU); "
        "every run uses --threads threads (default 1 here), so the results do not depend on --jobs",
    )
    parser.add_argument(
        "--kind",
        action="append",
        type=task_kind,
        default=[],
        metavar="TASK=KIND",
        help="a task's kind, spatial or temporal, for the capability by kind (paper Fig. 8), or none to leave "
        "the task out of both groups; repeatable (default: from the data set, e.g. mnist spatial, tidigits temporal)",
    )
    parser.add_argument(
        "--score",
        choices=SCORES,
        default="accuracy",
        help="the table's numbers: test accuracy, or the cosine score on tasks with bit-vector targets "
        "such as NETtalk, on all test samples or on the first of every five (the authors' scored subset, "
        "recorded under --protocol authors) (default accuracy)",
    )
    parser.add_argument(
        "--report",
        choices=REPORTS,
        default="final",
        help="each run's value in the table: its final epoch, its best epoch (chosen on the test split: for "
        "comparison with the authors' figures only) or the mean of its last ten epochs (default final)",
    )
    add_training_arguments(parser)


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    progress = settings.pop("progress", True)
    neurons = args.neurons
    if not neurons:
        library_names = [n for lib in args.library for n in meta_neurons.load_library(lib).names]
        neurons = list(protocol_neurons(args.protocol or "paper")) + library_names
    kinds = dict(args.kind)
    if kinds:  # unknown task names fail here, before any training, naming the option
        task_kinds(dict(zip(task_names(args.data), args.data)), kinds, name="--kind")
    jobs = args.jobs or default_jobs(settings.get("device"), settings.get("threads"))
    doc = evaluate(
        args.data,
        neurons,
        args.seeds,
        args.out,
        libraries=args.library,
        progress=progress,
        jobs=jobs,
        kinds=kinds,
        score=args.score,
        report=args.report,
        protocol=args.protocol or "paper",
        **settings,
    )
    print(markdown_table(doc))
    print(f"written to {args.out}/ (table.md, results.json, runs.csv, accuracy.png, capability_per_task.png, capability.png)")
    return 0
