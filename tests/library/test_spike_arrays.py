"""Writing your own data: ``write_arrays`` and ``write_dataset`` round-trip bit-exact, derive the meta data,
refuse bad shapes and dtypes with one line naming the argument, and leave an existing file as it was."""

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from mdn_snntorch.spikefile import SpikeDataset, read_attributes, read_meta, write_arrays, write_dataset, writer


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of a few samples, so the tests' small splits span several chunks (and a partial last one)."""
    monkeypatch.setattr(writer, "CHUNK_BYTES", 64)


def toy(seed=0, n=(37, 11), shape=(4, 3, 5), classes=3):
    rng = np.random.default_rng(seed)
    return tuple((rng.random((k, *shape)) < 0.3, rng.integers(0, classes, k)) for k in n)


def read_back(path, split):
    """Every sample of ``split`` through the public reader, as ``(spikes bool [N, T, D], targets)``."""
    ds = SpikeDataset(path, split)
    items = ds.__getitems__(list(range(len(ds))))
    return torch.stack([x for x, _ in items]).numpy().astype(bool), torch.stack([y for _, y in items]).numpy()


def test_arrays_round_trip_bit_exact_with_derived_meta(tmp_path):
    train, test = toy()
    out = write_arrays(tmp_path / "toy.h5", train, test, name="toy", encoding="rate", notes="from a test")
    meta = read_meta(out)
    assert (meta["time_steps"], meta["input_shape"], meta["n_inputs"]) == (4, [3, 5], 15)
    assert meta["class_names"] == ["0", "1", "2"] and meta["target_kind"] == "labels" and meta["dataset"] == "toy"
    assert read_attributes(out)["notes"] == "from a test"
    with h5py.File(out) as f:
        assert f["train/spikes"].chunks[0] < 37  # several chunks were written, the last one partial
    for split, (x, y) in zip(("train", "test"), (train, test)):
        got_x, got_y = read_back(out, split)
        assert np.array_equal(got_x, x.reshape(len(x), 4, 15)) and np.array_equal(got_y, y)


def test_arrays_from_a_memory_map_and_from_torch(tmp_path):
    (x, y), test = toy(1)
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=x.shape)
    mapped[:] = x
    mapped.flush()
    out = write_arrays(tmp_path / "m.h5", (np.load(tmp_path / "x.npy", mmap_mode="r"), y), test, name="m", encoding="rate")
    assert np.array_equal(read_back(out, "train")[0], x.reshape(len(x), 4, 15))
    out = write_arrays(tmp_path / "t.h5", (torch.from_numpy(x), torch.from_numpy(y)), test, name="t", encoding="rate",
                       input_shape=(15,), class_names=["a", "b", "c"])  # fmt: skip
    assert read_meta(out)["input_shape"] == [15] and read_meta(out)["class_names"] == ["a", "b", "c"]
    assert np.array_equal(read_back(out, "train")[0], x.reshape(len(x), 4, 15))


def test_bit_vector_targets_get_their_code_table(tmp_path):
    (x, _), (xt, _) = toy(2)
    rng = np.random.default_rng(2)
    y, yt = (rng.random((len(x), 6)) < 0.5).astype(np.uint8), (rng.random((len(xt), 6)) < 0.5).astype(np.uint8)
    out = write_arrays(tmp_path / "b.h5", (x, y), (xt, yt), name="b", encoding="rate")
    assert read_meta(out)["target_kind"] == "targets" and read_meta(out)["class_names"] == [f"bit{i}" for i in range(6)]
    ds = SpikeDataset(out, "test")
    assert np.array_equal(read_back(out, "test")[1], yt.astype(np.float32))
    assert np.array_equal(ds.codes.numpy(), np.unique(np.concatenate([y, yt]), axis=0))


class Spikegen(Dataset):
    """A map-style dataset as snnTorch users write them: float 0/1 spikes [T, C, H, W] and int labels."""

    classes = ["zero", "one", "two"]

    def __init__(self, x, y):
        self.x, self.y = torch.from_numpy(x).float(), y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_dataset_round_trips_bit_exact_with_its_classes(tmp_path):
    (x, y), (xt, yt) = toy(3, shape=(5, 2, 3, 3))
    out = write_dataset(tmp_path / "d.h5", Spikegen(x, y), Spikegen(xt, yt), name="gen", encoding="rate")
    meta = read_meta(out)
    assert meta["class_names"] == Spikegen.classes and meta["input_shape"] == [2, 3, 3] and meta["time_steps"] == 5
    assert "Spikegen" in meta["source"]
    for split, (a, b) in zip(("train", "test"), ((x, y), (xt, yt))):
        got_x, got_y = read_back(out, split)
        assert np.array_equal(got_x, a.reshape(len(a), 5, 18)) and np.array_equal(got_y, b)


