"""``mdn train``: train the 3-layer SNN on an HDF5 spike file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdn_snntorch.cli.options import add_training_arguments, seed, settings_from_args
from mdn_snntorch.names import folder_name
from mdn_snntorch.neurons import factory
from mdn_snntorch.pipeline import distributed
from mdn_snntorch.pipeline.trainer import TrainConfig, train
from mdn_snntorch.printable import printable
from mdn_snntorch.spikefile import read_meta


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="HDF5 spike file (mdn prep)")
    parser.add_argument("--out", help="run directory for checkpoints and metrics (default: runs/<data>-<neuron>-seed<seed>)")
    parser.add_argument(
        "--neuron", default="2-FS", help="hidden (and output) neuron: a preset, learnable, or a --library neuron (default 2-FS)"
    )
    parser.add_argument("--output-neuron", help="output-layer neuron when it differs from --neuron")
    parser.add_argument("--library", nargs="+", default=[], help="meta-neuron library JSON(s) to look --neuron names up in")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_training_arguments(parser)


def main(args: argparse.Namespace) -> int:
    meta = read_meta(args.data)
    settings = settings_from_args(args, data=args.data)
    neuron = factory.to_json(factory.lookup(args.neuron, args.library))
    output_neuron = factory.to_json(factory.lookup(args.output_neuron, args.library)) if args.output_neuron else None
    out = args.out or str(Path("runs") / folder_name(f"{Path(args.data).stem}-{args.neuron}-seed{args.seed}", "the run name"))
    config = TrainConfig(
        data=args.data, out=out, neuron=neuron, output_neuron=output_neuron, seed=args.seed, resume=args.resume, **settings
    )
    ctx = distributed.context_from_env()
    if ctx.is_main:
        print(printable(f"mdn train: {meta.get('dataset', args.data)} -> {out}"), file=sys.stderr)
    result = train(config)
    if ctx.is_main and result.metrics:
        print(printable(f"test accuracy {100 * result.test_acc:.2f}% after {len(result.metrics)} epochs; run files in {out}"))
    return 0
