"""Hostile spike files: every size the reader would allocate is checked before it is allocated, each refusal
one line naming the file and the field; the meta data copied into checkpoints and metrics stays small."""

from __future__ import annotations

import json
import zlib

import h5py
import numpy as np
import pytest
import torch
from data_fixtures.faults import TRAIN

from mdn_snntorch.spikefile import MAX_ATTRIBUTE_BYTES, SpikeDataset, SpikeFileError, limits, read_meta


def zlib_bomb(nbytes: int) -> bytes:
    """A zlib stream of about ``nbytes / 1000`` bytes that inflates to ``nbytes`` zero bytes (its checksum is wrong,
    which an inflater sees only at the end)."""
    stream, mib = zlib.compressobj(9), bytes(2**20)
    head = stream.compress(mib) + stream.flush(zlib.Z_FULL_FLUSH)
    body = stream.compress(mib) + stream.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every further MiB of zeros
    return head + body * (nbytes // 2**20 - 1) + stream.flush()


def _labels_chunk(f: h5py.File, payload: bytes) -> None:
    """``train/labels`` as one gzip chunk (its declared shape unchanged) holding ``payload``."""
    shape = f["train/labels"].shape
    del f["train/labels"]
    f.create_dataset("train/labels", shape=shape, dtype=np.int64, chunks=shape, compression="gzip")
    f["train/labels"].id.write_direct_chunk((0,), payload)


def _consistent(f: h5py.File, *, time_steps: int, n_inputs: int, n: int = 1) -> None:
    """Meta data and every split made to agree on ``time_steps`` x ``n_inputs`` with ``n`` samples of zeros,
    stored compressed (a forged file the shape checks accept)."""
    f.attrs.update(time_steps=time_steps, n_inputs=n_inputs, input_shape=np.array([n_inputs]))
    for split in ("train", "test"):
        for name in list(f[split]):
            del f[split][name]
        width = (n_inputs + 7) // 8
        rows = min(n, 2**16)
        f.create_dataset(f"{split}/spikes", data=np.zeros((n, time_steps, width), np.uint8),
                         chunks=(rows, time_steps, width), compression="gzip", compression_opts=9)  # fmt: skip
        f.create_dataset(f"{split}/labels", data=np.zeros(n, np.int64), chunks=(rows,), compression="gzip")


# ---- root attributes ----------------------------------------------------------------------------
def test_a_huge_attribute_is_refused_before_training(mdn, data, tmp_path):
    with h5py.File(data, "a") as f:
        f.attrs["junk"] = "x" * 2_000_000
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 2 and r.line == (
        f"mdn train: error: {data}: root attribute 'junk' takes the root attributes beyond {MAX_ATTRIBUTE_BYTES} bytes "
        f"(or {limits.MAX_CLASSES} elements); a spike file's meta data is small: refused"
    )
    assert not (tmp_path / "run").exists()


def test_too_many_attributes_are_refused(data):
    with h5py.File(data, "a") as f:
        for k in range(5000):
            f.attrs[f"a{k}"] = k
    with pytest.raises(SpikeFileError, match=f"{data}: 50[0-9]{{2}} root attributes; a spike file has at most 64"):
        read_meta(data)


def test_unknown_attributes_reach_checkpoints_and_metrics_as_a_digest_only(mdn, data, tmp_path):
    with h5py.File(data, "a") as f:
        f.attrs["notes"] = "n" * 500_000  # within the limit: accepted, but never copied
    run = tmp_path / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN).code == 0
    metrics = (run / "metrics.json").read_text()
    assert len(metrics) < 20_000 and "nnnnnnnn" not in metrics
    doc, checkpoint = json.loads(metrics), torch.load(run / "epoch_001.pt", weights_only=True)
    assert "notes" not in doc["data_meta"] and "notes" not in checkpoint["data_meta"]
    digest = SpikeDataset(data, "train").meta_digest
    assert doc["data_identity"]["meta_digest"] == checkpoint["data_identity"]["meta_digest"] == digest


def test_changing_an_unknown_attribute_changes_the_identity(data):
    before = SpikeDataset(data, "train").identity
    with h5py.File(data, "a") as f:
        f.attrs["notes"] = "changed"
    after = SpikeDataset(data, "train").identity
    assert before.meta == after.meta and before.meta_digest != after.meta_digest
    assert any(c.startswith("root attributes (digest") for c in before.changes(after))


