"""The ``mdn`` command line: one subcommand per job, each living in its own module.

Every subcommand module exposes ``configure(parser)`` (adds its arguments) and
``main(args) -> int`` (runs it). Only the module of the subcommand being run is
imported, so ``mdn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "presets": ("mdn_snntorch.presets_cli", "list the meta-neuron presets (paper Table 2)"),
    "prep": ("data_prep.cli", "convert a dataset into an HDF5 spike file"),
    "train": ("mdn_snntorch.train", "train the 3-layer SNN on an HDF5 spike file"),
    "discover": ("mdn_snntorch.discover", "generate meta neurons (learnable theta, MeanShift + KMeans)"),
    "evaluate": ("mdn_snntorch.evaluate", "train every neuron on every task: Table 3 and capability"),
    "validate": ("validation.cli", "cross-check neurons (and a trained net) against Brian2"),
    "demo": ("mdn_snntorch.demo", "the paper's pipeline end to end on embedded data"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module (if given) is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="mdn", description="Meta-Dynamic Neurons for snnTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).configure(sp)
            sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
