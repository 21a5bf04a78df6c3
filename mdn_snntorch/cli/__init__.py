"""The ``mdn`` command line: one subcommand per job, each in its own module of this package.

Every subcommand module exposes ``configure(parser)`` (adds its arguments) and ``main(args) -> int``
(runs it). Only the module of the subcommand being run is imported, so ``mdn --help`` stays fast.
Errors become one line and an exit code in one place, :mod:`mdn_snntorch.cli.errors`; a bad option is
one line too (``mdn train: error: argument --threads: ...``, exit code 2). SIGINT and SIGTERM raise an
exception for the length of the command (:mod:`mdn_snntorch.signals`), so temporary files and locks are
always removed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mdn_snntorch import signals
from mdn_snntorch.cli import errors

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "presets": ("mdn_snntorch.cli.presets", "list the meta-neuron presets (paper Table 2)"),
    "prep": ("mdn_snntorch.cli.prep", "convert a dataset into an HDF5 spike file"),
    "train": ("mdn_snntorch.cli.train", "train the 3-layer SNN on an HDF5 spike file"),
    "discover": ("mdn_snntorch.cli.discover", "generate meta neurons (learnable theta, MeanShift + KMeans)"),
    "evaluate": ("mdn_snntorch.cli.evaluate", "train every neuron on every task: Table 3 and capability"),
    "combine": ("mdn_snntorch.cli.combine", "one Table 3 and Fig. 8 from finished evaluations"),
    "validate": ("mdn_snntorch.cli.validate", "cross-check neurons (and a trained net) against Brian2"),
    "demo": ("mdn_snntorch.cli.demo", "the paper's pipeline end to end on embedded data"),
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage of ``mdn train`` alone takes ten)."""

    def error(self, message: str):
        self.exit(errors.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module (if given) is imported to add its arguments."""
    parser = _Parser(prog="mdn", description="Meta-Dynamic Neurons for snnTorch.")
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
    words = [a for a in argv if not a.startswith("-")]
    command = words[0] if words else None
    label = " ".join(words[:2]) if command == "prep" else command or ""  # "mdn prep mnist: error: ..."
    restore, restore_warnings = signals.install(), errors.one_line_warnings()
    try:
        return errors.run(label, lambda: _run(argv, command), debug)
    finally:
        restore_warnings()
        restore()


def _run(argv: list[str], command: str | None) -> int:
    parser = build_parser(command)  # an ImportError here: the subcommand needs an extra that is not installed
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a bad option (already printed as one line)
        return done.code if isinstance(done.code, int) else errors.BAD_INPUT
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    return importlib.import_module(args._module).main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
