"""The HDF5 spike-file format: bit packing, meta data, validation errors and atomic writes."""

import h5py
import numpy as np
import pytest
from data_fixtures.spikes import id_spikes, make_spike_file

from mdn_snntorch.spikefile import (
    COMPRESSION,
    FORMAT,
    META_KEYS,
    VERSION,
    SpikeDataset,
    SpikeFileError,
    SpikeFileWriter,
    make_meta,
    pack_spikes,
    packed_width,
    read_meta,
    unpack_spikes,
)


@pytest.mark.parametrize("n_inputs", [1, 7, 8, 13, 784])
def test_pack_unpack_round_trip(n_inputs):
    spikes = np.random.default_rng(n_inputs).random((4, 3, n_inputs)) < 0.3
    packed = pack_spikes(spikes)
    assert packed.dtype == np.uint8 and packed.shape == (4, 3, packed_width(n_inputs)) == (4, 3, -(-n_inputs // 8))
    out = unpack_spikes(packed, n_inputs)
    assert out.dtype == np.float32 and np.array_equal(out, spikes.astype(np.float32))


def test_bit_order_is_big_endian_per_byte():
    spikes = np.zeros((1, 10), dtype=bool)
    spikes[0, [0, 9]] = True  # feature 0 -> bit 7 of byte 0, feature 9 -> bit 6 of byte 1
    assert pack_spikes(spikes).tolist() == [[0b10000000, 0b01000000]]


def test_meta_round_trips_as_plain_python(tmp_path):
    path = make_spike_file(tmp_path / "s.h5", n_train=10)
    meta = read_meta(path)
    assert set(META_KEYS) <= set(meta)
    assert meta["format"] == FORMAT and meta["version"] == VERSION
    assert meta["input_shape"] == [21] and meta["n_inputs"] == 21 and meta["time_steps"] == 3
    assert meta["class_names"] == ["c0", "c1", "c2", "c3", "c4"] and meta["num_classes"] == 5
    assert meta["encoding_params"] == {"row": "bits of id * T + t"} and meta["target_kind"] == "labels"
    assert isinstance(meta["time_steps"], int) and isinstance(meta["package_version"], str)


def test_file_layout(tmp_path):
    path = make_spike_file(tmp_path / "s.h5", n_train=10, n_test=4)
    with h5py.File(path) as f:
        assert f["train/spikes"].shape == (10, 3, 3) and f["train/spikes"].dtype == np.uint8
        assert (f["train/spikes"].compression, f["train/spikes"].compression_opts) == COMPRESSION and f["train/spikes"].chunks
        assert f["train/labels"].dtype == np.int64 and f["test/labels"].shape == (4,)
        assert np.array_equal(np.unpackbits(f["test/spikes"][()], axis=-1, count=21), id_spikes(np.arange(4), 3, 21))


def _set_attr(name, value):
    def edit(path):
        with h5py.File(path, "a") as f:
            if value is None:
                del f.attrs[name]
            else:
                f.attrs[name] = value

    return edit


@pytest.mark.parametrize(
    "damage, message",
    [
        (_set_attr("format", "other-format"), "format attribute is 'other-format'"),
        (_set_attr("version", VERSION + 1), f"format version {VERSION + 1}"),
        (_set_attr("version", None), "missing or invalid 'version'"),
        (_set_attr("time_steps", None), "missing root attribute.*time_steps"),
        (_set_attr("encoding_params", "{not json"), "'encoding_params' is not JSON"),
        (_set_attr("target_kind", "scores"), "target_kind 'scores'"),
        (_set_attr("n_inputs", 22), "does not hold n_inputs=22"),
        (lambda p: p.write_bytes(b"this is not HDF5"), "not a readable HDF5 file"),
        (lambda p: p.unlink(), "no such spike file"),
    ],
)
def test_read_meta_names_the_file_and_the_problem(tmp_path, damage, message):
    path = make_spike_file(tmp_path / "bad.h5", n_train=4)
    damage(path)
    with pytest.raises(SpikeFileError, match=message) as err:
        read_meta(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.__delitem__("test"), "has no split 'test'"),
        (lambda f: f["test"].__delitem__("labels"), "lacks the dataset 'labels'"),
        (lambda f: f.attrs.__setitem__("time_steps", 4), r"expected uint8 \[N, 4, 3\]"),
        (lambda f: f["test/labels"].__setitem__(0, 9), "labels outside 0..4"),
    ],
)
def test_dataset_checks_the_split(tmp_path, damage, message):
    path = make_spike_file(tmp_path / "bad.h5", n_train=4, n_test=4)
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(SpikeFileError, match=message):
        SpikeDataset(path, "test")


def _meta():
    return make_meta(
        dataset="t",
        encoding="e",
        encoding_params={},
        time_steps=2,
        input_shape=(8,),
        class_names=["a", "b"],
        seed=0,
        source="test",
    )


def test_writer_refuses_to_overwrite_and_leaves_the_file_alone(tmp_path):
    out = tmp_path / "keep.h5"
    out.write_bytes(b"precious")
    with pytest.raises(SpikeFileError, match=f"{out} already exists.*--force"):
        SpikeFileWriter(out, _meta())
    assert out.read_bytes() == b"precious"


def test_force_replaces_the_file(tmp_path):
    out = tmp_path / "old.h5"
    out.write_bytes(b"old")
    with SpikeFileWriter(out, _meta(), force=True) as w:
        w.create_split("train", 1)
        w.write("train", np.zeros((1, 2, 1), np.uint8), np.array([1]))
    assert read_meta(out)["dataset"] == "t"


@pytest.mark.parametrize("how, error", [("interrupted", KeyboardInterrupt), ("split not filled", RuntimeError)])
def test_unfinished_write_leaves_no_file(tmp_path, how, error):
    """An exception, or a split with fewer samples than announced, removes the temporary file;
    the target never appears."""
    out = tmp_path / "new.h5"
    with pytest.raises(error):
        with SpikeFileWriter(out, _meta()) as w:
            w.create_split("train", 3)
            w.write("train", np.zeros((2, 2, 1), np.uint8), np.array([0, 1]))
            assert w.tmp.exists() and not out.exists()
            if how == "interrupted":
                raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_targets_need_a_code_table(tmp_path):
    meta = {**_meta(), "target_kind": "targets"}
    with pytest.raises(ValueError, match="code table"):
        SpikeFileWriter(tmp_path / "t.h5", meta)
    with pytest.raises(ValueError, match="lacks encoding"):
        SpikeFileWriter(tmp_path / "t.h5", {k: v for k, v in _meta().items() if k != "encoding"})
    assert list(tmp_path.iterdir()) == []
