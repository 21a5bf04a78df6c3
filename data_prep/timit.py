"""TIMIT speaker gender -> spikes from 13 MFCC x 800 frames, 20 steps of 40 frames (paper §4.1).

Each utterance's MFCC (:func:`data_prep.audio.mfcc`, 10 ms frames) are scaled per coefficient to
[0, 1] over the utterance (min-max), then cut or zero-padded at the end to 800 frames (8 s; TIMIT
sentences last about 3 s, so most of the padding carries no spikes). Step t shows frames
``t * 40 .. t * 40 + 39`` (frame-major, 40 x 13 = 520 inputs): ``S[t, j] ~ Bernoulli(m[t * 40 + j // 13, j % 13])``.
In general ``frames / T`` frames per step; T must divide the 800 frames. The file also keeps these
per-step values as ``analog`` (``round(255 m)``, uint8 ``[N, T, D]``), the analog input the paper's
authors feed instead of spikes.

The label is the speaker's gender, the first letter of the speaker folder (``F...`` = 0 female,
``M...`` = 1 male); TIMIT's own train/test split is kept (462 / 168 speakers).

TIMIT is the LDC corpus LDC93S1 (https://catalog.ldc.upenn.edu/LDC93S1); bring your own copy.
Layout under ``root`` (case-insensitive): ``{TRAIN,TEST}/DR<1-8>/<F|M><initials><digit>/<sentence>.WAV``
(NIST SPHERE, 16 kHz). Copies that add RIFF files named ``<sentence>.WAV.wav`` are read once per sentence.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_prep import audio, cli, encode
from data_prep.common import PrepError, add_common, int_option, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta

DEFAULT_TIME_STEPS = 20
N_FRAMES = 800
N_MFCC = 13
GENDERS = ("female", "male")
_SPEAKER = re.compile(r"^[fm][a-z]{3}\d$", re.IGNORECASE)


def find_utterances(root: Path, include_sa: bool = True) -> dict[str, list[tuple[Path, int]]]:
    """``(path, gender label)`` per split, one file per sentence, in sorted path order."""
    layout = f"{root}/{{TRAIN,TEST}}/DR<n>/<speaker>/<sentence>.WAV (NIST SPHERE; speaker = F|M + initials + digit)"
    where = "TIMIT is the LDC corpus LDC93S1 (https://catalog.ldc.upenn.edu/LDC93S1); bring your own copy"
    if not root.is_dir():
        raise PrepError(f"TIMIT root {root} is not a directory. Expected layout: {layout}. {where}.")
    splits: dict[str, dict[tuple[str, str], tuple[Path, int]]] = {"train": {}, "test": {}}
    for path in sorted(p for p in root.rglob("*") if p.name.lower().endswith(".wav") and p.is_file()):
        parts = [part.lower() for part in path.relative_to(root).parts]
        split = next((s for s in splits if s in parts[:-1]), None)
        speaker = path.parent.name
        sentence = path.name.split(".")[0].upper()
        if split is None or not _SPEAKER.match(speaker) or (not include_sa and sentence.startswith("SA")):
            continue
        splits[split].setdefault((speaker.upper(), sentence), (path, GENDERS.index("female" if speaker[0] in "fF" else "male")))
    empty = [s for s, items in splits.items() if not items]
    if empty:
        raise PrepError(f"no TIMIT utterances for split(s) {', '.join(empty)} under {root}. Expected layout: {layout}. {where}.")
    return {s: list(items.values()) for s, items in splits.items()}


def mfcc_frames(path: Path, n_frames: int = N_FRAMES) -> np.ndarray:
    """Min-max scaled MFCC of one file, cut or zero-padded to ``[n_frames, 13]``."""
    m = audio.minmax_columns(audio.mfcc(*audio.read_audio(path), n_mfcc=N_MFCC))[:n_frames]
    return np.pad(m, ((0, n_frames - len(m)), (0, 0)))


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    n_frames: int = N_FRAMES,
    include_sa: bool = True,
) -> Path:
    """Write the TIMIT gender spike file ``out`` from the tree at ``root`` (see the module docstring)."""
    time_steps, n_frames = positive_int("time_steps", time_steps), positive_int("n_frames", n_frames)
    if n_frames % time_steps:
        raise PrepError(f"time_steps={time_steps} must divide n_frames={n_frames} (each step shows n_frames / time_steps frames)")
    per_step = n_frames // time_steps
    root = Path(root)
    splits = find_utterances(root, include_sa)
    meta = make_meta(
        dataset="timit",
        encoding="mfcc-bernoulli",
        encoding_params={
            "n_mfcc": N_MFCC,
            "frames": n_frames,
            "frames_per_step": per_step,
            "frame_ms": 25,
            "hop_ms": 10,
            "scaling": "min-max per coefficient per utterance",
            "beyond_end": "zero (no spikes)",
        },  # fmt: skip
        time_steps=time_steps,
        input_shape=(per_step, N_MFCC),
        class_names=GENDERS,
        seed=seed,
        source=f"TIMIT under {str(root)!r} (speaker gender; SA sentences {'in' if include_sa else 'out'})",
    )

    def load(items: list[tuple[Path, int]], start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        m = np.stack([mfcc_frames(path, n_frames) for path, _ in items[start:stop]])
        return m.reshape(len(m), time_steps, per_step * N_MFCC), np.array([y for _, y in items[start:stop]], dtype=np.int64)

    with SpikeFileWriter(out, meta, force=force, analog_levels=encode.ANALOG_LEVELS) as writer:
        for split, items in splits.items():
            write_split(
                writer,
                split,
                len(items),
                functools.partial(load, items),
                lambda m, rng: encode.bernoulli(m, time_steps, rng),
                seed=seed,
                analog=lambda m: encode.analog_levels(m, time_steps),
            )
    return writer.out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(
        parser, "timit", time_steps=DEFAULT_TIME_STEPS, root="TIMIT root holding TRAIN/ and TEST/ (LDC93S1)", root_required=True
    )
    parser.add_argument(
        "--frames",
        dest="n_frames",
        type=int_option("frames", 1, 10_000),
        default=N_FRAMES,
        help="MFCC frames kept per utterance (default: %(default)s)",
    )
    parser.add_argument(
        "--no-sa", dest="include_sa", action="store_false", help="leave out the two SA sentences every speaker reads"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("timit", argv)


if __name__ == "__main__":
    sys.exit(main())