def test_dataset_without_classes_finds_the_labels_first(tmp_path):
    (x, y), (xt, yt) = toy(4, classes=5)
    y[0] = 4  # the largest label sets num_classes
    out = write_dataset(tmp_path / "d.h5", TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                        TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt)), name="td", encoding="rate")  # fmt: skip
    assert read_meta(out)["num_classes"] == 5
    assert np.array_equal(read_back(out, "train")[1], y)


def _write(tmp_path, train=None, test=None, **kw):
    a, b = toy(5)
    kw = {"name": "x", "encoding": "rate", **kw}
    return write_arrays(tmp_path / "x.h5", train or a, test or b, **kw)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, b: {"train": (a[0].astype(np.float32), a[1])}, "train spikes must be bool or uint8 0/1, got float32"),
        (lambda a, b: {"train": (a[0][:, 0, 0], a[1])}, "train spikes must be [N, T, *input_shape] (at least 3 axes)"),
        (lambda a, b: {"test": (b[0][..., :4], b[1])}, "test spikes per sample are [4, 3, 4] but train spikes are [4, 3, 5]"),
        (lambda a, b: {"train": (a[0], a[1][:-1])}, "train targets must be labels [N] or bit vectors [N, K] for N = 37"),
        (lambda a, b: {"train": (a[0], a[1].astype(np.float32))}, "train targets must be integers (labels) or 0/1 bits"),
        (lambda a, b: {"test": (b[0], b[1] - 5)}, "test targets hold the negative value"),
        (lambda a, b: {"time_steps": 5}, "time_steps=5 but the spikes have 4 time steps"),
        (lambda a, b: {"input_shape": (4, 4)}, "input_shape=[4, 4] does not hold the 15 inputs per step"),
        (lambda a, b: {"class_names": ["a", "b"]}, "targets hold the label 2 but class_names names 2 classes"),
        (lambda a, b: {"train": a[0]}, "train must be a pair (spikes, targets)"),
        (lambda a, b: {"name": ""}, "name must be a non-empty text"),
        (lambda a, b: {"n_inputs": 3}, "extra meta key(s) n_inputs are set by the writer"),
        (lambda a, b: {"notes": [1, 2]}, "extra meta notes=[1, 2]: a root attribute is a number or a text"),
    ],
    ids=["dtype", "axes", "test-shape", "targets-length", "targets-dtype", "negative-label", "time-steps", "input-shape",
         "class-names", "not-a-pair", "empty-name", "derived-key", "extra-type"],
)  # fmt: skip
def test_bad_arguments_are_one_line_naming_the_argument_and_keep_the_file(tmp_path, change, message):
    out = tmp_path / "x.h5"
    out.write_bytes(b"an earlier file")
    a, b = toy(5)
    kw = change(a, b)
    with pytest.raises(ValueError) as err:
        write_arrays(out, kw.pop("train", a), kw.pop("test", b), name=kw.pop("name", "x"), encoding="rate", force=True, **kw)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert out.read_bytes() == b"an earlier file" and sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]


def test_a_bad_value_found_while_writing_keeps_the_earlier_file(tmp_path):
    """A uint8 spike of value 2 in the last chunk of the test split is found after the train split is written."""
    first = _write(tmp_path)
    before = first.read_bytes()
    a, (xt, yt) = toy(6)
    xt = xt.astype(np.uint8)
    xt[-1, 2, 1, 1] = 2
    with pytest.raises(ValueError, match=r"^test spikes hold the value 2 \(samples \d+\.\.10\); spikes are 0 or 1$"):
        write_arrays(first, a, (xt, yt), name="x", encoding="rate", force=True)
    assert first.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]


@pytest.mark.parametrize(
    "item, message",
    [
        ((torch.full((4, 3, 5), 0.5), 1), "train_dataset[0] spikes hold the value 0.5; spikes are 0 or 1"),
        (("spikes", 1), "train_dataset[0] spikes are <U6; expected 0/1 numbers"),
        (torch.zeros(4, 3, 5), "train_dataset[0] must be a pair (spikes, target)"),
    ],
    ids=["graded", "text", "not-a-pair"],
)
def test_dataset_items_are_checked(tmp_path, item, message):
    class One(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return item

    (x, y), _ = toy(7)
    with pytest.raises(ValueError) as err:
        write_dataset(tmp_path / "d.h5", One(), Spikegen(x, y), name="d", encoding="rate")
    assert message in str(err.value) and not (tmp_path / "d.h5").exists()


def test_a_dataset_item_of_another_shape_is_named(tmp_path):
    (x, y), (xt, yt) = toy(8)

    class Ragged(Spikegen):
        def __getitem__(self, i):
            return (self.x[i, :3] if i == 20 else self.x[i]), int(self.y[i])

    with pytest.raises(ValueError, match=r"^train_dataset\[20\] spikes are \[3, 3, 5\], expected \[4, 3, 5\]$"):
        write_dataset(tmp_path / "d.h5", Ragged(x, y), Spikegen(xt, yt), name="d", encoding="rate", class_names="abc")
    assert list(tmp_path.iterdir()) == []
