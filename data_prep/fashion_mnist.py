"""Fashion-MNIST -> rate-coded spikes (784 inputs), read by ``torchvision.datasets.FashionMNIST``.

Without ``download`` the raw files must be in torchvision's layout under ``root``:
``root/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (uncompressed idx files).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from torchvision import datasets

from data_prep import cli
from data_prep.common import add_common
from data_prep.images import DEFAULT_TIME_STEPS, convert_images
from data_prep.mnist import ROOT_DEFAULT, load_idx_dataset


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT_DEFAULT,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
) -> Path:
    """Write the Fashion-MNIST spike file ``out`` (60,000 train / 10,000 test samples, T x 784)."""
    return convert_images(
        out,
        dataset="fashion_mnist",
        load=lambda train: load_idx_dataset(datasets.FashionMNIST, root, train, download),
        time_steps=time_steps,
        seed=seed,
        force=force,
        source=f"torchvision.datasets.FashionMNIST(root={str(root)!r}, download={download})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    root = "folder holding FashionMNIST/raw (default: %(default)s)"
    add_common(parser, "fashion_mnist", time_steps=DEFAULT_TIME_STEPS, root=root, root_default=ROOT_DEFAULT, download=True)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("fashion_mnist", argv)


if __name__ == "__main__":
    sys.exit(main())
