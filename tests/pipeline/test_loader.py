"""SpikeDataset and spike_loader: items, batches [T, B, D], shuffling, epochs, shards, workers, resampling."""

import pickle
from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from data_fixtures.spikes import id_spikes, make_spike_file, sample_ids

import mdn_snntorch.pipeline.loader
import mdn_snntorch.spikefile
import mdn_snntorch.spikefile.writer
from mdn_snntorch.pipeline.loader import plan_windows, spike_loader
from mdn_snntorch.spikefile import SpikeDataset, SpikeFileWriter, make_meta, pack_spikes

T, D = 3, 21


@pytest.fixture
def small_blocks(monkeypatch):
    """Files with 8-sample chunks and loaders with 24-sample windows, so a small file has many of both."""
    monkeypatch.setattr(mdn_snntorch.spikefile.writer, "CHUNK_BYTES", 8 * T * 3)
    monkeypatch.setattr(mdn_snntorch.pipeline.loader, "WINDOW_SAMPLES", 24)


@pytest.fixture
def path(tmp_path, small_blocks):
    return make_spike_file(tmp_path / "ids.h5", n_train=101, time_steps=T, n_inputs=D)


def epoch_ids(loader):
    batches = [(x, y) for x, y in loader]
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[0] == T and x.shape[2] == D and x.shape[1] == len(y)
        assert torch.equal(y, torch.from_numpy(sample_ids(x.numpy(), T) % 5))  # labels travel with their samples
    return [sample_ids(x.numpy(), T).tolist() for x, _ in batches]


def test_dataset_items(path):
    ds = SpikeDataset(path, "train")
    assert len(ds) == 101 and ds.n_inputs == D and ds.time_steps == T and ds.num_classes == 5 and ds.codes is None
    assert ds.block == 8
    x, y = ds[42]
    assert x.dtype == torch.float32 and x.shape == (T, D)
    assert np.array_equal(x.numpy(), id_spikes(np.array([42]), T, D)[0])
    assert y.dtype == torch.int64 and y.shape == () and int(y) == 42 % 5
    assert np.array_equal(ds[-1][0].numpy(), id_spikes(np.array([100]), T, D)[0])
    with pytest.raises(IndexError, match="out of range"):
        ds[101]


def test_dataset_pickles_without_its_file_handle(path):
    ds = SpikeDataset(path, "train")
    ds[0]  # opens the file in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    assert torch.equal(clone[5][0], ds[5][0])


@pytest.mark.parametrize("indices", [[0], [3, 4, 5, 9, 10, 50, 100], list(range(0, 101, 2)), list(range(101))])
def test_read_packed_equals_single_reads(path, indices):
    ds = SpikeDataset(path, "train")
    packed = ds.read_packed(np.array(indices))
    with h5py.File(path) as f:
        assert np.array_equal(packed, np.stack([f["train/spikes"][i] for i in indices]))


@pytest.mark.parametrize(
    "batch_size, drop_last, sizes", [(10, False, [10] * 10 + [1]), (10, True, [10] * 10), (101, False, [101])]
)
def test_in_order_batches(path, batch_size, drop_last, sizes):
    loader = spike_loader(path, "train", batch_size, drop_last=drop_last)
    ids = epoch_ids(loader)
    assert [len(b) for b in ids] == sizes and len(loader) == len(sizes)
    assert sum(ids, []) == list(range(sum(sizes)))


def test_shuffled_epoch_is_a_permutation_fixed_by_seed_and_epoch(path):
    loader = spike_loader(path, "train", 10, shuffle=True, seed=3)
    first = epoch_ids(loader)
    assert sorted(sum(first, [])) == list(range(101)) and sum(first, []) != list(range(101))
    assert epoch_ids(loader) == first  # same epoch, same order
    loader.set_epoch(1)
    second = epoch_ids(loader)
    assert second != first and sorted(sum(second, [])) == list(range(101))
    again = spike_loader(path, "train", 10, shuffle=True, seed=3)
    again.set_epoch(1)
    assert epoch_ids(again) == second
    assert epoch_ids(spike_loader(path, "train", 10, shuffle=True, seed=4)) != first


