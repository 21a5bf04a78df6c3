"""The audio converters store ``analog``: the per-step probabilities their spikes were drawn from, round(255 p)."""

import h5py
import numpy as np
import pytest
from data_fixtures.formats import tone, write_sphere

from data_prep import audio, encode, spoken_digits, tidigits, timit
from mdn_snntorch.pipeline.loader import spike_loader
from mdn_snntorch.spikefile import SpikeDataset, read_meta, unpack_spikes

TIDIGITS_FILES = {  # path -> tone Hz; sorted path order within each split
    "test/girl/ef/3a.wav": 2400,
    "test/man/gh/7b.wav": 900,
    "train/man/ab/1a.wav": 400,
    "train/man/ab/za.wav": 800,
    "train/woman/cd/9b.wav": 1600,
}


@pytest.fixture(scope="module")
def tidigits_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tidigits")
    for name, freq in TIDIGITS_FILES.items():
        signal = np.concatenate([np.zeros(4000), tone(freq, 0.2, 20000), 0.05 * tone(3 * freq, 0.1, 20000)])
        write_sphere(root / name, signal, 20000)
    return root


def band_levels(root, split):
    """The float band levels ``[n, 30, 30]`` of a split's utterances, in the converter's order."""
    names = sorted(n for n in TIDIGITS_FILES if n.startswith(split))
    return np.stack([audio.band_energies(*audio.read_audio(root / n)) for n in names])


def stored(path, split):
    meta = read_meta(path)
    with h5py.File(path) as f:
        return unpack_spikes(f[split]["spikes"][()], meta["n_inputs"]), f[split]["analog"][()], f[split]["analog"].attrs["levels"]


def quantised(p):
    """round(255 p) as the converters compute it (from the float32 probabilities the encoder samples)."""
    return np.rint(np.asarray(p, np.float32) * np.float32(255)).astype(np.uint8)


def test_analog_levels_round_the_per_step_probabilities():
    p = np.array([[0.0, 0.5 / 255, 1.5 / 255 + 1e-4, 0.2, 254.4 / 255, 1.0]])
    assert encode.analog_levels(p, 3).tolist() == [[[0, 0, 2, 51, 254, 255]] * 3]  # [n, D]: the same at every step
    steps = np.random.default_rng(0).random((2, 4, 5))
    out = encode.analog_levels(steps, 4)
    assert out.dtype == np.uint8 and out.shape == (2, 4, 5) and out.flags.c_contiguous
    assert np.abs(out / 255 - steps).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"intensities must be \[n, D\] or \[n, 4, D\]"):
        encode.analog_levels(np.zeros((2, 3, 5)), 4)


@pytest.mark.parametrize("time_steps", [30, 60])
def test_tidigits_sequential_analog_is_the_frame_levels(tmp_path, tidigits_root, time_steps):
    out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root, time_steps=time_steps)
    k = time_steps // 30
    for split, n in (("train", 3), ("test", 2)):
        spikes, analog, levels = stored(out, split)
        p = band_levels(tidigits_root, split)
        assert levels == 255 and analog.dtype == np.uint8 and analog.shape == (n, time_steps, 30)
        assert np.array_equal(analog, quantised(np.repeat(p, k, axis=1)))  # step t shows frame t // k
        assert np.abs(analog / 255 - np.repeat(p, k, axis=1)).max() <= 0.5 / 255 + 1e-6
        assert not spikes[:, : 10 * k].any() and not analog[:, : 10 * k].any()  # silence first: level 0, no spikes
    ds = SpikeDataset(out, "train")
    assert ds.analog_levels == 255
    assert np.array_equal(ds.read_analog(np.arange(3)), analog_of(out, "train") / np.float32(255))


def analog_of(path, split):
    with h5py.File(path) as f:
        return f[split]["analog"][()].astype(np.float32)


