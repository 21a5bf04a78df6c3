"""``mdn presets``: print the built-in meta neurons (or a library's)."""

from __future__ import annotations

import argparse

from mdn_snntorch import meta_neurons
from mdn_snntorch.printable import printable


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--library", help="a meta-neuron library JSON to list instead of the presets")


def main(args: argparse.Namespace) -> int:
    neurons = meta_neurons.load_library(args.library).neurons if args.library else list(meta_neurons.PRESETS.values())
    print(f"{'name':<12} {'order':>5}  {'theta_a':>8} {'theta_b':>8} {'theta_c':>8} {'theta_d':>8}  description")
    for n in neurons:
        params = " ".join(f"{t:>8.4g}" for t in n.theta) if n.order == 2 else f"{'decay=' + format(n.decay, 'g'):>35}"
        print(printable(f"{n.name:<12} {n.order:>5}  {params}  {n.description}"))  # a name cannot add a row
    return 0
