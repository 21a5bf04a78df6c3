"""``mdn evaluate``: train every neuron on every task for a Table 3-style table and capability (Eq. 7)."""

from __future__ import annotations

import argparse

from mdn_snntorch import meta_neurons
from mdn_snntorch.cli.options import add_training_arguments, int_in, settings_from_args
from mdn_snntorch.pipeline.evaluate import evaluate, markdown_table
from mdn_snntorch.pipeline.jobs import default_jobs


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
    add_training_arguments(parser)


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    progress = settings.pop("progress", True)
    neurons = args.neurons
    if not neurons:
        library_names = [n for lib in args.library for n in meta_neurons.load_library(lib).names]
        neurons = list(meta_neurons.PAPER_NEURONS) + library_names
    jobs = args.jobs or default_jobs(settings.get("device"), settings.get("threads"))
    doc = evaluate(args.data, neurons, args.seeds, args.out, libraries=args.library, progress=progress, jobs=jobs, **settings)
    print(markdown_table(doc))
    print(f"written to {args.out}/ (table.md, results.json, runs.csv, accuracy.png, capability.png)")
    return 0
