"""The one place where the ``mdn`` command turns exceptions into a one-line message and an exit code.

=====  =====================================================================================
exit   cause
=====  =====================================================================================
0      done
1      the run failed: a non-finite loss, an input file changed during the run, a write the file
       system refused (disk full: the message names the file), a runtime error in the project's
       own checks
2      bad input: a missing, malformed or hostile file, a bad option value, an unknown name, a
       missing extra, an unusable output path, an output in use by another run (its lock)
130    interrupted (Ctrl-C, SIGINT)
143    terminated (SIGTERM)
=====  =====================================================================================

An exception may carry its own ``exit_code`` (the project's exception types do). A message is always one
line (a DataLoader worker's error is reduced to its original message; its notes follow in brackets), with
every control character shown as an escape (:func:`mdn_snntorch.printable.printable`): names from files
cannot drive the terminal. ``--debug`` (or ``MDN_DEBUG=1``)
re-raises instead, for the full traceback. docs/robustness.md lists the cases.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from mdn_snntorch import signals
from mdn_snntorch.extras import missing_extra
from mdn_snntorch.printable import printable

BAD_INPUT = 2
FAILED = 1
INTERRUPTED = 130
#: OSErrors that mean the run failed (the machine, not the input): a full disk, an I/O error
RUN_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG}
#: source folders of the project: a RuntimeError raised from them is one of its own checks
_PROJECT = tuple(str(Path(__file__).resolve().parents[2] / pkg) + os.sep for pkg in ("mdn_snntorch", "data_prep", "validation"))


def _message(err: BaseException) -> str:
    """The exception's message on one line."""
    # KeyError's str() is the repr of its argument; the argument is the message
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.filename and err.strerror and text.startswith("[Errno"):
        text = f"{err.filename}: {err.strerror}"  # not "[Errno 21] Is a directory: 'x'"
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep the original message
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = re.sub(r"^[\w.]+: ", "", last.strip())
    notes = [note for note in getattr(err, "__notes__", ()) if isinstance(note, str)]
    if notes:  # e.g. which job of `--jobs` failed, and where its traceback is
        text += f" ({'; '.join(notes)})"
    return printable(" ".join(text.split()))


def _raised_by_project(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PROJECT)


def classify(err: BaseException) -> tuple[int, str]:
    """``(exit code, message)`` of an exception; ``(-1, "")`` for one that is a bug, not bad input."""
    extra = missing_extra(err)
    if extra is not None:
        return BAD_INPUT, f"error: {extra}"
    if type(err).__name__ == "NonFiniteLossError":  # by name: the CLI's handler does not import the pipeline
        return FAILED, f"error: {_message(err)}"
    if isinstance(err, KeyboardInterrupt):
        return getattr(err, "exit_code", INTERRUPTED), str(err) if isinstance(err, signals.Interrupted) else "interrupted"
    code = getattr(err, "exit_code", None)
    if isinstance(code, int) and isinstance(err, Exception):
        return code, f"error: {_message(err)}"
    if isinstance(err, pickle.UnpicklingError):
        # never pass on torch's advice to load with weights_only=False: that runs the file's code
        return BAD_INPUT, "error: not a loadable file (it holds objects other than tensors and plain data); refused"
    if isinstance(err, OSError):
        return (FAILED if err.errno in RUN_FAILURES else BAD_INPUT), f"error: {_message(err)}"
    if isinstance(err, (ValueError, KeyError)):
        return BAD_INPUT, f"error: {_message(err)}"
    if isinstance(err, RuntimeError) and _raised_by_project(err):
        return FAILED, f"error: {_message(err)}"
    return -1, ""


def one_line_warnings() -> Callable[[], None]:
    """Warnings raised by the package, as ``mdn: warning: MESSAGE`` on one line (escaped), for the length of a
    command; other warnings keep Python's format. Returns the function that restores the previous format."""
    previous = warnings.formatwarning
    package = str(Path(__file__).resolve().parents[1])

    def format_warning(message, category, filename, lineno, line=None):
        if not str(Path(filename).resolve()).startswith(package):
            return previous(message, category, filename, lineno, line)
        return printable(f"mdn: warning: {str(message).removeprefix('mdn_snntorch: ')}") + "\n"

    warnings.formatwarning = format_warning

    def restore() -> None:
        warnings.formatwarning = previous

    return restore


def debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("MDN_DEBUG", "") not in ("", "0")


def report(command: str, err: BaseException, debug: bool = False) -> int:
    """Print ``mdn COMMAND: message`` for ``err`` and return its exit code; re-raise a bug or under ``debug``."""
    code, message = classify(err)
    if debug or code < 0:
        raise err
    print(printable(f"mdn {command}: {message}".replace("mdn : ", "mdn: ")), file=sys.stderr)
    return code


def run(command: str, fn: Callable[[], int], debug: bool = False) -> int:
    """``fn()``'s exit code; an exception goes through :func:`report`. A SIGINT or SIGTERM that arrived (see
    :mod:`mdn_snntorch.signals`) decides the exit code even when its exception was swallowed on the way."""
    try:
        code = int(fn() or 0)
    except (KeyboardInterrupt, Exception) as err:
        if signals.received() is not None and not isinstance(err, KeyboardInterrupt):
            err = signals.Interrupted(signals.received())  # the signal surfaced as another error
        return report(command, err, debug)
    if signals.received() is not None:
        return report(command, signals.Interrupted(signals.received()), debug)
    return code
