"""TIDIGITS isolated digits -> spikes from 30 frames x 30 mel bands (paper §4.1).

Each utterance becomes the band levels ``p [F = 30, B = 30]`` in [0, 1] of :func:`data_prep.audio.band_energies`
(30 frames with 50 % overlap covering the whole utterance). Two encodings:

- sequential (default, the paper's): one frame per time step, ``S[t, b] ~ Bernoulli(p[t // k, b])``
  with ``k = T / F`` steps per frame (T = 30: one step per frame); 30 inputs;
- non-sequential (``sequential=False``, the paper's 94 % variant): the whole spectrogram at every
  step, ``S[t, f * B + b] ~ Bernoulli(p[f, b])``; 900 inputs, any T.

The file also keeps the per-step probabilities themselves as ``analog`` (``round(255 p)``, uint8
``[N, T, D]``): the analog input the paper's authors feed instead of spikes.

TIDIGITS is the LDC corpus LDC93S10 (https://catalog.ldc.upenn.edu/LDC93S10); bring your own copy.
Layout under ``root`` (case-insensitive): ``{train,test}/{man,woman,boy,girl}/<speaker>/<digits><a|b>.wav``
in NIST SPHERE format; an isolated digit is a file named ``<d>a.wav`` or ``<d>b.wav`` with ``d`` in
``1..9``, ``z`` (zero) or ``o`` ("oh").
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep import audio, cli, encode
from data_prep.common import PrepError, add_common, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta

DEFAULT_TIME_STEPS = 30
N_FRAMES = 30
N_BANDS = 30
OVERLAP = 0.5
RANGE_DB = 60.0
GROUPS = ("man", "woman", "boy", "girl")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: what to do with "oh": leave it out (10 classes, the paper's 0-9), count it as zero, or an 11th class
OH_CHOICES = ("drop", "zero", "class")
_ISOLATED = re.compile(r"^([1-9zo])[ab]$", re.IGNORECASE)


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance; ``read()`` gives ``(mono samples, sample rate)``."""

    read: Callable[[], tuple[np.ndarray, int]]
    label: int


def find_isolated_digits(root: Path, groups: Sequence[str] = GROUPS, oh: str = "drop") -> dict[str, list[Utterance]]:
    """The isolated-digit utterances of a TIDIGITS tree per split, in sorted path order."""
    if oh not in OH_CHOICES:
        raise PrepError(f"oh must be one of {OH_CHOICES}, got {oh!r}")
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise PrepError(f"unknown speaker group(s) {sorted(unknown)}; TIDIGITS has {', '.join(GROUPS)}")
    layout = f"{root}/{{train,test}}/{{{','.join(GROUPS)}}}/<speaker>/<d>{{a,b}}.wav (NIST SPHERE)"
    where = "TIDIGITS is the LDC corpus LDC93S10 (https://catalog.ldc.upenn.edu/LDC93S10); bring your own copy"
    if not root.is_dir():
        raise PrepError(f"TIDIGITS root {root} is not a directory. Expected layout: {layout}. {where}.")
    splits: dict[str, list[Utterance]] = {"train": [], "test": []}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file()):
        parts = [part.lower() for part in path.relative_to(root).parts[:-1]]
        split = next((s for s in splits if s in parts), None)
        match = _ISOLATED.match(path.stem)
        if split is None or match is None or not any(g in parts for g in groups):
            continue
        word = match.group(1).lower()
        if word == "o":
            if oh == "drop":
                continue
            label = 0 if oh == "zero" else 10
        else:
            label = 0 if word == "z" else int(word)
        splits[split].append(Utterance(functools.partial(audio.read_audio, path), label))
    empty = [s for s, items in splits.items() if not items]
    if empty:
        raise PrepError(
            f"no isolated-digit utterances for split(s) {', '.join(empty)} under {root}. Expected layout: {layout}. {where}."
        )
    return splits


