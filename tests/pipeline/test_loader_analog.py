"""Analog input: the spike file's ``analog`` levels, their checks, and loader batches of ``analog / L``."""

import h5py
import numpy as np
import pytest
import torch
from data_fixtures.spikes import id_spikes, make_spike_file, sample_ids

import mdn_snntorch.pipeline.loader
import mdn_snntorch.spikefile
import mdn_snntorch.spikefile.writer
from mdn_snntorch.pipeline.loader import SpikeLoader, spike_loader
from mdn_snntorch.spikefile import SpikeDataset, SpikeFileError, SpikeFileWriter, make_meta, pack_spikes

T, D, N, LEVELS = 3, 21, 101, 200


@pytest.fixture
def small_blocks(monkeypatch):
    """Files with 8-sample chunks and loaders with 24-sample windows, so a small file has many of both."""
    monkeypatch.setattr(mdn_snntorch.spikefile.writer, "CHUNK_BYTES", 8 * T * 3)
    monkeypatch.setattr(mdn_snntorch.pipeline.loader, "WINDOW_SAMPLES", 24)


def meta():
    return make_meta(
        dataset="ids", encoding="binary-id", encoding_params={}, time_steps=T, input_shape=(D,),
        class_names=[f"c{i}" for i in range(5)], seed=0, source="tests",
    )  # fmt: skip


def write_analog_file(path, analog, levels=LEVELS):
    """Spikes spelling the sample ids (so batches name their samples), labels ``id % 5`` and ``analog``."""
    with SpikeFileWriter(path, meta(), analog_levels=levels) as w:
        for split in ("train", "test"):
            n = len(analog)
            w.create_split(split, n)
            w.write(split, pack_spikes(id_spikes(np.arange(n), T, D)), np.arange(n) % 5, analog=analog)
    return path


@pytest.fixture
def analog_file(tmp_path, small_blocks):
    analog = np.random.default_rng(1).integers(0, LEVELS + 1, size=(N, T, D), dtype=np.uint8)
    return write_analog_file(tmp_path / "a.h5", analog), analog


@pytest.fixture
def plain_file(tmp_path, small_blocks):
    return make_spike_file(tmp_path / "ids.h5", n_train=N, time_steps=T, n_inputs=D)


def test_file_layout_and_reader(analog_file):
    path, analog = analog_file
    with h5py.File(path) as f:
        ds = f["train/analog"]
        assert ds.dtype == np.uint8 and ds.shape == (N, T, D) and ds.attrs["levels"] == LEVELS and ds.chunks
        assert np.array_equal(ds[()], analog)
    ds = SpikeDataset(path, "train")
    assert ds.analog_levels == LEVELS and ds.has_analog and ds.require_analog() == LEVELS
    assert ds.intensity_levels is None
    idx = np.array([0, 1, 2, 7, 40, 41, 100])
    values = ds.read_analog(idx)
    assert values.dtype == np.float32 and values.shape == (len(idx), T, D)
    assert np.array_equal(values, analog[idx].astype(np.float32) / np.float32(LEVELS))
    assert values.min() >= 0 and values.max() <= 1
    assert ds.read_analog(np.arange(0)).shape == (0, T, D)


def test_files_without_analog_stay_valid(plain_file):
    ds = SpikeDataset(plain_file, "train")
    assert ds.analog_levels is None and not ds.has_analog and len(ds) == N
    with pytest.raises(SpikeFileError, match=r"ids\.h5: split 'train' keeps no analog input.*tidigits, spoken_digits, timit"):
        ds.require_analog()
    with pytest.raises(SpikeFileError, match=r"ids\.h5: split 'train' keeps no analog input"):
        ds.read_analog(np.arange(3))
    assert len([y for _, y in spike_loader(plain_file, "train", 10)]) == 11  # spikes as before


def test_loader_asked_for_analog_of_a_file_without_it(plain_file):
    with pytest.raises(SpikeFileError, match=r"ids\.h5: split 'test' keeps no analog input \(dataset test/analog"):
        spike_loader(plain_file, "test", 10, analog=True)
    with pytest.raises(SpikeFileError, match="keeps no analog input"):
        SpikeLoader(SpikeDataset(plain_file, "train"), 10, analog=True)


def analog_epoch(loader, ds):
    """Every batch of one epoch checked against ``read_analog`` of the samples the same loader order holds."""
    spikes = SpikeLoader(
        ds, loader.batch_size, shuffle=loader.shuffle, seed=loader.seed, drop_last=loader.drop_last,
        rank=loader.rank, world_size=loader.world_size,
    )  # fmt: skip
    spikes.set_epoch(loader.epoch)
    order = []
    for (x, y), (s, y_s) in zip(loader, spikes, strict=True):
        ids = sample_ids(s.numpy(), T)
        assert x.dtype == torch.float32 and x.shape == (T, len(ids), D) and x.is_contiguous()
        assert torch.equal(y, y_s) and torch.equal(y, torch.from_numpy(ids % 5))
        assert np.array_equal(x.numpy(), ds.read_analog(np.sort(ids))[np.argsort(np.argsort(ids))].transpose(1, 0, 2))
        order.extend(ids.tolist())
    return order


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(shuffle=True, seed=3), dict(shuffle=True, seed=5, drop_last=True), dict(rank=1, world_size=2)]
)
def test_analog_batches_are_read_analog_in_the_loader_order(analog_file, kwargs):
    path, analog = analog_file
    loader = spike_loader(path, "train", 10, analog=True, **kwargs)
    order = analog_epoch(loader, loader.dataset)
    if not kwargs:
        assert order == list(range(N))
        x = torch.cat([x for x, _ in loader], dim=1)
        assert torch.equal(x, torch.from_numpy(analog.transpose(1, 0, 2).astype(np.float32) / LEVELS))
    loader.set_epoch(1)
    again = analog_epoch(loader, loader.dataset)
    assert len(again) == len(order) and (again == order) == (not loader.shuffle)  # shuffled: a new order


