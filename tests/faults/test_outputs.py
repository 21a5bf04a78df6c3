"""Unusable outputs are found before any work; an output in use by another run is refused (the lock)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from data_fixtures.faults import TRAIN, finish, mdn_process, snapshot, temporaries, wait_for

from mdn_snntorch.runlock import LOCK_NAME, boot_id, pid_namespace


def _live_pid():
    """A process that stays alive for the test (a lock holder on this host)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _lock(path, pid, host=None):
    """A lock as this version writes it, of ``pid`` in this PID namespace and boot."""
    doc = {"pid": pid, "host": host or socket.gethostname(), "since": "then", "token": "x"}
    path.write_text(json.dumps({**doc, "pid_ns": pid_namespace(), "boot": boot_id()}))


# ---- unusable outputs: exit 2 before the first epoch ---------------------------------------------
def test_train_out_is_an_existing_file(mdn, data, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    r = mdn("train", "--data", data, "--out", tmp_path / "taken", *TRAIN)
    assert r.code == 2 and "run directory" in r.line and "is an existing file" in r.line
    assert (tmp_path / "taken").read_text() == "keep me"


def test_train_out_under_a_file(mdn, data, tmp_path):
    (tmp_path / "file").write_text("x")
    r = mdn("train", "--data", data, "--out", tmp_path / "file" / "run", *TRAIN)
    assert r.code == 2 and f"lies under {tmp_path / 'file'}, which is a file" in r.line


def test_train_out_in_a_read_only_folder(mdn, data, tmp_path, mounted):
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    else:
        folder = mounted("ro,size=64k")
    r = mdn("train", "--data", data, "--out", folder / "run", *TRAIN)
    assert r.code == 2 and "cannot create it" in r.line or "not writable" in r.line or "read-only" in r.line, r.line
    r = mdn("train", "--data", data, "--out", folder, *TRAIN)
    assert r.code == 2 and f"cannot write into {folder}" in r.line


def test_discover_out_is_a_directory_fails_before_training(mdn, data, tmp_path):
    r = mdn("discover", "--data", data, "--out", tmp_path, *TRAIN)
    assert r.code == 2 and "meta-neuron library" in r.line and "is a directory" in r.line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]  # no runs folder, nothing trained


def test_evaluate_and_validate_out_is_a_file(mdn, data, tmp_path):
    (tmp_path / "f").write_text("x")
    r = mdn("evaluate", "--data", data, "--neurons", "2-FS", "--seeds", 1, "--out", tmp_path / "f", *TRAIN)
    assert r.code == 2 and "output directory" in r.line and "is an existing file" in r.line
    r = mdn("validate", "--neurons", "2-FS", "--quick", "--no-progress", "--out", tmp_path / "f")
    assert r.code == 2 and "is an existing file" in r.line
    assert (tmp_path / "f").read_text() == "x"


def test_prep_out_is_a_directory_or_exists(mdn, data, tmp_path):
    r = mdn("prep", "digits", "--out", tmp_path, "--time-steps", 4)
    assert r.code == 2 and "is a directory" in r.line
    before = snapshot(tmp_path)
    r = mdn("prep", "digits", "--out", data, "--time-steps", 4)
    assert r.code == 2 and "already exists; pass --force" in r.line
    assert snapshot(tmp_path) == before


def test_a_refused_run_leaves_no_folder_behind(mdn, tmp_path):
    r = mdn("train", "--data", tmp_path / "missing.h5", "--out", tmp_path / "new" / "run", *TRAIN)
    assert r.code == 2 and "no such spike file" in r.line
    assert not (tmp_path / "new").exists()


# ---- temporary files: exclusive, never a planted symlink -------------------------------------------
def test_prep_never_follows_a_symlink_at_the_old_temporary_name(mdn, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.h5"
    (tmp_path / f".{out.name}.{os.getpid()}.tmp").symlink_to(victim)  # the name writers used to take
    assert mdn("prep", "digits", "--out", out, "--time-steps", 4).code == 0
    assert victim.read_text() == "precious" and out.stat().st_size > 10_000
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- the lock -----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "evaluate", "validate", "prep", "discover"])
def test_an_output_in_use_is_refused_and_left_alone(mdn, data, tmp_path, command):
    holder = _live_pid()
    try:
        out = tmp_path / "out"
        if command in ("prep", "discover"):
            out = tmp_path / ("out.h5" if command == "prep" else "lib.json")
            lock = tmp_path / f".{out.name}{LOCK_NAME}"
        else:
            out.mkdir()
            lock = out / LOCK_NAME
        _lock(lock, holder.pid)
        before = snapshot(tmp_path)
        argv = {
            "train": ["train", "--data", data, *TRAIN],
            "evaluate": ["evaluate", "--data", data, "--neurons", "2-FS", "--seeds", 1, *TRAIN],
            "validate": ["validate", "--neurons", "2-FS", "--quick", "--no-progress"],
            "prep": ["prep", "digits", "--time-steps", 4, "--force"],
            "discover": ["discover", "--data", data, "--no-figures", *TRAIN],
        }[command]
        r = mdn(*argv, "--out", out)
        assert r.code == 2, r.line
        assert f"is in use by another mdn run: pid {holder.pid} on host {socket.gethostname()}" in r.line
        assert f"lock file {lock}" in r.line and f"delete {lock}" in r.line
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_removed_with_a_warning(mdn, data, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    _lock(tmp_path / "run" / LOCK_NAME, dead.pid)
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 0 and f"removed the stale lock {tmp_path / 'run' / LOCK_NAME} of pid {dead.pid}" in r.err
    assert (tmp_path / "run" / "epoch_001.pt").exists() and not temporaries(tmp_path)


def test_a_lock_from_another_host_says_how_to_clear_it(mdn, data, tmp_path):
    (tmp_path / "run").mkdir()
    _lock(tmp_path / "run" / LOCK_NAME, 1, host="elsewhere")
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 2 and "on host elsewhere" in r.line and f"delete {tmp_path / 'run' / LOCK_NAME}" in r.line


def test_locks_are_released_after_success_and_failure(mdn, data, tmp_path):
    assert mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN).code == 0
    assert mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN).code == 2  # exists, no --resume
    assert not temporaries(tmp_path)


@pytest.mark.slow
def test_two_trainings_into_one_out_the_second_fails_at_once(tmp_path, data):
    """Two real processes: the second exits 2 naming the lock; the first is untouched and, on SIGTERM,
    exits 143 keeping its finished epochs and releasing the lock."""
    run = tmp_path / "run"
    first = mdn_process("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 100_000, *TRAIN[4:])
    try:
        wait_for(lambda: (run / "epoch_001.pt").exists(), first)
        second = finish(mdn_process("train", "--data", data, "--out", run, *TRAIN, "--resume"))
        assert second.code == 2 and f"lock file {run / LOCK_NAME}" in second.line
        assert first.poll() is None
    finally:
        first.terminate()
    result = finish(first)
    assert result.code == 143 and result.line == "mdn train: terminated (SIGTERM)"
    assert not temporaries(tmp_path)
    state = json.loads((run / "metrics.json").read_text())
    assert state["epochs_done"] >= 1 and (run / f"epoch_{state['epochs_done']:03d}.pt").exists()
