"""Speech converters: TIDIGITS and TIMIT trees of NIST SPHERE files (read by soundfile), spoken digits
from espeak-ng, and the audio features they share."""

import h5py
import numpy as np
import pytest
from data_fixtures.formats import tone, write_sphere

from data_prep import audio, spoken_digits, tidigits, timit
from data_prep.common import PrepError
from mdn_snntorch.spikefile import read_meta, unpack_spikes


def spikes_of(path, split):
    meta = read_meta(path)
    with h5py.File(path) as f:
        return unpack_spikes(f[split]["spikes"][()], meta["n_inputs"]), f[split]["labels"][()]


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_band_energies_peak_in_the_band_of_a_tone(freq):
    rate = 20000
    levels = audio.band_energies(tone(freq, 0.5, rate), rate)
    assert levels.shape == (30, 30) and levels.min() >= 0 and levels.max() == 1
    edges = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(rate / 2), 32))
    peak = levels.mean(axis=0).argmax()
    assert edges[peak] <= freq <= edges[peak + 2]  # the triangle of band b spans edges b .. b + 2


def test_band_energies_frames_cover_the_utterance_in_order():
    rate = 20000
    signal = np.concatenate([np.zeros(rate // 2), tone(1000, 0.5, rate)])  # silence, then a tone
    levels = audio.band_energies(signal, rate)
    assert np.all(levels[:14] == 0) and np.all(levels[16:].max(axis=1) > 0.99)


def test_mfcc_frames():
    m = audio.mfcc(tone(440, 1.0, 16000), 16000)
    assert m.shape == (1 + (16000 - 400) // 160, 13)
    scaled = audio.minmax_columns(m)
    assert scaled.min() == 0 and scaled.max() == 1


TIDIGITS_FILES = {  # path -> (tone Hz, label with oh dropped)
    "train/man/ab/1a.wav": (400, 1),
    "train/man/ab/za.wav": (800, 0),
    "train/man/ab/oa.wav": (600, None),  # "oh"
    "train/man/ab/12a.wav": (500, None),  # two digits: not isolated
    "train/woman/cd/9b.wav": (1600, 9),
    "test/girl/ef/3a.wav": (2400, 3),
    "test/girl/ef/ob.wav": (700, None),
}


@pytest.fixture(scope="module")
def tidigits_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tidigits")
    for name, (freq, _) in TIDIGITS_FILES.items():
        signal = np.concatenate([np.zeros(4000), tone(freq, 0.2, 20000)])  # 0.2 s silence, 0.2 s tone
        write_sphere(root / name, signal, 20000)
    return root


def test_tidigits_sequential(tmp_path, tidigits_root):
    out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root)
    meta = read_meta(out)
    assert meta["time_steps"] == 30 and meta["input_shape"] == [30] and meta["num_classes"] == 10
    assert meta["encoding"] == "frames-bernoulli"
    spikes, labels = spikes_of(out, "train")
    assert labels.tolist() == [1, 0, 9]  # sorted paths; "oh" and the two-digit file left out
    assert spikes_of(out, "test")[1].tolist() == [3]
    assert spikes.shape == (3, 30, 30)
    assert not spikes[:, :14].any() and spikes[:, 16:].any(axis=2).all()  # one frame per step: silence first


@pytest.mark.parametrize(
    "oh, train_labels, num_classes", [("drop", [1, 0, 9], 10), ("zero", [1, 0, 0, 9], 10), ("class", [1, 10, 0, 9], 11)]
)
def test_tidigits_oh(tmp_path, tidigits_root, oh, train_labels, num_classes):
    out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root, oh=oh)
    assert spikes_of(out, "train")[1].tolist() == train_labels and read_meta(out)["num_classes"] == num_classes


def test_tidigits_non_sequential_rates_follow_the_spectrogram(tmp_path, tidigits_root):
    out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root, sequential=False, time_steps=400, seed=3)
    meta = read_meta(out)
    assert meta["input_shape"] == [30, 30] and meta["n_inputs"] == 900 and meta["encoding"] == "spectrogram-bernoulli"
    spikes, _ = spikes_of(out, "test")
    levels = audio.band_energies(*audio.read_audio(tidigits_root / "test/girl/ef/3a.wav"))
    assert np.abs(spikes[0].mean(axis=0) - levels.ravel()).mean() < 0.02


def test_tidigits_groups(tmp_path, tidigits_root):
    with pytest.raises(PrepError, match="no isolated-digit utterances for split"):  # no women in the test split
        tidigits.convert(tmp_path / "t.h5", root=tidigits_root, groups=("woman",))
    out = tidigits.convert(tmp_path / "t.h5", root=tidigits_root, groups=("man", "girl"))
    assert spikes_of(out, "train")[1].tolist() == [1, 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(time_steps=31), "time_steps=31 must be a multiple of n_frames=30"),
        (dict(oh="maybe"), "oh must be one of"),
        (dict(groups=("elders",)), "unknown speaker group"),
    ],
)
def test_tidigits_bad_arguments(tmp_path, tidigits_root, kwargs, message):
    with pytest.raises(PrepError, match=message):
        tidigits.convert(tmp_path / "t.h5", root=tidigits_root, **kwargs)


