"""``SpikeDataset`` as a plain map-style dataset: batched reads decode each chunk once, decoded chunks are
cached within their budget, the HDF5 handle belongs to one process, and pathological chunking is one warning."""

import os
import pickle
import warnings

import h5py
import numpy as np
import pytest
import torch
from data_fixtures.spikes import id_spikes, make_spike_file, sample_ids
from torch.utils.data import DataLoader

from mdn_snntorch.spikefile import ChunkingWarning, SpikeDataset, chunks, dataset, pack_spikes, writer

T, D = 3, 21


@pytest.fixture
def ids(tmp_path, monkeypatch):
    """250 train samples in chunks of 16 (the last one partial); sample i is the bit pattern of i."""
    monkeypatch.setattr(writer, "CHUNK_BYTES", 16 * T * 3)
    return make_spike_file(tmp_path / "ids.h5", n_train=250, time_steps=T, n_inputs=D)


def ids_of(spikes: torch.Tensor) -> np.ndarray:
    """Sample ids of a batch ``[B, T, D]``."""
    return sample_ids(spikes.transpose(0, 1).numpy(), T)


@pytest.fixture
def fetches(monkeypatch):
    """The blocks (chunk rows) decoded, in order."""
    seen = []
    fetch = chunks.BlockReader._fetch

    def counted(self, ds, k):
        if self.where.endswith("spikes"):
            seen.append(k)
        return fetch(self, ds, k)

    monkeypatch.setattr(chunks.BlockReader, "_fetch", counted)
    return seen


def test_items_and_batches_are_the_stored_samples(ids):
    ds = SpikeDataset(ids, "train")
    x, y = ds[37]
    assert x.shape == (T, D) and x.dtype == torch.float32 and int(y) == 37 % 5
    assert torch.equal(x, torch.from_numpy(id_spikes(np.array([37]), T, D)[0]).float())
    order = [200, 3, 3, 249, -1, 16, 15]
    batch = ds.__getitems__(order)
    assert [int(i) for i in ids_of(torch.stack([b[0] for b in batch]))] == [200, 3, 3, 249, 249, 16, 15]
    assert all(torch.equal(a[0], ds[i][0]) and a[1] == ds[i][1] for a, i in zip(batch, order))
    with pytest.raises(IndexError, match="index 250 out of range for 250 samples"):
        ds[250]


def test_a_batch_decodes_each_chunk_it_touches_once(ids, fetches):
    ds = SpikeDataset(ids, "train", cache_bytes=0)  # no cache beyond the one block a read needs
    ds.__getitems__([17, 40, 16, 31, 45, 18])  # chunks 1 (16..31) and 2 (32..47)
    assert sorted(fetches) == [1, 2]


def test_decoded_chunks_are_cached_within_their_budget(ids, fetches):
    whole = SpikeDataset(ids, "train")  # the whole split fits the default budget: each chunk decoded once ever
    for _ in range(3):
        for start in range(0, 250, 50):
            whole.__getitems__(list(range(start, start + 50)))
    assert sorted(fetches) == list(range(16))
    fetches.clear()
    small = SpikeDataset(ids, "train", cache_bytes=2 * 16 * T * 3)  # room for two decoded chunks
    for i in (0, 16, 0, 16, 32, 0):
        small[i]
    assert fetches == [0, 1, 2, 0] and small._readers["spikes"].cached_blocks == 2


def test_a_dataloader_with_shuffle_reads_whole_batches(ids, monkeypatch):
    ds = SpikeDataset(ids, "train")
    monkeypatch.setattr(SpikeDataset, "__getitem__", lambda self, i: pytest.fail("read one sample at a time"))
    seen = []
    for x, y in DataLoader(ds, batch_size=100, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert x.shape[1:] == (T, D) and y.dtype == torch.int64
        got = ids_of(x)
        assert np.array_equal(y.numpy(), got % 5)
        seen.extend(got.tolist())
    assert sorted(seen) == list(range(250)) and seen != sorted(seen)


def test_workers_open_their_own_handle_and_deliver_the_same_batches(ids):
    ds = SpikeDataset(ids, "train")
    ds[0]
    assert ds.open_in_pid == os.getpid()
    state = pickle.loads(pickle.dumps(ds))  # what a spawned worker gets: no handle, no decoded chunks
    assert state.open_in_pid is None and state._readers["spikes"].cached_blocks == 0

    def epoch(workers):
        loader = DataLoader(ds, batch_size=30, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(1))
        return torch.cat([x for x, _ in loader])

    assert torch.equal(epoch(0), epoch(2))
    assert ds.open_in_pid == os.getpid()  # the workers' handles stayed in the workers


def test_after_a_fork_the_child_opens_its_own_handle(ids):
    ds = SpikeDataset(ids, "train")
    ds[0]
    parent = ds._file
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reads through a handle of its own, then reports
        try:
            ok = ds[100][0].sum() >= 0 and ds.open_in_pid == os.getpid() and ds._file is not parent
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert ds._file is parent and ds._file.id.valid and ds[200][1] == 0


def test_a_file_stored_in_one_huge_chunk_gets_one_warning_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "CHUNK_BYTES", 16 * T * 3)
    out = make_spike_file(tmp_path / "ok.h5", n_train=400, time_steps=T, n_inputs=D)
    bad = tmp_path / "one-chunk.h5"
    with h5py.File(out) as src, h5py.File(bad, "w") as dst:
        dst.attrs.update(src.attrs)
        for split in ("train", "test"):
            spikes = src[f"{split}/spikes"]
            dst.create_dataset(f"{split}/spikes", data=spikes[()], chunks=spikes.shape, compression="gzip")
            dst.create_dataset(f"{split}/labels", data=src[f"{split}/labels"][()])
    monkeypatch.setattr(dataset, "PATHOLOGICAL_CHUNK_BYTES", 2000)  # 400 samples x 9 bytes = 3.6 kB per chunk
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpikeDataset(out, "train")  # the writer's own chunking: no warning
    with pytest.warns(ChunkingWarning) as caught:
        ds = SpikeDataset(bad, "train")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{bad}: train/spikes is stored in chunks of 400 samples (3.6 kB decoded)")
    assert "mdn prep <dataset> --force" in message and "\n" not in message
    assert np.array_equal(ids_of(torch.stack([x for x, _ in ds.__getitems__([5, 399])])), [5, 399])


def test_pack_and_read_agree_for_every_sample(ids):
    """The whole split through one batched read is the bit patterns written (no sample lost at chunk edges)."""
    ds = SpikeDataset(ids, "train")
    x = torch.stack([s for s, _ in ds.__getitems__(range(250))])
    assert np.array_equal(pack_spikes(x.numpy()), pack_spikes(id_spikes(np.arange(250), T, D)))
