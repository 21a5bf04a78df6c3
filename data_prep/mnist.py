"""MNIST -> rate-coded spikes (784 inputs), read by ``torchvision.datasets.MNIST``.

Without ``download`` the raw files must be in torchvision's layout under ``root``:
``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (uncompressed idx files).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torchvision import datasets

from data_prep import cli
from data_prep.common import add_common
from data_prep.images import DEFAULT_TIME_STEPS, ImageSplit, convert_images, load_torchvision

ROOT_DEFAULT = "data/raw"


def load_idx_dataset(cls: type, root: str | os.PathLike, train: bool, download: bool) -> ImageSplit:
    """One split of an MNIST-style torchvision data set (``cls``: MNIST or FashionMNIST)."""
    root = Path(root)
    folder = root / cls.__name__ / "raw"
    layout = f"{folder}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"
    ds = load_torchvision(lambda: cls(str(root), train=train, download=download), name=cls.__name__, root=root, layout=layout)
    images = ds.data.numpy()[:, None]  # [N, 1, 28, 28]
    return ImageSplit(images, ds.targets.numpy().astype(np.int64), [str(c) for c in ds.classes])


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT_DEFAULT,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
) -> Path:
    """Write the MNIST spike file ``out`` (60,000 train / 10,000 test samples, T x 784)."""
    return convert_images(
        out,
        dataset="mnist",
        load=lambda train: load_idx_dataset(datasets.MNIST, root, train, download),
        time_steps=time_steps,
        seed=seed,
        force=force,
        source=f"torchvision.datasets.MNIST(root={str(root)!r}, download={download})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "mnist", time_steps=DEFAULT_TIME_STEPS, root="folder holding MNIST/raw (default: %(default)s)",
               root_default=ROOT_DEFAULT, download=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("mnist", argv)


if __name__ == "__main__":
    sys.exit(main())
