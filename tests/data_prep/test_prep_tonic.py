"""``mdn prep tonic``: tiny files in the real formats of POKER-DVS, DVS Gesture and SHD, read by tonic's own
classes (only the existence check is replaced) and binned by ToFrame; each frame checked against binning
done here by hand."""

import h5py
import numpy as np
import pytest
import tonic.datasets
from data_fixtures.formats import write_npy_events, write_shd

from data_prep import events
from data_prep.common import PrepError
from mdn_snntorch import cli
from mdn_snntorch.spikefile import SpikeDataset, read_meta, unpack_spikes


def random_events(rng, n, sensor, span_us):
    """Sorted events (x, y, p, t) on a ``sensor = (W, H, P)``, from t = 0 to t = span_us (both ends present)."""
    w, h, p = sensor
    t = np.sort(np.concatenate([[0, span_us], rng.integers(1, span_us, n - 2)]))
    return rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, p, n), t


def binned(x, y, p, t, sensor, steps, window=None):
    """Event counts ``[T, P * H * W]`` (layout [p, y, x]): T equal bins of the span (the last event, at the end,
    closes the last bin), or windows of ``window`` from the first event."""
    w, h, n_p = sensor
    width = (t[-1] - t[0]) // steps if window is None else window
    k = ((t - t[0]) // width).astype(int)
    keep = k < steps
    counts = np.zeros((steps, n_p, h, w), dtype=np.int64)
    np.add.at(counts, (k[keep], p[keep], y[keep], x[keep]), 1)
    return counts.reshape(steps, -1)


def stored(path, split):
    with h5py.File(path) as f:
        labels = f[split]["labels"][()]
        spikes = unpack_spikes(f[split]["spikes"][()], f.attrs["n_inputs"])
        analog = f[split]["analog"][()].reshape(len(labels), spikes.shape[1], -1) if "analog" in f[split] else None
    return labels, spikes, analog


# ---- POKER-DVS: npy events (t, x, y, p) in one folder per card symbol -----------------------------------
POKER = tonic.datasets.POKERDVS.sensor_size


@pytest.fixture(scope="module")
def poker(tmp_path_factory):
    root, rng, recs = tmp_path_factory.mktemp("poker"), np.random.default_rng(1), {}
    for folder, symbols in (("pips_train", ["cl", "he", "di", "sp"]), ("pips_test", ["sp", "he"])):
        for symbol in symbols:
            x, y, p, t = random_events(rng, 300, POKER, 5000)
            write_npy_events(root / "POKERDVS" / folder / symbol / f"{symbol}_0.npy", np.stack([t, x, y, p], 1))
            recs[folder[5:], tonic.datasets.POKERDVS.int_classes[symbol]] = (x, y, p, t)
    return root, recs


def test_poker_dvs_frames_and_labels(tmp_path, poker):
    root, recs = poker
    out = events.convert(tmp_path / "p.h5", dataset="pokerdvs", root=root, time_steps=5)
    meta = read_meta(out)
    assert meta["dataset"] == "pokerdvs" and meta["input_shape"] == [2, 35, 35]
    assert meta["class_names"] == ["cl", "he", "di", "sp"]
    for split, n in (("train", 4), ("test", 2)):
        labels, spikes, _ = stored(out, split)
        assert len(labels) == n and spikes.shape == (n, 5, 2 * 35 * 35)
        for label, sample in zip(labels, spikes):
            assert np.array_equal(sample, binned(*recs[split, label], POKER, 5) > 0)


def test_the_cli_converts_and_names_what_is_missing(tmp_path, poker, capsys):
    root, _ = poker
    out = tmp_path / "p.h5"
    assert cli.main(["prep", "tonic", "--dataset", "POKERDVS", "--root", str(root), "--out", str(out), "--time-steps", "3"]) == 0
    assert SpikeDataset(out, "test")[0][0].shape == (3, 2450)
    assert cli.main(["prep", "tonic", "--dataset", "NOPE", "--root", str(root), "--out", str(tmp_path / "n.h5")]) == 2
    assert "mdn prep tonic: error: unknown tonic dataset 'NOPE'; tonic" in capsys.readouterr().err
    empty = tmp_path / "empty"
    assert cli.main(["prep", "tonic", "--dataset", "POKERDVS", "--root", str(empty), "--out", str(tmp_path / "e.h5")]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"mdn prep tonic: error: no POKER-DVS recordings under {empty}/POKERDVS/pips_train. ")
    assert "\n" not in line
    assert "Expected tonic's layout:" in line and "--download" in line
    assert not (tmp_path / "e.h5").exists() and not (tmp_path / "n.h5").exists()


def test_time_steps_and_time_window_exclude_each_other(tmp_path, poker, capsys):
    argv = ["prep", "tonic", "--dataset", "POKERDVS", "--root", str(poker[0]), "--out", str(tmp_path / "x.h5")]
    assert cli.main([*argv, "--time-steps", "3", "--time-window", "1000"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_dataset_without_a_split_is_split_here_the_same_way_every_time(poker):
    class OneSplit(tonic.datasets.POKERDVS):  # POKER-DVS as a dataset tonic does not split
        def __init__(self, save_to, transform=None):
            super().__init__(save_to, train=True, transform=transform)

    OneSplit.__name__ = "POKERDVS"
    splits = events.open_splits(OneSplit, poker[0], False, 0.25)
    again = events.open_splits(OneSplit, poker[0], False, 0.25)
    assert (len(splits["train"]), len(splits["test"])) == (3, 1)
    assert set(splits["train"].indices) | set(splits["test"].indices) == {0, 1, 2, 3}
    assert np.array_equal(splits["test"].indices, again["test"].indices)


def test_a_dataset_without_a_fixed_sensor_or_without_classes_is_refused(tmp_path):
    recording = tmp_path / "NCALTECH101" / "Caltech101" / "airplane" / "image_0001.bin"
    recording.parent.mkdir(parents=True)
    recording.write_bytes(bytes(5))
    with pytest.raises(PrepError, match="tonic.datasets.NCALTECH101 has no fixed sensor size"):
        events.convert(tmp_path / "c.h5", dataset="NCALTECH101", root=tmp_path)
    with pytest.raises(PrepError, match="tonic.datasets.DSEC needs the argument"):
        events.convert(tmp_path / "d.h5", dataset="dsec", root=tmp_path)


# ---- DVS Gesture: npy events (x, y, p, t in ms), one folder per user and lighting ------------------------
GESTURE = tonic.datasets.DVSGesture.sensor_size


def test_dvs_gesture_keeps_event_counts_as_analog_levels(tmp_path):
    rng, recs = np.random.default_rng(2), {}
    layout = {"ibmGestureTrain": {"user01_fluorescent": [0, 3], "user02_led": [10]}, "ibmGestureTest": {"user03_natural": [4]}}
    for folder, users in layout.items():
        for user, gestures in users.items():
            for g in gestures:
                x, y, p, t = random_events(rng, 400, (4, 4, 2), 90)  # a 4 x 4 corner of the sensor: counts above 1
                write_npy_events(tmp_path / "DVSGesture" / folder / user / f"{g}.npy", np.stack([x, y, p, t], 1))
                recs[folder[10:].lower(), g] = (x, y, p, t * 1000)
    out = events.convert(tmp_path / "g.h5", dataset="DVSGesture", root=tmp_path, time_steps=4, count_levels=3)
    assert read_meta(out)["input_shape"] == [2, 128, 128] and len(read_meta(out)["class_names"]) == 11
    for split in ("train", "test"):
        labels, spikes, analog = stored(out, split)
        for label, sample, levels in zip(labels, spikes, analog):
            counts = binned(*recs[split, label], GESTURE, 4)
            assert np.array_equal(sample, counts > 0) and np.array_equal(levels, np.minimum(counts, 3))
            assert levels.max() == 3
    assert SpikeDataset(out, "train").analog_levels == 3


# ---- SHD: variable-length spike times and channels in HDF5 -----------------------------------------------
def test_shd_with_a_time_window(tmp_path):
    rng, window = np.random.default_rng(3), 10_000.0  # 10 ms frames
    keys = [f"word{k}" for k in range(20)]
    recs = {}
    for split, labels in (("train", [4, 19, 0]), ("test", [7])):
        files = []
        for k, label in enumerate(labels):
            steps = 3 + 2 * k  # recordings of different lengths: the longest sets T
            t_us = np.sort(rng.integers(0, steps, 50)) * window + window / 2  # mid-window times: no rounding at edges
            t_us[0] = 0.0
            units = rng.integers(0, 700, 50)
            files.append((t_us / 1e6, units))
            recs[split, label] = (units, t_us)
        write_shd(tmp_path / "SHD" / f"shd_{split}.h5", files, labels, keys)
    out = events.convert(tmp_path / "s.h5", dataset="SHD", root=tmp_path, time_window=window)
    meta = read_meta(out)
    longest = max(t[-1] - t[0] for _, t in recs.values())
    assert meta["time_steps"] == int(longest // window) + 1 == 7 and meta["input_shape"] == [1, 700]
    assert meta["class_names"] == keys and meta["encoding_params"]["time_window_us"] == window
    for split in ("train", "test"):
        labels, spikes, _ = stored(out, split)
        for label, sample in zip(labels, spikes):
            units, t_us = recs[split, int(label)]
            expected = np.zeros((7, 700), bool)
            expected[((t_us - t_us[0]) // window).astype(int), units] = True
            assert np.array_equal(sample, expected)


def test_a_time_window_too_short_for_the_recordings_is_refused(tmp_path):
    write_shd(tmp_path / "SHD" / "shd_train.h5", [(np.array([0.0, 2.0]), np.array([1, 2]))], [0], ["a"])
    write_shd(tmp_path / "SHD" / "shd_test.h5", [(np.array([0.0, 0.5]), np.array([1, 2]))], [0], ["a"])
    with pytest.raises(PrepError, match=r"--time-window 10 us gives 200001 time steps .* choose a longer window"):
        events.convert(tmp_path / "s.h5", dataset="SHD", root=tmp_path, time_window=10)


# ---- every format through the command line ----------------------------------------------------------------
def _gesture_root(root):
    rng = np.random.default_rng(4)
    for folder, user, g in (("ibmGestureTrain", "user01_led", 2), ("ibmGestureTest", "user02_led", 5)):
        x, y, p, t = random_events(rng, 100, (8, 8, 2), 50)
        write_npy_events(root / "DVSGesture" / folder / user / f"{g}.npy", np.stack([x, y, p, t], 1))


def _shd_root(root):
    rng = np.random.default_rng(5)
    for split in ("train", "test"):
        files = [(np.sort(rng.random(30)) * 0.2, rng.integers(0, 700, 30)) for _ in range(2)]
        write_shd(root / "SHD" / f"shd_{split}.h5", files, [1, 0], ["a", "b"])


@pytest.mark.parametrize(
    "name, write, inputs, missing",
    [("DVSGesture", _gesture_root, 2 * 128 * 128, "no DVS Gesture recordings under {root}/DVSGesture/ibmGestureTrain. "),
     ("SHD", _shd_root, 700, "no SHD files under {root}/SHD. ")],
)  # fmt: skip
def test_every_format_through_the_cli_and_a_root_without_its_files(tmp_path, capsys, name, write, inputs, missing):
    root, empty = tmp_path / "root", tmp_path / "empty"
    write(root)
    out = tmp_path / "out.h5"
    assert cli.main(["prep", "tonic", "--dataset", name, "--root", str(root), "--out", str(out), "--time-steps", "4"]) == 0
    x, _ = SpikeDataset(out, "train")[0]
    assert x.shape == (4, inputs) and x.sum() > 0
    assert cli.main(["prep", "tonic", "--dataset", name, "--root", str(empty), "--out", str(tmp_path / "e.h5")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"mdn prep tonic: error: {missing.format(root=empty)}") and "--download" in line
    assert not (tmp_path / "e.h5").exists()