# ---- declared sizes against the limits and what the file stores ----------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: _consistent(f, time_steps=1, n_inputs=2**28),
         "attribute 'n_inputs' is 268435456; a spike file has at most 4194304 inputs per time step"),
        (lambda f: _consistent(f, time_steps=200_000, n_inputs=8),
         "attribute 'time_steps' is 200000; a spike file has at most 100000 time steps"),
        (lambda f: _consistent(f, time_steps=4096, n_inputs=2**17),
         "time_steps x n_inputs = 536870912 spike bits per sample; a spike file has at most 268435456"),
        (lambda f: f.attrs.__setitem__("num_classes", 10**9),
         "attribute 'num_classes' is 1000000000; a spike file has at most 65536 classes"),
        (lambda f: f.attrs.__setitem__("num_classes", 11), "attribute 'num_classes' is 11 but 'class_names' names 10"),
        (lambda f: f.attrs.__setitem__("source", "s" * 5000), "attribute 'source' is 'sssss"),
        (lambda f: f.attrs.__setitem__("input_shape", np.ones(9, np.int64) * 2), "expected a list of 1..8 positive integers"),
    ],
    ids=["n-inputs-2^28", "time-steps-2e5", "sample-bits", "num-classes-1e9", "num-classes-vs-names", "long-source", "9-axes"],
)  # fmt: skip
def test_declared_sizes_beyond_the_limits_are_refused(data, edit, message):
    with h5py.File(data, "a") as f:
        edit(f)
    with pytest.raises(SpikeFileError, match="^" + str(data).replace(".", r"\.") + ": ") as err:
        SpikeDataset(data, "train")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_labels_that_inflate_far_beyond_their_declared_shape_are_refused_unread(mdn, data, tmp_path):
    """1347 labels (10.8 kB) declared, one stored chunk of about 1 MB that inflates to 1 GiB."""
    with h5py.File(data, "a") as f:
        _labels_chunk(f, zlib_bomb(2**30))
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 2 and f"{data}: cannot read train/labels samples 0..1346: the chunk at (0,) stores " in r.line
    assert "bytes for 10776 declared (damaged or forged file)" in r.line


def test_a_chunk_that_inflates_beyond_its_declared_size_stops_at_it(data):
    """A stored size within the chunk's own (10.8 kB) whose stream inflates to about 10 MB."""
    with h5py.File(data, "a") as f:
        _labels_chunk(f, zlib.compress(bytes(10_000_000), 9))
    with pytest.raises(
        SpikeFileError, match=r"train/labels samples 0\.\.1346: the chunk at \(0,\) inflates beyond its declared 10776 bytes"
    ):
        SpikeDataset(data, "train")


def test_a_spikes_chunk_that_inflates_beyond_its_declared_size_stops_at_it(mdn, data, tmp_path):
    with h5py.File(data, "a") as f:
        ds = f["train/spikes"]
        nbytes = int(np.prod(ds.chunks))
        ds.id.write_direct_chunk((0, 0, 0), zlib.compress(bytes(1000 * nbytes), 9)[: nbytes // 2])
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 2 and f"{data}: cannot read train/spikes samples 0.." in r.line and "inflates beyond its declared" in r.line


def test_declared_sample_counts_are_checked_against_the_available_memory(data, monkeypatch):
    with h5py.File(data, "a") as f:
        _consistent(f, time_steps=1, n_inputs=8, n=10_000_000)  # 80 MB of labels (and 10 MB of spikes), stored compressed
    monkeypatch.setattr(limits, "available_memory", lambda: 64 * 10**6)
    with pytest.raises(SpikeFileError, match=r"train/labels needs 160\.0 MB in memory \(\(10000000,\) int64, read whole\) "
                                            r"and 64\.0 MB are available; refused"):  # fmt: skip
        SpikeDataset(data, "train")
    monkeypatch.setattr(limits, "available_memory", lambda: 10**9)
    assert len(SpikeDataset(data, "train")) == 10_000_000


def test_a_chunk_larger_than_the_available_memory_is_refused(data, monkeypatch):
    """The digits' first decoded chunk (of spikes or of analog intensities) takes more than half of 100 kB."""
    monkeypatch.setattr(limits, "available_memory", lambda: 100_000)
    with pytest.raises(SpikeFileError, match=r"train/(spikes|intensity) needs .* in memory \(one decoded chunk of \d+ samples\)"):
        SpikeDataset(data, "train")
