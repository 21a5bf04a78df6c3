"""scikit-learn's embedded 8 x 8 digits (1797 images) -> rate-coded spikes, 64 inputs.

Intensity ``p = value / 16`` (the images hold 0..16), ``S[t, d] ~ Bernoulli(p[d])`` at each of T steps.
The train/test split is fixed and stratified (:func:`split_digits`), independent of ``seed``, which
only drives the spike sampling. Nothing is downloaded: the data ship with scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from data_prep import cli, encode
from data_prep.common import Encoder, add_common, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta

DEFAULT_TIME_STEPS = 20
TEST_FRACTION = 0.25
SPLIT_SEED = 0
CLASS_NAMES = tuple(str(d) for d in range(10))


def split_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (intensities [N, 8, 8] in [0, 1], labels [N])}``: a stratified 75 / 25 split, always the same."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16.0).reshape(-1, 8, 8).astype(np.float32), y.astype(np.int64),
        test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED,
    )  # fmt: skip
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def write_digits(
    out: str | os.PathLike,
    *,
    dataset: str,
    encoding: str,
    params: dict[str, Any],
    time_steps: int,
    input_shape: tuple[int, ...],
    seed: int,
    force: bool,
    encoder: Encoder,
    keep_intensity: bool = False,
) -> Path:
    """Both splits of :func:`split_digits` through ``encoder(intensities [b, 8, 8], rng)``; with
    ``keep_intensity`` the pixel values 0..16 are stored as ``intensity`` (levels 16) too."""
    meta = make_meta(
        dataset=dataset, encoding=encoding, encoding_params=params, time_steps=time_steps, input_shape=input_shape,
        class_names=CLASS_NAMES, seed=seed, source=f"sklearn.datasets.load_digits, stratified split test_size={TEST_FRACTION} "
        f"random_state={SPLIT_SEED}",
    )  # fmt: skip

    def values(x: np.ndarray) -> np.ndarray:
        return np.rint(x.reshape(len(x), -1) * 16)

    with SpikeFileWriter(out, meta, force=force, intensity_levels=16 if keep_intensity else None) as writer:
        for split, (x, y) in split_digits().items():
            write_split(
                writer, split, len(y), lambda a, b, x=x, y=y: (x[a:b], y[a:b]), encoder, seed=seed,
                intensity=values if keep_intensity else None,
            )  # fmt: skip
    return writer.out


def convert(out: str | os.PathLike, *, time_steps: int = DEFAULT_TIME_STEPS, seed: int = 0, force: bool = False) -> Path:
    """Write the rate-coded digits spike file ``out`` (1347 train / 450 test samples, T x 64)."""
    time_steps = positive_int("time_steps", time_steps)
    return write_digits(
        out, dataset="digits", encoding="rate-bernoulli", params={"intensity": "value / 16", "per_step": "Bernoulli(intensity)"},
        time_steps=time_steps, input_shape=(8, 8), seed=seed, force=force,
        encoder=lambda x, rng: encode.bernoulli(x.reshape(len(x), 64), time_steps, rng), keep_intensity=True,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "digits", time_steps=DEFAULT_TIME_STEPS)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("digits", argv)


if __name__ == "__main__":
    sys.exit(main())
