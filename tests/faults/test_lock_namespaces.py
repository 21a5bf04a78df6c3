"""A lock's pid is judged only in its own PID namespace and boot (docs/robustness.md#outputs).

A container on the same host name has pids of its own: pid 1 there is not pid 1 here. A lock taken in
another PID namespace, in another boot, or without saying which (an earlier version's lock) is never
broken as stale; the claim is refused (exit code 2) naming the lock file to delete.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from data_fixtures.faults import ROOT, TRAIN, snapshot

from mdn_snntorch.runlock import LOCK_NAME, boot_id, pid_namespace

HOLD = """
import sys, time
from mdn_snntorch.runlock import claim_dir
with claim_dir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def _lock(path, **fields) -> None:
    doc = {"pid": _dead_pid(), "host": socket.gethostname(), "start": "1", "since": "then", "token": "x"}
    doc.update(pid_ns=pid_namespace(), boot=boot_id())
    path.write_text(json.dumps({k: v for k, v in {**doc, **fields}.items() if v is not ...}))


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_live_lock_of_another_pid_namespace_is_not_broken(mdn, data, tmp_path):
    """A real holder in a fresh PID namespace (``unshare``), where its pid is 1."""
    if not _can_unshare():
        pytest.skip("unshare --pid is not permitted here")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", sys.executable, "-c", HOLD, str(run)]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        lock = json.loads((run / LOCK_NAME).read_text())
        assert lock["pid"] == 1 and lock["pid_ns"] != pid_namespace() and lock["boot"] == boot_id()
        before = snapshot(run)
        r = mdn("train", "--data", data, "--out", run, *TRAIN)
        assert r.code == 2, r.line
        assert "pid 1 on host" in r.line and "another PID namespace (a container)" in r.line
        assert f"delete {run / LOCK_NAME}" in r.line
        assert snapshot(run) == before and holder.poll() is None  # the holder's lock and run untouched
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"pid_ns": 4026599999}, "another PID namespace (a container)"),
        ({"boot": "00000000-0000-0000-0000-000000000000"}, "another boot, or on another machine of the same name"),
        ({"pid_ns": ..., "boot": ...}, "does not record its PID namespace and boot: an earlier version wrote it"),
    ],
    ids=["namespace", "boot", "old-format"],
)
def test_a_lock_whose_pid_cannot_be_checked_here_is_refused(fields, reason, mdn, data, tmp_path):
    """Its pid is dead here, which says nothing about the process it names."""
    run = tmp_path / "run"
    run.mkdir()
    _lock(run / LOCK_NAME, **fields)
    before = snapshot(run)
    r = mdn("train", "--data", data, "--out", run, *TRAIN)
    assert r.code == 2 and reason in r.line and f"delete {run / LOCK_NAME}" in r.line, r.line
    assert snapshot(run) == before


def test_a_dead_pid_of_this_namespace_and_boot_is_stale(mdn, data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _lock(run / LOCK_NAME)
    r = mdn("train", "--data", data, "--out", run, *TRAIN)
    assert r.code == 0 and "removed the stale lock" in r.err


def test_the_lock_records_namespace_and_boot(tmp_path):
    from mdn_snntorch.runlock import claim_dir

    with claim_dir(tmp_path / "run"):
        doc = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert doc["pid"] == os.getpid() and doc["pid_ns"] == os.stat("/proc/self/ns/pid").st_ino
    assert doc["boot"] == open("/proc/sys/kernel/random/boot_id").read().strip()
