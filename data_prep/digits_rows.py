"""scikit-learn's 8 x 8 digits read row by row: a small real temporal task, 8 inputs.

Row r of the image is presented for ``k = steps_per_row`` steps, T = 8 k:
``S[t, c] ~ Bernoulli(image[t // k, c] / 16)``. Same fixed split as :mod:`data_prep.digits`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep import cli, encode
from data_prep.common import add_common, int_option, positive_int
from data_prep.digits import write_digits

DEFAULT_STEPS_PER_ROW = 4


def convert(out: str | os.PathLike, *, steps_per_row: int = DEFAULT_STEPS_PER_ROW, seed: int = 0, force: bool = False) -> Path:
    """Write the row-by-row digits spike file ``out`` (1347 train / 450 test samples, 8 k x 8)."""
    k = positive_int("steps_per_row", steps_per_row)
    return write_digits(
        out, dataset="digits_rows", encoding="rows-bernoulli", params={"intensity": "value / 16", "steps_per_row": k},
        time_steps=8 * k, input_shape=(8,), seed=seed, force=force,
        encoder=lambda x, rng: encode.bernoulli(encode.repeat_steps(x, k), 8 * k, rng),
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "digits_rows", time_steps=None)
    parser.add_argument(
        "--steps-per-row",
        type=int_option("steps_per_row", 1, 1000),
        default=DEFAULT_STEPS_PER_ROW,
        help="steps each image row is shown (default: %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("digits_rows", argv)


if __name__ == "__main__":
    sys.exit(main())