def test_tidigits_missing_root_says_where_to_get_it(tmp_path):
    with pytest.raises(PrepError, match=r"not a directory.*train,test.*LDC93S10"):
        tidigits.convert(tmp_path / "t.h5", root=tmp_path / "nowhere")


def test_tidigits_corrupt_audio_names_the_file(tmp_path, tidigits_root):
    root = tmp_path / "copy"
    for name in ("train/man/ab/1a.wav", "test/girl/ef/3a.wav"):
        write_sphere(root / name, tone(500, 0.3, 20000), 20000)
    (root / "train/man/ab/2a.wav").write_bytes(b"NIST_1A\n   1024\nbroken")
    with pytest.raises(PrepError, match=r"2a\.wav: cannot read audio"):
        tidigits.convert(tmp_path / "t.h5", root=root)
    assert not (tmp_path / "t.h5").exists()


TIMIT_FILES = {  # path -> seconds
    "TRAIN/DR1/FCJF0/SA1.WAV": 0.5,
    "TRAIN/DR1/FCJF0/SI648.WAV": 0.3,
    "TRAIN/DR2/MDAB0/SX9.WAV": 0.4,
    "TEST/DR1/MABW0/SA2.WAV": 0.3,
    "TEST/DR3/FCMR0/SI1105.WAV": 0.3,
}


@pytest.fixture(scope="module")
def timit_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("timit")
    rng = np.random.default_rng(0)
    for name, seconds in TIMIT_FILES.items():
        write_sphere(root / name, 0.3 * rng.standard_normal(int(16000 * seconds)) * np.hanning(int(16000 * seconds)), 16000)
    # some copies add a RIFF version of every file: read once per sentence
    write_sphere(root / "TRAIN/DR1/FCJF0/SA1.WAV.wav", tone(300, 0.5, 16000), 16000)
    return root


def test_timit_gender_labels_split_and_padding(tmp_path, timit_root):
    out = timit.convert(tmp_path / "t.h5", root=timit_root)
    meta = read_meta(out)
    assert meta["time_steps"] == 20 and meta["input_shape"] == [40, 13] and meta["n_inputs"] == 520
    assert meta["class_names"] == ["female", "male"]
    spikes, labels = spikes_of(out, "train")
    assert labels.tolist() == [0, 0, 1] and spikes_of(out, "test")[1].tolist() == [1, 0]
    frames = 1 + (8000 - 400) // 160  # the 0.5 s SA1: 48 MFCC frames, then zero padding
    assert spikes[0, 0].any() and spikes[0, 1, : (frames - 40) * 13].any()
    assert not spikes[0, 1, (frames - 40) * 13 :].any() and not spikes[0, 2:].any()


def test_timit_without_sa_sentences(tmp_path, timit_root):
    out = timit.convert(tmp_path / "t.h5", root=timit_root, include_sa=False, time_steps=10, n_frames=100)
    assert spikes_of(out, "train")[0].shape == (2, 10, 130) and spikes_of(out, "test")[1].tolist() == [0]


@pytest.mark.parametrize("time_steps", [30, 7])
def test_timit_time_steps_must_divide_the_frames(tmp_path, timit_root, time_steps):
    with pytest.raises(PrepError, match=f"time_steps={time_steps} must divide n_frames=800"):
        timit.convert(tmp_path / "t.h5", root=timit_root, time_steps=time_steps)


def test_timit_missing_split(tmp_path):
    write_sphere(tmp_path / "TIMIT/TRAIN/DR1/FAKS0/SA1.WAV", tone(200, 0.3, 16000), 16000)
    with pytest.raises(PrepError, match=r"no TIMIT utterances for split\(s\) test.*LDC93S1"):
        timit.convert(tmp_path / "t.h5", root=tmp_path / "TIMIT")


SPEAKERS = dict(voices=("en-us",), variants=("m1", "f1"), speeds=(170,), pitches=(50,))


def test_spoken_digits_through_the_tidigits_path(tmp_path):
    out = spoken_digits.convert(tmp_path / "s.h5", **SPEAKERS)
    meta = read_meta(out)
    assert meta["dataset"] == "spoken_digits" and meta["input_shape"] == [30] and meta["class_names"][3] == "three"
    for split in ("train", "test"):  # one speaker each: every word once
        spikes, labels = spikes_of(out, split)
        assert labels.tolist() == list(range(10)) and spikes.shape == (10, 30, 30)
        assert 0.05 < spikes.mean() < 0.95
        assert len({s.tobytes() for s in spikes}) == 10
    again = spoken_digits.convert(tmp_path / "again.h5", **SPEAKERS)
    assert np.array_equal(spikes_of(again, "train")[0], spikes_of(out, "train")[0])


def test_spoken_digits_without_espeak(tmp_path):
    with pytest.raises(PrepError, match="apt-get install espeak-ng"):
        spoken_digits.convert(tmp_path / "s.h5", espeak=str(tmp_path / "no-espeak-ng"), **SPEAKERS)


def test_spoken_digits_unknown_voice(tmp_path):
    with pytest.raises(PrepError, match="failed"):
        spoken_digits.convert(tmp_path / "s.h5", **{**SPEAKERS, "voices": ("xx-nonexistent",)})
    assert not (tmp_path / "s.h5").exists()
