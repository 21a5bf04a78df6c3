"""The embedded scikit-learn digits (whole image and row by row), and the command line of every converter."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from data_prep import cli, digits, digits_rows
from data_prep.common import PrepError
from mdn_snntorch.cli import build_parser
from mdn_snntorch.cli import main as mdn
from mdn_snntorch.spikefile import SpikeDataset, read_meta, unpack_spikes


def read(path, split):
    meta = read_meta(path)
    with h5py.File(path) as f:
        return unpack_spikes(f[split]["spikes"][()], meta["n_inputs"]), f[split]["labels"][()]


def test_fixed_stratified_split():
    split = digits.split_digits()
    (x_train, y_train), (_, y_test) = split["train"], split["test"]
    assert len(y_train) == 1347 and len(y_test) == 450 and x_train.shape[1:] == (8, 8)
    assert np.all(np.abs(np.bincount(y_test) / 450 - np.bincount(y_train) / 1347) < 0.01)
    assert np.array_equal(digits.split_digits()["test"][1], y_test)
    assert 0 <= x_train.min() and x_train.max() == 1


def test_digits_rates_follow_intensities(tmp_path):
    out = digits.convert(tmp_path / "d.h5", time_steps=50, seed=1)
    meta = read_meta(out)
    assert meta["input_shape"] == [8, 8] and meta["n_inputs"] == 64 and meta["time_steps"] == 50 and meta["num_classes"] == 10
    x, y = digits.split_digits()["test"]
    spikes, labels = read(out, "test")
    assert np.array_equal(labels, y) and spikes.shape == (450, 50, 64)
    rate, p = spikes.mean(axis=1), x.reshape(450, 64)
    assert np.all(rate[p == 0] == 0) and np.all(rate[p == 1] == 1)
    assert abs(rate.mean() - p.mean()) < 0.005 and np.abs(rate - p).mean() < 0.06
    ds = SpikeDataset(out, "test")  # the pixel values 0..16 are kept for redrawing spikes
    assert ds.intensity_levels == 16 and np.array_equal(ds.read_intensity(np.arange(450)), x.reshape(450, 64) * 16)


def test_seed_changes_spikes_not_the_split(tmp_path):
    a, b = (digits.convert(tmp_path / f"{s}.h5", time_steps=4, seed=s) for s in (1, 2))
    (sa, la), (sb, lb) = read(a, "train"), read(b, "train")
    assert np.array_equal(la, lb) and not np.array_equal(sa, sb)
    assert np.array_equal(sa, read(digits.convert(tmp_path / "again.h5", time_steps=4, seed=1), "train")[0])


@pytest.mark.parametrize("steps_per_row", [1, 3])
def test_rows_one_per_step(tmp_path, steps_per_row):
    out = digits_rows.convert(tmp_path / "r.h5", steps_per_row=steps_per_row)
    meta = read_meta(out)
    assert meta["input_shape"] == [8] and meta["time_steps"] == 8 * steps_per_row and meta["dataset"] == "digits_rows"
    x, y = digits.split_digits()["train"]
    spikes, labels = read(out, "train")
    assert np.array_equal(labels, y) and spikes.shape == (1347, 8 * steps_per_row, 8)
    row_of_step = np.repeat(x, steps_per_row, axis=1)  # [N, T, 8]: the row shown at each step
    assert np.all(spikes[row_of_step == 0] == 0) and np.all(spikes[row_of_step == 1] == 1)
    assert SpikeDataset(out, "train").intensity_levels is None  # one row per step: not a rate code to redraw


def test_bad_steps_per_row(tmp_path):
    with pytest.raises(PrepError, match="steps_per_row must be a positive integer"):
        digits_rows.convert(tmp_path / "r.h5", steps_per_row=0)


def test_mdn_prep_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert mdn(["prep", "digits", "--out", str(out), "--time-steps", "6", "--seed", "2"]) == 0
    assert read_meta(out)["time_steps"] == 6 and read_meta(out)["seed"] == 2 and f"wrote {out}" in capsys.readouterr().out
    assert mdn(["prep", "digits", "--out", str(out), "--time-steps", "7"]) == 2
    assert f"{out} already exists" in capsys.readouterr().err and read_meta(out)["time_steps"] == 6
    assert mdn(["prep", "digits", "--out", str(out), "--time-steps", "7", "--force"]) == 0
    assert read_meta(out)["time_steps"] == 7


def test_mdn_prep_reports_bad_input_in_one_line(tmp_path, capsys):
    assert mdn(["prep", "tidigits", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "t.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mdn prep tidigits: error:") and "LDC93S10" in err


def test_unknown_dataset(capsys):
    assert mdn(["prep", "imagenet"]) == 2  # a bad option: one line, exit code 2 (no SystemExit out of main)
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    with pytest.raises(PrepError, match="unknown dataset 'imagenet'; known datasets: mnist, fashion_mnist"):
        cli.converter("imagenet")


@pytest.mark.parametrize("name", list(cli.DATASETS))
def test_every_converter_takes_the_common_options(name):
    argv = ["prep", name, "--out", "x.h5", "--seed", "3", "--force"] + (["--root", "r"] if name in ("tidigits", "timit") else [])
    args = build_parser("prep").parse_args(argv + (["--dataset", "SHD"] if name == "tonic" else []))
    assert args.converter == name and args.out == "x.h5" and args.seed == 3 and args.force
    module = cli.converter(name)
    assert callable(module.convert) and callable(module.main)
    if name == "tonic":  # T equal bins unless --time-window; the default is applied by convert
        assert args.time_steps is None and args.time_window is None
    elif name != "digits_rows":
        assert args.time_steps == module.DEFAULT_TIME_STEPS


def test_python_m_data_prep(tmp_path):
    out = tmp_path / "r.h5"
    run = subprocess.run(
        [sys.executable, "-m", "data_prep.digits_rows", "--out", str(out), "--steps-per-row", "2"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert read_meta(out)["time_steps"] == 16
