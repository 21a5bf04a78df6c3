"""The ``mdn`` command line: one subcommand per job, each in its own module of this package.

Every subcommand module exposes ``configure(parser)`` (adds its arguments) and ``main(args) -> int``
(runs it). Only the module of the subcommand being run is imported, so ``mdn --help`` stays fast.
Errors become one line and an exit code in one place, :mod:`mdn_snntorch.cli.errors`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mdn_snntorch.cli import errors

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "presets": ("mdn_snntorch.cli.presets", "list the meta-neuron presets (paper Table 2)"),
    "prep": ("mdn_snntorch.cli.prep", "convert a dataset into an HDF5 spike file"),
    "train": ("mdn_snntorch.cli.train", "train the 3-layer SNN on an HDF5 spike file"),
    "discover": ("mdn_snntorch.cli.discover", "generate meta neurons (learnable theta, MeanShift + KMeans)"),
    "evaluate": ("mdn_snntorch.cli.evaluate", "train every neuron on every task: Table 3 and capability"),
    "validate": ("mdn_snntorch.cli.validate", "cross-check neurons (and a trained net) against Brian2"),
    "demo": ("mdn_snntorch.cli.demo", "the paper's pipeline end to end on embedded data"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module (if given) is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="mdn", description="Meta-Dynamic Neurons for snnTorch.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (or set MDN_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).configure(sp)
            sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.debugging(argv)
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command)
    except ImportError as err:  # the subcommand needs an extra that is not installed
        return errors.report(command or "", err, debug)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    return errors.run(args.command, lambda: module.main(args), debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
