"""Spoken digits synthesised with espeak-ng, sent through the TIDIGITS audio path.

The words zero..nine are spoken by every synthetic speaker (an espeak-ng voice with a voice variant,
e.g. ``en-us+f3``) at every speed (words per minute) and pitch (0-99); espeak-ng writes WAV to stdout,
soundfile reads it, and :func:`data_prep.tidigits.write_utterances` makes the 30 x 30 band levels,
spikes and stored analog input exactly as for TIDIGITS (``levels="l1"``: the paper authors' linear, per-band
normalised levels). The split is by speaker (speaker-independent test set): a fixed ``test_fraction`` of the
speakers, chosen by a permutation that does not depend on ``seed``; ``split="random"`` instead holds out a
fixed random part of all utterances, as the authors split TIDIGITS.

Needs Debian's ``espeak-ng`` (``sudo apt-get install espeak-ng``).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from data_prep import audio, cli
from data_prep.common import PrepError, add_common, fraction_option
from data_prep.tidigits import DEFAULT_TIME_STEPS, DIGITS, Utterance, write_utterances

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan")
VARIANTS = ("m1", "m3", "f1", "f3")
SPEEDS = (140, 180)
PITCHES = (35, 65)
TEST_FRACTION = 0.25
#: how the test set is chosen: held-out speakers, or a random part of all utterances
SPLITS = ("speaker", "random")


def synthesise(espeak: str, speaker: str, speed: int, pitch: int, word: str) -> tuple[np.ndarray, int]:
    """One word spoken by ``speaker`` (``voice+variant``), read back by :func:`data_prep.audio.read_audio`."""
    cmd = [espeak, "-v", speaker, "-s", str(speed), "-p", str(pitch), "--stdout", word]
    run = subprocess.run(cmd, capture_output=True)
    if run.returncode != 0 or not run.stdout:
        raise PrepError(f"`{' '.join(cmd)}` failed ({run.returncode}): {run.stderr.decode(errors='replace').strip()}")
    return audio.read_audio(run.stdout, name=" ".join(cmd))


def speaker_split(speakers: Sequence[str], test_fraction: float) -> dict[str, list[str]]:
    """A fixed split of the speakers: ``round(test_fraction * n)`` (at least 1) of them for testing."""
    if not 0.0 < test_fraction < 1.0 or len(speakers) < 2:
        raise PrepError(f"need test_fraction in (0, 1) and at least 2 speakers, got {test_fraction} and {len(speakers)}")
    n_test = min(len(speakers) - 1, max(1, round(test_fraction * len(speakers))))
    test = set(np.random.default_rng(0).permutation(len(speakers))[:n_test].tolist())
    return {
        "train": [s for i, s in enumerate(speakers) if i not in test],
        "test": [s for i, s in enumerate(speakers) if i in test],
    }


def convert(
    out: str | os.PathLike,
    *,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    sequential: bool = True,
    voices: Sequence[str] = VOICES,
    variants: Sequence[str] = VARIANTS,
    speeds: Sequence[int] = SPEEDS,
    pitches: Sequence[int] = PITCHES,
    test_fraction: float = TEST_FRACTION,
    espeak: str = "espeak-ng",
    levels: str = "db",
    split: str = "speaker",
) -> Path:
    """Write the spoken-digits spike file ``out`` (10 words x speakers x speeds x pitches utterances)."""
    exe = shutil.which(espeak)
    if exe is None:
        raise PrepError(
            f"{espeak} not found: spoken_digits synthesises speech with espeak-ng; "
            "install it with `sudo apt-get install espeak-ng`"
        )
    if split not in SPLITS:
        raise PrepError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    speakers = [f"{v}+{variant}" for v, variant in itertools.product(voices, variants)]

    def utterances(names: Sequence[str]) -> list[Utterance]:
        return [
            Utterance(functools.partial(synthesise, exe, speaker, int(speed), int(pitch), word), label)
            for speaker, speed, pitch, (label, word) in itertools.product(names, speeds, pitches, enumerate(DIGITS))
        ]

    if split == "speaker":
        splits = {name: utterances(names) for name, names in speaker_split(speakers, test_fraction).items()}
    else:
        splits = random_split(utterances(speakers), test_fraction)
    return write_utterances(
        out, splits, dataset="spoken_digits", class_names=DIGITS, time_steps=time_steps, seed=seed, force=force,
        sequential=sequential, levels=levels,
        source=f"espeak-ng voices {','.join(speakers)}; speeds {list(speeds)} wpm; pitches {list(pitches)}; "
        f"test fraction {test_fraction} of the {'speakers' if split == 'speaker' else 'utterances (random split)'}",
    )  # fmt: skip


def random_split(items: Sequence[Utterance], test_fraction: float) -> dict[str, list[Utterance]]:
    """A fixed random split of the utterances themselves (the test speakers are also heard in training), as
    the paper authors split TIDIGITS; the permutation does not depend on ``seed``."""
    if not 0.0 < test_fraction < 1.0 or len(items) < 2:
        raise PrepError(f"need test_fraction in (0, 1) and at least 2 utterances, got {test_fraction} and {len(items)}")
    n_test = min(len(items) - 1, max(1, round(test_fraction * len(items))))
    order = np.random.default_rng(0).permutation(len(items))
    return {"train": [items[i] for i in sorted(order[n_test:])], "test": [items[i] for i in sorted(order[:n_test])]}


def _list(kind: type) -> Callable[[str], tuple]:
    """An argparse type: a comma-separated list of ``kind``."""
    return lambda s: tuple(kind(v) for v in s.split(",") if v)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "spoken_digits", time_steps=DEFAULT_TIME_STEPS)
    parser.add_argument("--non-sequential", dest="sequential", action="store_false", help="the whole spectrogram at every step")
    parser.add_argument("--voices", type=_list(str), default=VOICES, help=f"espeak-ng voices (default: {','.join(VOICES)})")
    parser.add_argument("--variants", type=_list(str), default=VARIANTS, help=f"voice variants (default: {','.join(VARIANTS)})")
    parser.add_argument(
        "--speeds", type=_list(int), default=SPEEDS, help=f"words per minute (default: {','.join(map(str, SPEEDS))})"
    )
    parser.add_argument(
        "--pitches", type=_list(int), default=PITCHES, help=f"pitches 0-99 (default: {','.join(map(str, PITCHES))})"
    )
    parser.add_argument(
        "--test-fraction",
        type=fraction_option("test_fraction"),
        default=TEST_FRACTION,
        help="fraction of speakers held out (default: %(default)s)",
    )
    parser.add_argument("--espeak", default="espeak-ng", help="the espeak-ng executable (default: %(default)s)")
    parser.add_argument(
        "--levels", choices=audio.SCALES, default="db",
        help="band levels: db, or l1 (linear, each band divided by its sum over the frames, as the authors' code)",
    )  # fmt: skip
    parser.add_argument(
        "--split", choices=SPLITS, default="speaker",
        help="test set: held-out speakers (default) or a random part of all utterances (as the authors split TIDIGITS)",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("spoken_digits", argv)


if __name__ == "__main__":
    sys.exit(main())