def test_shuffle_mixes_blocks_within_batches(path):
    """A batch is not one stored block: it draws samples from several 8-sample chunks."""
    ids = epoch_ids(spike_loader(path, "train", 8, shuffle=True, seed=0))
    assert np.mean([len({i // 8 for i in batch}) for batch in ids]) > 2


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_are_disjoint_and_equal(path, world_size, shuffle):
    loaders = [spike_loader(path, "train", 6, shuffle=shuffle, seed=1, rank=r, world_size=world_size) for r in range(world_size)]
    shards = [sum(epoch_ids(loader), []) for loader in loaders]
    assert (
        len({len(loader) for loader in loaders}) == 1
        and [len(list(loader)) for loader in loaders] == [len(loaders[0])] * world_size
    )
    assert all(len(s) == 101 // world_size for s in shards)
    flat = sum(shards, [])
    assert len(set(flat)) == len(flat) == 101 // world_size * world_size


def test_workers_deliver_the_same_batches(path):
    single = epoch_ids(spike_loader(path, "train", 10, shuffle=True, seed=2))
    workers = epoch_ids(spike_loader(path, "train", 10, shuffle=True, seed=2, num_workers=2))
    assert Counter(map(tuple, workers)) == Counter(map(tuple, single))


@pytest.mark.parametrize("resample", [False, True])
def test_read_ahead_delivers_the_same_batches_in_the_same_order(intensity_file, resample):
    path, _ = intensity_file
    read_when_asked = list(spike_loader(path, "train", 10, shuffle=True, seed=4, resample=resample, prefetch=0))
    read_ahead = list(spike_loader(path, "train", 10, shuffle=True, seed=4, resample=resample, prefetch=3))
    assert len(read_ahead) == len(read_when_asked) == 11
    for (x, y), (x0, y0) in zip(read_ahead, read_when_asked, strict=True):
        assert torch.equal(x, x0) and torch.equal(y, y0)


def test_windows_are_whole_batches(small_blocks):
    windows = plan_windows(101, 8, 5, shuffle=True, seed=0, epoch=0, drop_last=False, rank=0, world_size=1)
    assert all(len(w) % 5 == 0 for w in windows[:-1]) and sum(len(w) for w in windows) == 101


def test_bit_vector_targets(tmp_path, small_blocks):
    path = make_spike_file(tmp_path / "t.h5", n_train=20, targets=True)
    ds = SpikeDataset(path, "train")
    assert ds.codes.shape == (16, 4) and ds.codes.dtype == torch.float32 and ds.num_classes == 4
    x, y = next(iter(spike_loader(path, "train", 6)))
    assert y.dtype == torch.float32 and y.shape == (6, 4)
    assert torch.equal(y, ds.codes[torch.arange(6)])  # sample i has code i % 16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=4, world_size=2, rank=2), "rank"),
        (dict(batch_size=4, num_workers=-1), "num_workers"),
        (dict(batch_size=4, prefetch=-1), "prefetch"),
    ],
)
def test_bad_loader_arguments(path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spike_loader(path, "train", **kwargs)


def test_unknown_split(path):
    with pytest.raises(ValueError, match="split must be one of"):
        SpikeDataset(path, "valid")


LEVELS = 16


@pytest.fixture
def intensity_file(tmp_path, small_blocks):
    """101 samples whose first 7 inputs spell the sample id (intensity 0 or L: never / always a spike) and
    whose other 14 inputs have intensities 1 .. L-1 (randomly spiking with p = k / L)."""
    n, d = 101, D
    meta = make_meta(
        dataset="ids", encoding="rate-bernoulli", encoding_params={}, time_steps=T, input_shape=(d,),
        class_names=[f"c{i}" for i in range(5)], seed=0, source="tests",
    )  # fmt: skip
    ids = np.arange(n)
    intensity = np.zeros((n, d), dtype=np.uint8)
    intensity[:, :7] = ((ids[:, None] >> np.arange(6, -1, -1)) & 1) * LEVELS
    intensity[:, 7:] = 1 + (ids[:, None] + np.arange(14)) % (LEVELS - 1)
    stored = np.random.default_rng(0).integers(0, LEVELS, size=(n, T, d)) < intensity[:, None]
    with SpikeFileWriter(tmp_path / "p.h5", meta, intensity_levels=LEVELS) as w:
        for split in ("train", "test"):
            w.create_split(split, n)
            w.write(split, pack_spikes(stored), ids % 5, intensity)
    return tmp_path / "p.h5", intensity


def resampled_epoch(loader):
    """``(ids, x)`` of one epoch, checking every batch's shape, values, labels and id inputs."""
    ids, xs = [], []
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[0] == T and x.shape[2] == D and set(x.unique().tolist()) <= {0.0, 1.0}
        bits = x[:, :, :7]
        assert torch.equal(bits, bits[:1].expand_as(bits))  # p = 0 never spikes, p = 1 always does
        batch_ids = (bits[0] * (1 << torch.arange(6, -1, -1))).sum(1).long()
        assert torch.equal(y, batch_ids % 5)  # labels travel with their samples
        ids.append(batch_ids)
        xs.append(x)
    return torch.cat(ids), torch.cat(xs, dim=1)


def test_resample_draws_new_spikes_each_epoch_reproducibly(intensity_file):
    path, _ = intensity_file
    loader = spike_loader(path, "train", 10, shuffle=True, seed=3, resample=True)
    ids0, x0 = resampled_epoch(loader)
    assert sorted(ids0.tolist()) == list(range(101))
    stored = spike_loader(path, "train", 10, shuffle=True, seed=3)
    assert [y.tolist() for _, y in stored] == [y.tolist() for _, y in loader]  # same order as without resampling
    assert not torch.equal(x0, torch.cat([x for x, _ in stored], dim=1))  # but not the stored spikes
    assert torch.equal(resampled_epoch(loader)[1], x0)  # same seed and epoch: same draw
    loader.set_epoch(1)
    ids1, x1 = resampled_epoch(loader)
    redrawn = x1[:, ids1.argsort()][:, :, 7:] != x0[:, ids0.argsort()][:, :, 7:]
    assert 0.3 < redrawn.float().mean() < 0.7  # a fresh, independent draw for the random inputs
    workers = spike_loader(path, "train", 10, shuffle=True, seed=3, num_workers=2, resample=True)
    workers.set_epoch(1)
    ids_w, x_w = resampled_epoch(workers)
    assert torch.equal(x_w[:, ids_w.argsort()], x1[:, ids1.argsort()])  # each window has its own generator


def test_resampled_spike_rate_is_intensity_over_levels(intensity_file):
    path, intensity = intensity_file
    loader = spike_loader(path, "train", 101, resample=True)
    total = torch.zeros(101, D)
    epochs = 200
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        ((x, _),) = list(loader)
        total += x.sum(0)
    rate, p = total / (epochs * T), torch.from_numpy(intensity / LEVELS).float()
    sd = torch.sqrt(p * (1 - p) / (epochs * T))
    # exact Bernoulli(k / L), 600 draws each: 5.5 standard errors keep the chance of a false alarm over the 1,414
    # random rates below 1e-5 (the largest of them is about 3.5 sd for a typical draw, 4.6 for this seed's)
    assert torch.all((rate - p).abs() <= 5.5 * sd + 1e-9)
    assert abs(float((rate - p).mean())) < 0.003


def test_resample_needs_stored_intensities(path):
    with pytest.raises(mdn_snntorch.spikefile.SpikeFileError, match=r"ids\.h5: split 'train' keeps no intensities"):
        spike_loader(path, "train", 10, resample=True)


def test_writer_checks_intensities(tmp_path):
    meta = make_meta(
        dataset="ids", encoding="rate-bernoulli", encoding_params={}, time_steps=T, input_shape=(D,), class_names=["a"],
        seed=0, source="tests",
    )  # fmt: skip
    spikes = pack_spikes(np.zeros((2, T, D), bool))
    with pytest.raises(ValueError, match="outside 0..4"):
        with SpikeFileWriter(tmp_path / "x.h5", meta, intensity_levels=4) as w:
            w.create_split("train", 2)
            w.write("train", spikes, np.zeros(2, np.int64), np.full((2, D), 5))
    with pytest.raises(ValueError, match="intensities go with intensity_levels"):
        with SpikeFileWriter(tmp_path / "x.h5", meta) as w:
            w.create_split("train", 2)
            w.write("train", spikes, np.zeros(2, np.int64), np.zeros((2, D)))
    assert not (tmp_path / "x.h5").exists()
