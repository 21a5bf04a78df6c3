"""Ctrl-C and SIGTERM always stop a command (exit 130 / 143) and leave no temporary file or lock behind."""

from __future__ import annotations

import json
import signal
import sys

import pytest
from data_fixtures.faults import TRAIN, finish, mdn_process, snapshot, temporaries, wait_for

from mdn_snntorch import signals
from mdn_snntorch.cli import errors


def _temporary(folder):
    return lambda: any(p.name.endswith(".tmp") for p in folder.iterdir())


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does for `cmd &` in a script


@pytest.mark.slow  # each case starts Python with torch
@pytest.mark.parametrize(
    "sig, code, message, preexec",
    [
        (signal.SIGINT, 130, "mdn prep digits: interrupted (Ctrl-C)", None),
        (signal.SIGTERM, 143, "mdn prep digits: terminated (SIGTERM)", None),
        (signal.SIGINT, 130, "mdn prep digits: interrupted (Ctrl-C)", _ignore_sigint),
    ],
    ids=["sigint", "sigterm", "sigint-ignored-by-the-shell"],
)
def test_prep_stops_and_removes_its_temporary_file(tmp_path, data, sig, code, message, preexec):
    """Mid-conversion (the temporary file exists): the exit code, one line, no temporary file or lock, and the
    previous output (``--force``) unchanged."""
    out = tmp_path / "out.h5"
    out.write_bytes(data.read_bytes())
    before = snapshot(tmp_path)
    proc = mdn_process("prep", "digits", "--out", out, "--time-steps", 3000, "--force", preexec_fn=preexec)
    wait_for(_temporary(tmp_path), proc)
    proc.send_signal(sig)
    result = finish(proc)
    assert (result.code, result.line) == (code, message)
    assert snapshot(tmp_path) == before and not temporaries(tmp_path)


@pytest.mark.slow
def test_training_stops_on_sigterm_keeping_finished_epochs(tmp_path, data):
    run = tmp_path / "run"
    proc = mdn_process("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 100_000, *TRAIN[4:])
    wait_for(lambda: (run / "epoch_002.pt").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    result = finish(proc)
    assert (result.code, result.line) == (143, "mdn train: terminated (SIGTERM)")
    assert not temporaries(tmp_path)
    done = json.loads((run / "metrics.json").read_text())["epochs_done"]
    assert done >= 2 and sorted(p.name for p in run.iterdir())[-3:] == [f"epoch_{done:03d}.pt", "metrics.csv", "metrics.json"]


def test_a_swallowed_interrupt_still_sets_the_exit_code():
    """A KeyboardInterrupt lost inside a finaliser: the remembered signal decides the exit code."""
    restore = signals.install()
    try:

        def swallowing_command():
            try:
                signals._handler(signal.SIGINT, None)
            except KeyboardInterrupt:
                pass  # what Python does with an exception raised in __del__
            return 0

        assert errors.run("prep digits", swallowing_command) == 130
    finally:
        restore()


def test_an_interrupt_dropped_by_a_finaliser_is_not_printed(monkeypatch):
    """Python hands an exception raised in ``__del__`` to ``sys.unraisablehook``, which prints "Exception
    ignored in ..." with a traceback; an Interrupted there is expected (the signal is remembered), so it
    stays off stderr. Other exceptions still reach the previous hook, which comes back on restore."""

    class RaisesOnDelete:
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    restore = signals.install()
    try:
        RaisesOnDelete(signals.Interrupted(signal.SIGINT))  # dropped at once
        assert seen == []
        RaisesOnDelete(ValueError("a real problem"))
        assert [type(u.exc_value) for u in seen] == [ValueError]
    finally:
        restore()
    assert sys.unraisablehook == seen.append


def test_a_signal_inside_a_deferred_block_is_raised_at_its_end():
    """A checkpoint and its run files are written together: SIGTERM waits for the block to end."""
    restore = signals.install()
    try:
        done = []
        with pytest.raises(signals.Interrupted) as stopped:
            with signals.deferred():
                signals._handler(signal.SIGTERM, None)  # as if SIGTERM arrived here
                done.append("files written")
        assert done == ["files written"] and stopped.value.exit_code == 143
    finally:
        restore()
