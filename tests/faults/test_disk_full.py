"""A full disk stops a command with exit code 1 and one line naming the file; nothing written before is lost."""

from __future__ import annotations

import resource
import shutil

import pytest
from data_fixtures.faults import TRAIN, finish, mdn_process, snapshot, temporaries


def _file_size_limit(n_bytes: int):
    """A preexec_fn: files may not grow past ``n_bytes`` (writes fail with EFBIG, as on a full disk)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, resource.RLIM_INFINITY))


def test_training_on_a_full_disk_keeps_the_last_good_checkpoint(mdn, data, mounted):
    disk = mounted("size=48k")  # epoch 1's files fit; epoch 2's checkpoint does not
    run = disk / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN).code == 0
    before = snapshot(run)
    r = mdn("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 3, *TRAIN[4:], "--resume")
    assert r.code == 1 and r.line.startswith(f"mdn train: error: cannot write {run / 'epoch_002.pt'}: No space left on device")
    assert f"the last good checkpoint is {run / 'epoch_001.pt'}" in r.line
    assert snapshot(run) == before and not temporaries(disk)


def test_prep_on_a_full_disk_leaves_the_old_file(mdn, data, mounted):
    disk = mounted("size=200k")
    out = disk / "out.h5"
    shutil.copy(data, out)
    before = snapshot(disk)
    r = mdn("prep", "digits", "--out", out, "--time-steps", 8, "--force")
    assert r.code == 1 and r.line == f"mdn prep digits: error: cannot write {out}: No space left on device; {out} is unchanged"
    assert snapshot(disk) == before and not temporaries(disk)


@pytest.mark.slow
def test_prep_past_the_file_size_limit_is_an_error_not_a_crash(tmp_path):
    """h5py's failed writes used to end in a segmentation fault when the file was closed."""
    out = tmp_path / "out.h5"
    result = finish(mdn_process("prep", "digits", "--out", out, "--time-steps", 4, preexec_fn=_file_size_limit(40_000)))
    assert (result.code, result.line) == (1, f"mdn prep digits: error: cannot write {out}: File too large; {out} was not written")
    assert result.err.count("\n") == 1  # no "Exception ignored" noise from HDF5
    assert not out.exists() and not temporaries(tmp_path)


@pytest.mark.slow
def test_training_past_the_file_size_limit_stops_after_the_last_good_epoch(tmp_path, data):
    run = tmp_path / "run"
    assert finish(mdn_process("train", "--data", data, "--out", run, *TRAIN)).code == 0
    before = snapshot(run)
    proc = mdn_process(
        "train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 2, *TRAIN[4:], "--resume",
        preexec_fn=_file_size_limit(20_000),
    )  # fmt: skip
    result = finish(proc)
    assert result.code == 1 and f"cannot write {run / 'epoch_002.pt'}: File too large" in result.line
    assert snapshot(run) == before and not temporaries(tmp_path)