def write_utterances(
    out: str | os.PathLike,
    splits: dict[str, list[Utterance]],
    *,
    dataset: str,
    class_names: Sequence[str],
    time_steps: int,
    seed: int,
    force: bool,
    sequential: bool,
    source: str,
    n_frames: int = N_FRAMES,
    n_bands: int = N_BANDS,
    levels: str = "db",
) -> Path:
    """The TIDIGITS audio path: utterances -> band levels -> Bernoulli spikes -> spike file ``out``.
    ``levels``: ``"db"`` or the authors' ``"l1"`` (:func:`data_prep.audio.band_energies` ``scale``)."""
    if levels not in audio.SCALES:
        raise PrepError(f"levels must be one of {', '.join(audio.SCALES)}, got {levels!r}")
    time_steps = positive_int("time_steps", time_steps)
    n_frames, n_bands = positive_int("n_frames", n_frames), positive_int("n_bands", n_bands)
    if sequential and time_steps % n_frames:
        raise PrepError(
            f"time_steps={time_steps} must be a multiple of n_frames={n_frames} (one frame per step, or k steps per frame)"
        )
    params = {"frames": n_frames, "bands": n_bands, "overlap": OVERLAP, "range_db": RANGE_DB, "filters": "mel triangular 0..sr/2"}
    if levels == "l1":  # linear energies, each band divided by its sum over the frames
        params = {**{k: v for k, v in params.items() if k != "range_db"}, "levels": "l1"}
    if sequential:
        encoding, shape, params = "frames-bernoulli", (n_bands,), {**params, "steps_per_frame": time_steps // n_frames}
    else:
        encoding, shape = "spectrogram-bernoulli", (n_frames, n_bands)
    meta = make_meta(
        dataset=dataset, encoding=encoding, encoding_params=params, time_steps=time_steps, input_shape=shape,
        class_names=class_names, seed=seed, source=source,
    )  # fmt: skip

    def load(items: list[Utterance], start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        values = [audio.band_energies(*u.read(), n_frames, n_bands, OVERLAP, RANGE_DB, scale=levels) for u in items[start:stop]]
        return np.stack(values), np.array([u.label for u in items[start:stop]], dtype=np.int64)

    def probabilities(values: np.ndarray) -> np.ndarray:
        """The spike probabilities: ``[n, T, B]`` (one frame per step) or ``[n, F * B]`` (every step)."""
        if sequential:
            return encode.repeat_steps(values, time_steps // n_frames)
        return values.reshape(len(values), -1)

    def encoder(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return encode.bernoulli(probabilities(values), time_steps, rng)

    def analog(values: np.ndarray) -> np.ndarray:
        return encode.analog_levels(probabilities(values), time_steps)

    with SpikeFileWriter(out, meta, force=force, analog_levels=encode.ANALOG_LEVELS) as writer:
        for split, items in splits.items():
            write_split(writer, split, len(items), functools.partial(load, items), encoder, seed=seed, analog=analog)
    return writer.out


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    sequential: bool = True,
    oh: str = "drop",
    groups: Sequence[str] = GROUPS,
    levels: str = "db",
) -> Path:
    """Write the TIDIGITS spike file ``out`` from the tree at ``root`` (see the module docstring)."""
    root = Path(root)
    splits = find_isolated_digits(root, groups, oh)
    return write_utterances(
        out, splits, dataset="tidigits", class_names=DIGITS + (("oh",) if oh == "class" else ()), time_steps=time_steps,
        seed=seed, force=force, sequential=sequential, levels=levels,
        source=f"TIDIGITS isolated digits under {str(root)!r} (groups {','.join(groups)}, oh={oh})",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(
        parser,
        "tidigits",
        time_steps=DEFAULT_TIME_STEPS,
        root="TIDIGITS root holding train/ and test/ (LDC93S10)",
        root_required=True,
    )
    parser.add_argument("--non-sequential", dest="sequential", action="store_false",
                        help="the whole 900-value spectrogram at every step instead of one frame per step")  # fmt: skip
    parser.add_argument(
        "--levels", choices=audio.SCALES, default="db",
        help="band levels: db (log energy against the loudest band, 60 dB range) or l1 (linear energy, each band "
        "divided by its sum over the frames, as the paper authors' code)",
    )  # fmt: skip
    parser.add_argument(
        "--oh", choices=OH_CHOICES, default="drop", help="the word 'oh': drop it, count it as zero, or an 11th class"
    )
    parser.add_argument("--groups", type=lambda s: tuple(g for g in s.split(",") if g), default=GROUPS,
                        help=f"comma-separated speaker groups (default: {','.join(GROUPS)})")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("tidigits", argv)


if __name__ == "__main__":
    sys.exit(main())
