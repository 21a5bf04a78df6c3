"""NETtalk from the paper authors' MATLAB file: their samples, split and codes, kept as they are."""

import numpy as np
import pytest
from scipy.io import savemat

from data_prep import nettalk
from data_prep.common import PrepError
from mdn_snntorch import cli
from mdn_snntorch.spikefile import SpikeDataset, read_meta


def windows(letters: list[str]) -> np.ndarray:
    """One 7 x 27 one-hot window per 7-letter string, flattened to 189 inputs."""
    x = np.zeros((len(letters), 7, 27), dtype=np.uint8)
    for i, word in enumerate(letters):
        x[i, np.arange(7), [nettalk.LETTERS.index(c) for c in word]] = 1
    return x.reshape(len(letters), 189)


def codes(bits: list[list[int]]) -> np.ndarray:
    y = np.zeros((len(bits), 26), dtype=np.uint8)
    for i, on in enumerate(bits):
        y[i, on] = 1
    return y


TRAIN_X = windows(["   cat ", "  cat  ", " cat   ", "   dog "])
TRAIN_Y = codes([[0, 5, 21], [1, 7, 22], [0, 5, 21], [2, 9, 23]])
TEST_X = windows(["   cod ", "  cod  "])
TEST_Y = codes([[2, 9, 23], [3, 11, 24]])


def write_mat(path, **override):
    arrays = {"train_x": TRAIN_X, "train_y": TRAIN_Y, "test_x": TEST_X, "test_y": TEST_Y}
    arrays.update(override)
    savemat(path, {k: v for k, v in arrays.items() if v is not None})
    return path


def test_samples_split_and_codes_are_the_files(tmp_path):
    mat = write_mat(tmp_path / "nettalk_small.mat")
    out = nettalk.convert(tmp_path / "nt.h5", mat=mat, time_steps=3)
    train, test = SpikeDataset(out, "train"), SpikeDataset(out, "test")
    assert (len(train), len(test), train.n_inputs, train.time_steps) == (4, 2, 189, 3)
    x, y = (np.stack([t.numpy() for t in column]) for column in zip(*(train[i] for i in range(4))))
    # one-hot inputs are 0/1 probabilities: every step carries the window itself
    assert np.array_equal(x, np.broadcast_to(TRAIN_X[:, None], (4, 3, 189)))
    assert np.array_equal(y, TRAIN_Y)
    assert np.array_equal(np.stack([test[i][1].numpy() for i in range(2)]), TEST_Y)
    # the code table: the distinct codes of both splits (4 here: one train code repeats, one is shared)
    table = train.codes.numpy()
    assert table.shape == (4, 26)
    assert {tuple(r) for r in table} == {tuple(r) for r in np.concatenate([TRAIN_Y, TEST_Y])}
    meta = read_meta(out)
    assert meta["dataset"] == "nettalk" and meta["variant"] == "authors-mat" and "nettalk_small.mat" in meta["source"]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"test_y": None}, "key 'test_y' is missing"),
        ({"train_x": TRAIN_X[:, :188]}, "'train_x' has shape (4, 188), expected (samples, 189)"),
        ({"train_y": TRAIN_Y * 2}, "'train_y' holds values other than 0 and 1"),
        ({"test_x": TEST_X[:1]}, "test_x has 1 rows but test_y has 2"),
    ],
)
def test_a_damaged_file_is_named_with_its_key(tmp_path, override, message):
    mat = write_mat(tmp_path / "bad.mat", **override)
    with pytest.raises(PrepError) as err:
        nettalk.convert(tmp_path / "nt.h5", mat=mat)
    assert str(mat) in str(err.value) and message in str(err.value)
    assert not (tmp_path / "nt.h5").exists()


def test_not_a_matlab_file(tmp_path):
    bad = tmp_path / "notes.mat"
    bad.write_text("not MATLAB")
    with pytest.raises(PrepError, match="not a readable MATLAB file"):
        nettalk.convert(tmp_path / "nt.h5", mat=bad)
    with pytest.raises(PrepError, match="no NETtalk MATLAB file"):
        nettalk.convert(tmp_path / "nt.h5", mat=tmp_path / "absent.mat")


def test_prep_command(tmp_path, capsys):
    mat = write_mat(tmp_path / "nettalk_small.mat")
    out = tmp_path / "nt.h5"
    assert cli.main(["prep", "nettalk", "--mat", str(mat), "--out", str(out), "--time-steps", "2"]) == 0
    assert SpikeDataset(out, "test").time_steps == 2 and "wrote" in capsys.readouterr().out
