"""N-MNIST converter on 5-byte event files read by tonic (read_mnist_file, ToFrame)."""

import h5py
import numpy as np
import pytest
from data_fixtures import legacy_nmnist
from data_fixtures.formats import nmnist_bytes

from data_prep import events, nmnist
from data_prep.common import PrepError
from mdn_snntorch.spikefile import read_meta, unpack_spikes

T = 4
SPAN = 4000  # us; bins of SPAN // T = 1000 us, starting at the first event


def recording(digit, k):
    """Events (x, y, p, t): one per time bin at a position set by digit and bin, plus the two end anchors
    (t = 0 in bin 0; t = SPAN closes the last bin and is not counted)."""
    events = [(digit, k, 0, 0)] + [(digit + 3 * b, 33 - k - b, b % 2, 1000 * b + 500) for b in range(T)] + [(0, 0, 1, SPAN)]
    return events


def expected_frames(events):
    """[T, 2, 34, 34] binary frames: bin = (t - t0) // (span // T), the event at t = t0 + span excluded."""
    frames = np.zeros((T, 2, 34, 34), dtype=bool)
    t0, width = events[0][3], (events[-1][3] - events[0][3]) // T
    for x, y, p, t in events:
        if t - t0 < T * width:
            frames[(t - t0) // width, p, y, x] = True
    return frames.reshape(T, -1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for folder, digits in (("Train", [0, 3, 3, 7]), ("Test", [5, 1])):
        for k, digit in enumerate(digits):
            path = root / "NMNIST" / folder / str(digit) / f"{k:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(nmnist_bytes(recording(digit, k)))
    return root


def test_frames_and_labels(tmp_path, root):
    out = nmnist.convert(tmp_path / "n.h5", root=root, time_steps=T)
    meta = read_meta(out)
    assert meta["input_shape"] == [2, 34, 34] and meta["n_inputs"] == 2312 and meta["num_classes"] == 10
    with h5py.File(out) as f:
        for split, digits in (("train", [0, 3, 3, 7]), ("test", [1, 5])):  # tonic sorts the digit folders
            assert f[split]["labels"][()].tolist() == digits
            spikes = unpack_spikes(f[split]["spikes"][()], 2312)
            assert spikes.shape == (len(digits), T, 2312)
            for i, digit in enumerate(digits):
                k = {"train": [0, 1, 2, 3], "test": [1, 0]}[split][i]
                assert np.array_equal(spikes[i], expected_frames(recording(digit, k)))


def test_seed_does_not_change_event_frames(tmp_path, root):
    a = nmnist.convert(tmp_path / "a.h5", root=root, time_steps=T, seed=0)
    b = nmnist.convert(tmp_path / "b.h5", root=root, time_steps=T, seed=5)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert np.array_equal(fa["train/spikes"][()], fb["train/spikes"][()])


def test_missing_recordings(tmp_path):
    (tmp_path / "NMNIST" / "Train").mkdir(parents=True)
    with pytest.raises(PrepError, match=r"no N-MNIST recordings under .*Train.*<digit>/<id>\.bin"):
        nmnist.convert(tmp_path / "n.h5", root=tmp_path)


def test_recording_without_events_has_no_spikes(tmp_path, root):
    raw = tmp_path / "raw"
    for folder in ("Train", "Test"):
        (raw / "NMNIST" / folder / "4").mkdir(parents=True)
        (raw / "NMNIST" / folder / "4" / "00000.bin").write_bytes(b"")
    with h5py.File(nmnist.convert(tmp_path / "n.h5", root=raw, time_steps=T)) as f:
        assert f["test/spikes"].shape == (1, T, 289) and not f["test/spikes"][()].any()


def test_broken_recording_names_the_file(tmp_path, root):
    bad = tmp_path / "raw"
    (bad / "NMNIST" / "Train" / "2").mkdir(parents=True)
    (bad / "NMNIST" / "Train" / "2" / "00000.bin").write_bytes(bytes(range(7)))  # not whole 5-byte events
    (bad / "NMNIST" / "Test" / "2").mkdir(parents=True)
    (bad / "NMNIST" / "Test" / "2" / "00000.bin").write_bytes(nmnist_bytes(recording(2, 0)))
    with pytest.raises(PrepError, match=r"Train/2/00000\.bin"):
        nmnist.convert(tmp_path / "n.h5", root=bad, time_steps=T)
    assert not (tmp_path / "n.h5").exists()


@pytest.mark.parametrize("time_steps", [T, 7])
def test_the_output_is_byte_identical_to_the_converter_before_mdn_prep_tonic(tmp_path, root, time_steps):
    """N-MNIST is now one dataset of ``mdn prep tonic``; for the same settings it writes the same bytes as the
    dedicated converter it replaced (kept in data_fixtures/legacy_nmnist.py)."""
    before = legacy_nmnist.convert(tmp_path / "before.h5", root=root, time_steps=time_steps, seed=3)
    now = nmnist.convert(tmp_path / "now.h5", root=root, time_steps=time_steps, seed=3)
    through_tonic = events.convert(tmp_path / "tonic.h5", dataset="NMNIST", root=root, time_steps=time_steps, seed=3)
    assert before.read_bytes() == now.read_bytes() == through_tonic.read_bytes()
