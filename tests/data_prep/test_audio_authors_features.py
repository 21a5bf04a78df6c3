"""The paper authors' TIDIGITS preparation as options: linear band energies normalised per band ("l1"),
and a random split of the utterances instead of held-out speakers."""

import numpy as np
import pytest
from data_fixtures.formats import tone

from data_prep import audio, spoken_digits, tidigits
from data_prep.common import PrepError
from mdn_snntorch.spikefile import SpikeDataset, read_meta

RATE = 16000


def test_l1_levels_are_linear_energies_divided_by_each_bands_sum():
    noise = np.random.default_rng(0).standard_normal(RATE // 2) * np.linspace(0.1, 1.0, RATE // 2)  # every band, rising
    l1 = audio.band_energies(noise, RATE, scale="l1")
    assert l1.shape == (30, 30) and (l1 >= 0).all() and (l1 <= 1).all()
    assert np.allclose(l1.sum(axis=0), 1.0)  # every band's column sums to 1 over the frames
    # the same energies as the dB levels: with a 1000 dB range, dB = 1 + (L - L_max) / 1000, L = 10 log10(E)
    db = audio.band_energies(noise, RATE, range_db=1000.0)
    energy = 10 ** ((db - 1) * 1000 / 10)  # linear energy up to one common factor
    assert np.allclose(l1, energy / energy.sum(axis=0), rtol=1e-6)


def test_l1_levels_follow_the_sound_over_time():
    l1 = audio.band_energies(np.concatenate([tone(500, 0.2, RATE), 0.3 * tone(2000, 0.2, RATE)]), RATE, scale="l1")
    low, high = np.argmax(l1[:15].sum(axis=0)), np.argmax(l1[15:].sum(axis=0))
    assert low < high  # the 500 Hz tone's band peaks in the first half, the 2 kHz tone's in the second


def test_l1_of_silence_is_zero_not_nan():
    assert np.array_equal(audio.band_energies(np.zeros(8000), RATE, scale="l1"), np.zeros((30, 30)))
    with pytest.raises(ValueError, match="scale must be one of"):
        audio.band_energies(np.zeros(8000), RATE, scale="log")


SPEAKERS = dict(voices=("en-us",), variants=("m1", "f1", "m3", "f3"), speeds=(170,), pitches=(50,))


def test_spoken_digits_with_l1_levels_store_them_as_analog(tmp_path):
    out = spoken_digits.convert(tmp_path / "s.h5", levels="l1", **SPEAKERS)
    params = read_meta(out)["encoding_params"]
    assert params["levels"] == "l1" and "range_db" not in params
    data = SpikeDataset(out, "train")
    analog = data.read_analog(np.arange(len(data)))
    # each band of each utterance sums to about 1 over the 30 frames (up to the 1/255 quantisation)
    assert np.allclose(analog.sum(axis=1), 1.0, atol=30 * 0.5 / 255 + 1e-6)
    with pytest.raises(PrepError, match="levels must be one of"):
        tidigits.write_utterances(tmp_path / "x.h5", {}, dataset="x", class_names=("a",), time_steps=30, seed=0,
                                  force=False, sequential=True, source="", levels="log")  # fmt: skip


def test_random_split_holds_out_utterances_of_every_speaker(tmp_path):
    out = spoken_digits.convert(tmp_path / "r.h5", split="random", test_fraction=0.25, **SPEAKERS)
    train, test = SpikeDataset(out, "train"), SpikeDataset(out, "test")
    assert (len(train), len(test)) == (30, 10)  # 4 speakers x 10 words, a quarter held out
    assert "random split" in read_meta(out)["source"]
    # the choice is fixed: a second conversion with another spike seed holds out the same utterances
    again = spoken_digits.convert(tmp_path / "r2.h5", split="random", test_fraction=0.25, seed=7, **SPEAKERS)
    assert [SpikeDataset(again, "test")[i][1].item() for i in range(10)] == [test[i][1].item() for i in range(10)]
    by_speaker = spoken_digits.convert(tmp_path / "s.h5", **SPEAKERS)
    assert len(SpikeDataset(by_speaker, "test")) == 10  # one of four speakers: every word once
    assert sorted(SpikeDataset(by_speaker, "test")[i][1].item() for i in range(10)) == list(range(10))
    with pytest.raises(PrepError, match="split must be one of"):
        spoken_digits.convert(tmp_path / "x.h5", split="words", **SPEAKERS)
