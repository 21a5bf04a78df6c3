"""``mdn prep <dataset> ...`` and ``python -m data_prep.<dataset> ...``: one converter per data set.

Every converter module ``data_prep.<name>`` has ``add_arguments(parser)`` (its options; their
destinations are ``convert``'s keyword arguments) and ``convert(out, **options) -> Path``.

Before a converter runs, its output is checked (not a folder, not existing without ``--force``, its
folder writable) and claimed with a lock file (:func:`mdn_snntorch.spikefile.output_lock`): a second
``prep`` on the same output fails at once. Errors go to the ``mdn`` command's one error handler (exit
codes in :mod:`mdn_snntorch.cli.errors`); ``python -m data_prep.<name>`` prints them as one line too.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from data_prep.common import PrepError
from mdn_snntorch.spikefile import check_output, output_lock

#: dataset -> one-line help
DATASETS: dict[str, str] = {
    "mnist": "MNIST through torchvision: rate-coded 784 inputs",
    "fashion_mnist": "Fashion-MNIST through torchvision: rate-coded 784 inputs",
    "cifar10": "CIFAR-10 through torchvision: rate-coded 3072 inputs",
    "nmnist": "N-MNIST through tonic: event frames, 2 x 34 x 34 inputs",
    "tonic": "any tonic event dataset (--dataset NMNIST, POKERDVS, DVSGesture, SHD, ...): event frames",
    "tidigits": "TIDIGITS (LDC, NIST SPHERE audio): 30 bands x 30 frames, one frame per step",
    "timit": "TIMIT (LDC): speaker gender from 13 MFCC x 800 frames, 520 inputs per step",
    "nettalk": "NETtalk (UCI file, or --cmudict offline): 7-letter window -> 26 phoneme bits",
    "digits": "scikit-learn's embedded 8x8 digits: rate-coded 64 inputs (no download)",
    "digits_rows": "scikit-learn's 8x8 digits row by row: 8 inputs per step (no download)",
    "spoken_digits": "zero..nine synthesised with espeak-ng, through the TIDIGITS audio path",
}
_NOT_OPTIONS = {"command", "_module", "converter", "debug"}
#: data sets whose converter module is named otherwise (``data_prep.tonic`` would hide the tonic package)
MODULES = {"tonic": "events"}


def converter(name: str):
    """The converter module of data set ``name``; :class:`PrepError` listing the known ones otherwise."""
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise PrepError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return importlib.import_module(f"data_prep.{MODULES.get(key, key)}")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add one sub-command per data set to ``parser``."""
    sub = parser.add_subparsers(dest="converter", metavar="DATASET", required=True)
    for name, help_text in DATASETS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        converter(name).add_arguments(sp)


def main(args: argparse.Namespace) -> int:
    """Check and claim the output, then run the converter chosen in ``args`` (errors propagate)."""
    options = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    module = converter(args.converter)
    if options.get("out") is None:  # a converter that names its output after an option
        options["out"] = module.default_out(**{k: options[k] for k in ("dataset",) if k in options})
    out = check_output(options["out"], options.get("force", False))  # before any download or conversion
    with output_lock(out):
        path = module.convert(**options)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def run_module(name: str, argv: Sequence[str] | None = None) -> int:
    """``python -m data_prep.<name>``: the same options as ``mdn prep <name>``; an error is one line."""
    parser = argparse.ArgumentParser(prog=f"python -m data_prep.{name}", description=DATASETS[name])
    converter(name).add_arguments(parser)
    args = parser.parse_args(argv)
    args.converter = name
    try:
        return main(args)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        code = getattr(err, "exit_code", 2 if isinstance(err, (ValueError, OSError)) else None)
        if code is None:
            raise
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return code