def test_analog_batches_with_workers(analog_file):
    path, _ = analog_file
    one = spike_loader(path, "train", 10, shuffle=True, seed=3, analog=True)
    two = spike_loader(path, "train", 10, shuffle=True, seed=3, analog=True, num_workers=2)
    key = lambda batches: sorted((tuple(y.tolist()), x.numpy().tobytes()) for x, y in batches)  # noqa: E731
    assert key(one) == key(two)


def test_analog_and_resample_exclude_each_other(analog_file):
    path, _ = analog_file
    with pytest.raises(ValueError, match=r"resample=True and analog=True"):
        spike_loader(path, "train", 10, resample=True, analog=True)
    with pytest.raises(ValueError, match=r"resample=True and analog=True"):
        SpikeLoader(SpikeDataset(path, "train"), 10, resample=True, analog=True)


def _replace_analog(path, data=None, levels=LEVELS, **create):
    with h5py.File(path, "r+") as f:
        old = f["train/analog"]
        data = old[()] if data is None and not create else data
        del f["train/analog"]
        ds = f["train"].create_dataset("analog", data=data, **create)
        if levels is not None:
            ds.attrs["levels"] = levels


@pytest.mark.parametrize(
    "damage, message",
    [
        (dict(data=np.zeros((N, T, D), np.float32)), r"train/analog is float32 \(101, 3, 21\), expected uint8 \[101, 3, 21\]"),
        (dict(data=np.zeros((N, T + 1, D), np.uint8)), r"train/analog is uint8 \(101, 4, 21\), expected uint8 \[101, 3, 21\]"),
        (dict(data=np.zeros((N - 1, T, D), np.uint8)), r"train/analog is uint8 \(100, 3, 21\), expected"),
        (dict(data=np.zeros((N, D), np.uint8)), r"train/analog is uint8 \(101, 21\), expected"),
        (dict(levels=None), r"train/analog has levels=None, expected an int in 1\.\.255"),
        (dict(levels=0), r"train/analog has levels=0, expected an int in 1\.\.255"),
        (dict(levels=256), r"train/analog has levels=256, expected an int in 1\.\.255"),
        (dict(levels=2.5), r"train/analog has levels=2\.5, expected an int in 1\.\.255"),
        (dict(levels="255"), r"train/analog has levels='255', expected an int in 1\.\.255"),
    ],
)
def test_damaged_analog_is_refused_naming_file_and_dataset(analog_file, damage, message):
    path, _ = analog_file
    _replace_analog(path, **damage)
    with pytest.raises(SpikeFileError, match=r"a\.h5: " + message):
        SpikeDataset(path, "train")
    assert SpikeDataset(path, "test").analog_levels == LEVELS  # the other split is untouched


def test_analog_values_above_the_levels_are_refused_when_read(analog_file):
    path, analog = analog_file
    _replace_analog(path, data=analog, levels=100)  # stored values up to 200
    ds = SpikeDataset(path, "train")
    with pytest.raises(SpikeFileError, match=r"a\.h5: train/analog holds values above its levels=100"):
        ds.read_analog(np.arange(N))
    with pytest.raises(SpikeFileError, match=r"a\.h5: train/analog holds values above its levels=100"):
        list(spike_loader(path, "train", 10, analog=True))


def test_analog_as_a_link_is_refused(analog_file):
    path, _ = analog_file
    with h5py.File(path, "r+") as f:
        del f["train/analog"]
        f["train/analog"] = h5py.SoftLink("/test/analog")
    with pytest.raises(SpikeFileError, match=r"a\.h5: train/analog is a link"):
        SpikeDataset(path, "train")


@pytest.mark.parametrize(
    "levels, analog, message",
    [
        (None, np.zeros((2, T, D), np.uint8), "analog levels go with analog_levels"),
        (4, None, "analog levels go with analog_levels"),
        (4, np.zeros((2, D), np.uint8), r"analog is \(2, 21\), expected \(2, 3, 21\)"),
        (4, np.full((2, T, D), 5), "analog levels outside 0..4"),
        (4, np.full((2, T, D), -1), "analog levels outside 0..4"),
        (4, np.full((2, T, D), 0.5), "analog levels must be integers"),
    ],
)
def test_writer_checks_analog(tmp_path, levels, analog, message):
    with pytest.raises(ValueError, match=message):
        with SpikeFileWriter(tmp_path / "x.h5", meta(), analog_levels=levels) as w:
            w.create_split("train", 2)
            w.write("train", pack_spikes(np.zeros((2, T, D), bool)), np.zeros(2, np.int64), analog=analog)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("levels", [0, 256, True, 2.0])
def test_writer_checks_analog_levels(tmp_path, levels):
    with pytest.raises(ValueError, match="analog_levels must be an int in 1..255"):
        SpikeFileWriter(tmp_path / "x.h5", meta(), analog_levels=levels)
