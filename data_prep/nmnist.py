"""N-MNIST -> event-frame spikes (2 polarities x 34 x 34 = 2312 inputs): ``mdn prep tonic --dataset NMNIST``.

Each recording's events are read by ``tonic.datasets.NMNIST`` (``tonic.io.read_mnist_file``) and
accumulated into T frames of equal duration by ``tonic.transforms.ToFrame(n_time_bins=T)``; a pixel
spikes in a step if it had at least one event there: ``S[t, p, y, x] = [count > 0]`` (deterministic,
the seed is unused). The ATIS sensor has 34 x 34 pixels and 2 polarities, hence 2312 inputs; the
paper's Table 1 says 2592 (= 2 x 36 x 36) without explaining it (docs/data.md, docs/model.md#encodings-and-time-steps).
The conversion is :mod:`data_prep.events` with ``dataset="NMNIST"``.

Without ``download`` an extracted copy must be in tonic's layout under ``root``:
``root/NMNIST/{Train,Test}/<digit>/<id>.bin`` (the zip archives are not needed).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep import cli, events
from data_prep.common import add_common

DEFAULT_TIME_STEPS = 20
ROOT_DEFAULT = events.ROOT_DEFAULT


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT_DEFAULT,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
) -> Path:
    """Write the N-MNIST spike file ``out`` (60,000 train / 10,000 test recordings, T x 2312)."""
    return events.convert(out, dataset="NMNIST", root=root, time_steps=time_steps, seed=seed, force=force, download=download)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "nmnist", time_steps=DEFAULT_TIME_STEPS, root="folder holding NMNIST/{Train,Test} (default: %(default)s)",
               root_default=ROOT_DEFAULT, download=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("nmnist", argv)


if __name__ == "__main__":
    sys.exit(main())
