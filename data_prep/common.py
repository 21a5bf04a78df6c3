"""What every converter shares: the error type, argument checks, meta data and the block loop.

A converter knows, per split, how many samples there are, how to ``load`` samples ``start:stop``
(features in [0, 1] or ready spikes, and labels) and how to ``encode`` them into packed spikes with a
random generator. :func:`write_split` runs that block by block (one HDF5 chunk of samples at a time,
so memory stays bounded), with a progress bar. The generator of block ``k`` of a split is seeded by
``(seed, split, k)``: the result depends on the seed only, never on the order blocks are processed in.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from mdn_snntorch.spikefile import SPLITS


class PrepError(ValueError):
    """Bad converter input: a missing or unreadable source, a bad argument, an existing output."""


#: samples loaded per call (progress granularity); a block of the file is encoded in one piece
LOAD_STEP = 64
#: the most time steps ``--time-steps`` takes (the paper's tasks use at most 800)
MAX_TIME_STEPS = 10_000
#: seeds are 0..2**32 - 1 (numpy and torch take them everywhere)
MAX_SEED = 2**32 - 1

Loader = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
Encoder = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 1, else :class:`PrepError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PrepError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def int_option(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (a bad value is one line and exit code 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name}={value} is out of range (an integer in {low}..{high})")
        return value

    return parse


def fraction_option(name: str) -> Callable[[str], float]:
    """An argparse type: a number strictly between 0 and 1."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not a number") from None
        if not (math.isfinite(value) and 0 < value < 1):
            raise argparse.ArgumentTypeError(f"{name}={text} is out of range (a number between 0 and 1)")
        return value

    return parse


def block_rng(seed: int, split: str, block: int) -> np.random.Generator:
    """The random generator of block ``block`` of split ``split``."""
    return np.random.default_rng([int(seed), SPLITS.index(split), int(block)])


def write_split(
    writer,
    split: str,
    n: int,
    load: Loader,
    encode: Encoder,
    *,
    seed: int,
    n_targets: int | None = None,
    intensity: Callable[[np.ndarray], np.ndarray] | None = None,
    analog: Callable[[np.ndarray], np.ndarray] | None = None,
) -> None:
    """Create ``split`` in ``writer`` (a :class:`~data_prep.spikefile.SpikeFileWriter`) and fill it
    block by block: for samples ``a:b`` of block ``k``, ``x, y = load(a, b)`` (in pieces of at most
    :data:`LOAD_STEP`), spikes ``encode(x, block_rng(seed, split, k))``, labels ``y`` and, for a writer
    with ``intensity_levels``, the integer intensities ``intensity(x)`` ``[b, D]``; for a writer with
    ``analog_levels``, the integer analog levels ``analog(x)`` ``[b, T, D]``."""
    writer.create_split(split, n, n_targets)
    # disable=None: no bar off a terminal (logs keep the one-line error)
    with tqdm(total=n, desc=f"{writer.meta['dataset']} {split}", unit=" samples", leave=False, disable=None) as bar:
        for k, start in enumerate(range(0, n, writer.rows)):
            parts = []
            for a in range(start, min(n, start + writer.rows), LOAD_STEP):
                parts.append(load(a, min(n, start + writer.rows, a + LOAD_STEP)))
                bar.update(len(parts[-1][1]))
            x, y = (np.concatenate(p) for p in zip(*parts))
            writer.write(
                split, encode(x, block_rng(seed, split, k)), y, None if intensity is None else intensity(x),
                None if analog is None else analog(x),
            )  # fmt: skip


def add_common(
    parser: argparse.ArgumentParser,
    name: str,
    *,
    time_steps: int | None,
    root: str | None = None,
    root_default: str | None = None,
    root_required: bool = False,
    download: bool = False,
) -> None:
    """The options every converter shares: ``--out --force --seed`` and, where they apply,
    ``--root`` (help text ``root``), ``--time-steps`` (default ``time_steps``) and ``--download``."""
    parser.add_argument("--out", default=f"data/{name}.h5", help="HDF5 file to write (default: %(default)s)")
    if root is not None:
        parser.add_argument("--root", default=root_default, required=root_required, help=root)
    if time_steps is not None:
        parser.add_argument(
            "--time-steps", type=int_option("time_steps", 1, MAX_TIME_STEPS), default=time_steps,
            help=f"time steps T per sample, 1..{MAX_TIME_STEPS} (default: %(default)s)",
        )  # fmt: skip
    parser.add_argument(
        "--seed", type=int_option("seed", 0, MAX_SEED), default=0, help="seed of the spike sampling (default: %(default)s)"
    )
    if download:
        parser.add_argument("--download", action="store_true", help="download the source data into --root first")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
