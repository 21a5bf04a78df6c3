"""CIFAR-10 -> rate-coded spikes (3 x 32 x 32 = 3072 inputs), read by ``torchvision.datasets.CIFAR10``.

Without ``download`` the python pickles must be in torchvision's layout under ``root``:
``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``. torchvision checks each
file's md5 against the official release; ``verify=False`` skips that check (for a re-packed copy).
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


class UnverifiedCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR-10 reader with the md5 checks switched off (files must still exist)."""

    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


def load_cifar10(root: str | os.PathLike, train: bool, download: bool, verify: bool) -> ImageSplit:
    """One split of CIFAR-10 as uint8 ``[N, 3, 32, 32]`` images."""
    root = Path(root)
    cls = datasets.CIFAR10 if verify else UnverifiedCIFAR10
    layout = f"{root}/cifar-10-batches-py/{{data_batch_1..5,test_batch,batches.meta}}" + (
        " with the official md5 sums (verify=False / --no-verify skips that check)" if verify else ""
    )
    ds = load_torchvision(lambda: cls(str(root), train=train, download=download), name="CIFAR-10", root=root, layout=layout)
    images = np.ascontiguousarray(np.asarray(ds.data).transpose(0, 3, 1, 2))  # HWC -> CHW
    return ImageSplit(images, np.asarray(ds.targets, dtype=np.int64), [str(c) for c in ds.classes])


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT_DEFAULT,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
    verify: bool = True,
) -> Path:
    """Write the CIFAR-10 spike file ``out`` (50,000 train / 10,000 test samples, T x 3072)."""
    return convert_images(
        out,
        dataset="cifar10",
        load=lambda train: load_cifar10(root, train, download, verify),
        time_steps=time_steps,
        seed=seed,
        force=force,
        source=f"torchvision.datasets.CIFAR10(root={str(root)!r}, download={download}, md5 checked={verify})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "cifar10", time_steps=DEFAULT_TIME_STEPS, root="folder holding cifar-10-batches-py (default: %(default)s)",
               root_default=ROOT_DEFAULT, download=True)  # fmt: skip
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip torchvision's md5 check of the pickles")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("cifar10", argv)


if __name__ == "__main__":
    sys.exit(main())
