"""MNIST, Fashion-MNIST and CIFAR-10 converters on tiny files in the real formats, read by torchvision."""

import h5py
import numpy as np
import pytest
from data_fixtures.formats import MNIST_FILES, write_cifar10, write_mnist_raw

from data_prep import cifar10, fashion_mnist, mnist
from data_prep.common import PrepError
from mdn_snntorch.spikefile import SpikeDataset, SpikeFileError, read_meta, unpack_spikes

IDX_SETS = [(mnist, "MNIST", "0 - zero"), (fashion_mnist, "FashionMNIST", "T-shirt/top")]


def images(n, shape, seed):
    """Random uint8 images that include the extremes 0 and 255."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    x.reshape(n, -1)[:, :3] = [0, 255, 128]
    return x


def spikes_of(path, split):
    with h5py.File(path) as f:
        meta = read_meta(path)
        return unpack_spikes(f[split]["spikes"][()], meta["n_inputs"]), f[split]["labels"][()]


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    data = {"train": (images(12, (28, 28), 0), np.arange(12) % 10), "test": (images(5, (28, 28), 1), np.array([9, 0, 3, 3, 7]))}
    for _, folder, _ in IDX_SETS:
        write_mnist_raw(root, folder, data)
    return root, data


@pytest.mark.parametrize("module, folder, first_class", IDX_SETS)
def test_idx_datasets(tmp_path, idx_root, module, folder, first_class):
    root, data = idx_root
    out = module.convert(tmp_path / "out.h5", root=root, time_steps=400, seed=1)
    meta = read_meta(out)
    assert meta["dataset"] == module.__name__.split(".")[-1] and meta["input_shape"] == [1, 28, 28] and meta["n_inputs"] == 784
    assert meta["time_steps"] == 400 and meta["num_classes"] == 10 and meta["class_names"][0] == first_class
    for split, (x, y) in data.items():
        spikes, labels = spikes_of(out, split)
        assert spikes.shape == (len(y), 400, 784) and labels.tolist() == list(y)  # file order and labels kept
        rate, intensity = spikes.mean(axis=1), x.reshape(len(y), -1) / 255.0
        assert np.all(rate[intensity == 0] == 0) and np.all(rate[intensity == 1] == 1)
        assert np.abs(rate - intensity).mean() < 0.025  # Bernoulli(p) at 400 steps: sd <= 0.025 per pixel
        assert np.corrcoef(rate.ravel(), intensity.ravel())[0, 1] > 0.99
        ds = SpikeDataset(out, split)  # the pixels are kept, to redraw spikes from
        assert ds.intensity_levels == 255 and np.array_equal(ds.read_intensity(np.arange(len(y))), x.reshape(len(y), -1))


def test_same_seed_same_spikes_other_seed_other_spikes(tmp_path, idx_root):
    root, _ = idx_root
    a, b, c = (mnist.convert(tmp_path / f"{n}.h5", root=root, time_steps=5, seed=s) for n, s in (("a", 7), ("b", 7), ("c", 8)))
    assert np.array_equal(spikes_of(a, "train")[0], spikes_of(b, "train")[0])
    assert not np.array_equal(spikes_of(a, "train")[0], spikes_of(c, "train")[0])


def test_cifar10_keeps_3072_channel_major_inputs(tmp_path):
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    train, test = (images(10, (3, 32, 32), 2), np.arange(10)[::-1]), (images(4, (3, 32, 32), 3), np.array([1, 1, 2, 0]))
    write_cifar10(tmp_path / "raw", train, test, names)
    out = cifar10.convert(tmp_path / "c.h5", root=tmp_path / "raw", time_steps=300, verify=False)
    meta = read_meta(out)
    assert meta["input_shape"] == [3, 32, 32] and meta["n_inputs"] == 3072 and meta["class_names"] == names
    for split, (x, y) in (("train", train), ("test", test)):
        spikes, labels = spikes_of(out, split)
        assert labels.tolist() == list(y)
        assert np.abs(spikes.mean(axis=1) - x.reshape(len(y), -1) / 255.0).mean() < 0.03  # [C, H, W] order
    ds = SpikeDataset(out, "test")
    assert ds[0][0].shape == (300, 3072)


def test_cifar10_md5_check_rejects_files_that_are_not_the_release(tmp_path):
    write_cifar10(
        tmp_path / "raw", (images(5, (3, 32, 32), 0), np.arange(5)), (images(2, (3, 32, 32), 1), np.arange(2)), list("abcdefghij")
    )
    with pytest.raises(PrepError, match="official md5 sums"):
        cifar10.convert(tmp_path / "c.h5", root=tmp_path / "raw")
    assert not (tmp_path / "c.h5").exists()


def test_missing_root_names_the_expected_layout(tmp_path):
    with pytest.raises(PrepError) as err:
        mnist.convert(tmp_path / "m.h5", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "MNIST/raw" in str(err.value) and "--download" in str(err.value)


def test_corrupt_idx_file(tmp_path, idx_root):
    root, data = idx_root
    write_mnist_raw(tmp_path, "MNIST", data)
    image_file = tmp_path / "MNIST" / "raw" / MNIST_FILES["train"][0]
    image_file.write_bytes(image_file.read_bytes()[:1000])  # truncated
    with pytest.raises(PrepError, match="cannot read MNIST"):
        mnist.convert(tmp_path / "m.h5", root=tmp_path)
    assert not (tmp_path / "m.h5").exists()


@pytest.mark.parametrize("time_steps", [0, -3, 2.5, "20"])
def test_bad_time_steps(tmp_path, idx_root, time_steps):
    with pytest.raises(PrepError, match="time_steps must be a positive integer"):
        mnist.convert(tmp_path / "m.h5", root=idx_root[0], time_steps=time_steps)


def test_existing_output_needs_force(tmp_path, idx_root):
    out = mnist.convert(tmp_path / "m.h5", root=idx_root[0], time_steps=2)
    with pytest.raises(SpikeFileError, match=f"{out} already exists"):
        mnist.convert(out, root=idx_root[0], time_steps=3)
    assert read_meta(out)["time_steps"] == 2
    assert read_meta(mnist.convert(out, root=idx_root[0], time_steps=3, force=True))["time_steps"] == 3
