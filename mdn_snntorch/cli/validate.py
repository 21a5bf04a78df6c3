"""``mdn validate``: cross-check meta neurons (and a trained network) against Brian2 and write the report.

Exit status: 0 when every check passes, 1 when one fails, 2 for unusable arguments or input files
(a neuron name is looked up like everywhere else, :func:`mdn_snntorch.neurons.factory.lookup`: a library
neuron named like a preset is refused). ``--out`` is claimed (checked and locked) before anything runs.
"""

from __future__ import annotations

import argparse
import sys

from mdn_snntorch import meta_neurons
from mdn_snntorch.cli.options import int_in, seed
from mdn_snntorch.neurons import factory
from mdn_snntorch.runlock import claim_dir
from validation.report import run_validation
from validation.run import FULL, QUICK, replace_settings
from validation.summary import summary_lines
from validation.targets import TARGETS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--library", metavar="LIB.json", help="a meta-neuron library: validate its neurons (all, or those --neurons names)"
    )
    parser.add_argument(
        "--neurons",
        nargs="+",
        metavar="NAME",
        help=f"neurons to validate: presets ({', '.join(meta_neurons.PRESETS)}) or, with --library, its neurons "
        f"(default: every neuron of the library, else {' '.join(meta_neurons.PAPER_NEURONS)})",
    )
    parser.add_argument("--checkpoint", metavar="RUN", help="a training run directory or checkpoint file to replay in Brian2")
    parser.add_argument("--data", metavar="TEST.h5", help="the spike file whose test split the network is replayed on")
    parser.add_argument(
        "--samples", type=int_in("samples", 1, 10**6), default=200, help="test samples for the network replay (default 200)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output directory for report.md/html, figures and metrics.json"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes for CI: {QUICK.per_type} neurons per type, {QUICK.steps} steps, numpy target",
    )
    parser.add_argument(
        "--per-type",
        type=int_in("per_type", 4, 10**6),
        help=f"neurons per type (default {FULL.per_type}, quick {QUICK.per_type})",
    )
    parser.add_argument("--steps", type=int_in("steps", 1, 10**6), help=f"time steps (default {FULL.steps}, quick {QUICK.steps})")
    parser.add_argument(
        "--targets", nargs="+", choices=TARGETS, help="Brian2 targets, the first is the reference (default: all; quick: numpy)"
    )
    parser.add_argument(
        "--cache-dir", help="root of the per-mode Brian2 Cython caches (default ~/.cache/mdn_snntorch or $MDN_BRIAN2_CACHE)"
    )
    parser.add_argument("--seed", type=seed, default=0, help="seed of the stimuli and random theta (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"mdn validate: error: {message}", file=sys.stderr)
        return 2

    if (args.checkpoint is None) != (args.data is None):
        return fail("--checkpoint and --data go together")
    for name in ("samples", "per_type", "steps"):
        value = getattr(args, name)
        if value is not None and value < (4 if name == "per_type" else 1):
            return fail(f"--{name.replace('_', '-')} must be at least {4 if name == 'per_type' else 1}, got {value}")
    try:
        neurons = _neurons(args)
    except (KeyError, ValueError, FileNotFoundError) as e:
        return fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    if not neurons:
        return fail(f"{args.library}: the library holds no neurons")
    settings = replace_settings(
        QUICK if args.quick else FULL,
        per_type=args.per_type,
        steps=args.steps,
        targets=tuple(args.targets) if args.targets else None,
    )
    try:
        with claim_dir(args.out, "output directory"):
            result = run_validation(
                neurons, args.out, settings=settings, checkpoint=args.checkpoint, data=args.data, samples=args.samples,
                seed=args.seed, cache_root=args.cache_dir, progress=not args.no_progress,
            )  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        return fail(str(e))
    print("\n".join(summary_lines(result)))
    print(f"report: {args.out}/report.md, {args.out}/report.html, {args.out}/metrics.json")
    return 0 if result["passed"] else 1


def _neurons(args: argparse.Namespace) -> list[meta_neurons.MetaNeuron]:
    """The neurons to validate: ``--neurons`` (presets, or neurons of ``--library``), else every neuron of the
    library, else the paper's; each name resolved by :func:`factory.lookup` (ambiguous names refused)."""
    libraries = [args.library] if args.library else []
    names = args.neurons or (meta_neurons.load_library(args.library).names if args.library else meta_neurons.PAPER_NEURONS)
    neurons = []
    for name in names:
        spec = factory.lookup(name, libraries)
        if spec == factory.LEARNABLE:
            raise ValueError("'learnable' has no fixed theta to validate; validate a preset or a library neuron")
        neurons.append(factory.meta_neuron(spec))
    return neurons