def test_tidigits_non_sequential_analog_repeats_the_spectrogram(tmp_path, tidigits_root):
    out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root, sequential=False, time_steps=1000, seed=5)
    spikes, analog, _ = stored(out, "train")
    p = band_levels(tidigits_root, "train").reshape(3, 900)
    assert analog.shape == (3, 1000, 900) and np.array_equal(analog, np.broadcast_to(quantised(p)[:, None], analog.shape))
    # the spikes are Bernoulli(p) draws: their rate over 1,000 steps agrees with analog / 255 within 5 standard
    # deviations of the rate plus half a level (the rounding)
    rate, q = spikes.mean(axis=1), analog[:, 0] / 255
    sd = np.sqrt(p * (1 - p) / 1000)
    assert np.all(np.abs(rate - q) <= 5 * sd + 0.5 / 255 + 1e-6)
    assert abs(float((rate - q).mean())) < 0.002


def test_tidigits_sequential_spike_rate_over_seeds_follows_the_analog(tmp_path, tidigits_root):
    seeds, draws = 40, []
    for seed in range(seeds):
        out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root, seed=seed, force=True)
        spikes, analog, _ = stored(out, "test")
        draws.append(spikes)
    rate, q, p = np.mean(draws, axis=0), analog / 255, band_levels(tidigits_root, "test")  # analog: the same every seed
    # per input and step, 40 Bernoulli(p) draws: within 5 standard deviations (plus 1.5 draws) of p, and p within
    # half a level of analog / 255
    assert np.all(np.abs(rate - q) <= 5 * np.sqrt(p * (1 - p) / seeds) + 1.5 / seeds + 0.5 / 255 + 1e-6)
    assert abs(float((rate - q).mean())) < 0.005


def test_timit_analog_is_the_scaled_mfcc_per_step(tmp_path):
    root = tmp_path / "TIMIT"
    rng = np.random.default_rng(0)
    files = {"TRAIN/DR1/FCJF0/SA1.WAV": 0.5, "TRAIN/DR2/MDAB0/SX9.WAV": 0.4, "TEST/DR1/MABW0/SA2.WAV": 0.3}
    for name, seconds in files.items():
        n = int(16000 * seconds)
        write_sphere(root / name, 0.3 * rng.standard_normal(n) * np.hanning(n), 16000)
    out = timit.convert(tmp_path / "t.h5", root=root, time_steps=10, n_frames=100)
    for split, names in (("train", ["TRAIN/DR1/FCJF0/SA1.WAV", "TRAIN/DR2/MDAB0/SX9.WAV"]), ("test", ["TEST/DR1/MABW0/SA2.WAV"])):
        spikes, analog, levels = stored(out, split)
        m = np.stack([timit.mfcc_frames(root / name, 100).reshape(10, 10 * 13) for name in names])
        assert levels == 255 and analog.shape == (len(names), 10, 130)
        assert np.array_equal(analog, quantised(m))
        assert np.abs(analog / 255 - m).max() <= 0.5 / 255 + 1e-6
    frames = 1 + (int(16000 * 0.3) - 400) // 160  # the 0.3 s SA2: zero padding after its frames
    assert not analog[0].reshape(-1)[frames * 13 :].any() and not spikes[0].reshape(-1)[frames * 13 :].any()
    assert spike_loader(out, "train", 2, analog=True).dataset.analog_levels == 255


def test_spoken_digits_store_the_band_levels_as_analog(tmp_path):
    speakers = dict(voices=("en-us",), variants=("m1", "f1"), speeds=(170,), pitches=(50,))
    out = spoken_digits.convert(tmp_path / "s.h5", **speakers)
    split = spoken_digits.speaker_split(["en-us+m1", "en-us+f1"], spoken_digits.TEST_FRACTION)
    (speaker,) = split["test"]
    _, analog, levels = stored(out, "test")
    p = audio.band_energies(*spoken_digits.synthesise("espeak-ng", speaker, 170, 50, "three"))
    assert levels == 255 and analog.shape == (10, 30, 30) and np.array_equal(analog[3], quantised(p))
    ((x, y),) = list(spike_loader(out, "test", 10, analog=True))
    assert y.tolist() == list(range(10)) and np.array_equal(x.numpy(), analog.transpose(1, 0, 2) / np.float32(255))
