"""The one error handler: every exception class the project raises or meets becomes one line and an exit code."""

from __future__ import annotations

import errno
import pickle
import signal

import pytest

from mdn_snntorch.atomic import OutputError, WriteError
from mdn_snntorch.cli import errors
from mdn_snntorch.pipeline.epochs import NonFiniteLossError
from mdn_snntorch.runlock import LockedError
from mdn_snntorch.signals import Interrupted
from mdn_snntorch.spikefile import InputChangedError, SpikeFileError


def _raised_here(err: BaseException) -> BaseException:
    try:
        raise err
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "err, code, line",
    [
        (OutputError("run directory x is an existing file"), 2, "error: run directory x is an existing file"),
        (LockedError("run directory x is in use"), 2, "error: run directory x is in use"),
        (WriteError("cannot write x: No space left on device"), 1, "error: cannot write x: No space left on device"),
        (InputChangedError("d.h5 changed during the run"), 1, "error: d.h5 changed during the run"),
        (SpikeFileError("d.h5: damaged"), 2, "error: d.h5: damaged"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "l.json"), 2, "error: l.json: No such file or directory"),
        (OSError(errno.ENOSPC, "No space left on device", "out/x"), 1, "error: out/x: No space left on device"),
        (KeyError("unknown preset 'x'"), 2, "error: unknown preset 'x'"),
        (ValueError("two\nlines"), 2, "error: two lines"),
        (Interrupted(signal.SIGINT), 130, "interrupted (Ctrl-C)"),
        (Interrupted(signal.SIGTERM), 143, "terminated (SIGTERM)"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (
            NonFiniteLossError(3, 7, float("nan"), 1.0, None),
            1,
            "error: non-finite loss (nan) at epoch 3, batch 7: training stopped before the update; no checkpoint had been "
            "written yet",
        ),
    ],
)  # fmt: skip
def test_exit_codes_and_one_line_messages(err, code, line):
    assert errors.classify(err) == (code, line)


def test_an_error_from_a_dataloader_worker_keeps_its_original_message():
    wrapped = InputChangedError(
        "Caught InputChangedError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nmdn_snntorch.spikefile.InputChangedError: d.h5 changed during the run (seed 0 -> 9)\n'
    )
    assert errors.classify(wrapped) == (1, "error: d.h5 changed during the run (seed 0 -> 9)")


def test_unpickling_errors_never_advise_weights_only_false():
    code, line = errors.classify(pickle.UnpicklingError("Weights only load failed. Re-run with weights_only=False"))
    assert code == 2 and "not a loadable file" in line and "weights_only" not in line


def test_runtime_errors_are_the_projects_own_checks_or_bugs():
    from mdn_snntorch.spikefile import SpikeFileWriter

    writer = SpikeFileWriter.__new__(SpikeFileWriter)
    writer._file = None
    with pytest.raises(RuntimeError) as own:
        writer._require_open()
    assert errors.classify(own.value) == (1, "error: SpikeFileWriter is used outside its `with` block")
    assert errors.classify(_raised_here(RuntimeError("a bug elsewhere"))) == (-1, "")  # re-raised with its traceback
