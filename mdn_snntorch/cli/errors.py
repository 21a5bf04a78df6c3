"""The one place where the ``mdn`` command turns exceptions into a one-line message and an exit code.

=====  =====================================================================================
exit   cause
=====  =====================================================================================
0      done
1      the run failed (a non-finite loss, a runtime error in the project's own checks)
2      bad input: a missing or malformed file, a bad option value, an unknown name, a missing extra
130    interrupted (Ctrl-C)
=====  =====================================================================================

``--debug`` (or ``MDN_DEBUG=1``) re-raises instead, for the full traceback.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable

from mdn_snntorch.extras import missing_extra

BAD_INPUT = 2
FAILED = 1
INTERRUPTED = 130


class RunFailed(RuntimeError):
    """A run that started and could not finish; its message says why and what was kept."""


def _message(err: BaseException) -> str:
    # KeyError's str() is the repr of its argument; the argument is the message
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def classify(err: BaseException) -> tuple[int, str]:
    """``(exit code, message)`` of an exception; ``(-1, "")`` for one that is a bug, not bad input."""
    extra = missing_extra(err)
    if extra is not None:
        return BAD_INPUT, f"error: {extra}"
    if isinstance(err, RunFailed) or type(err).__name__ == "NonFiniteLossError":
        return FAILED, _message(err)
    if isinstance(err, pickle.UnpicklingError):
        return BAD_INPUT, f"error: not a loadable file: {_message(err).splitlines()[0]}"
    if isinstance(err, (ValueError, KeyError, OSError)):
        return BAD_INPUT, f"error: {_message(err)}"
    return -1, ""


def debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("MDN_DEBUG", "") not in ("", "0")


def report(command: str, err: BaseException, debug: bool = False) -> int:
    """Print ``mdn COMMAND: message`` for ``err`` and return its exit code; re-raise a bug or under ``debug``."""
    if isinstance(err, KeyboardInterrupt):
        code, message = INTERRUPTED, "interrupted"
    else:
        code, message = classify(err)
    if debug or code < 0:
        raise err
    print(f"mdn {command}: {message}", file=sys.stderr)
    return code


def run(command: str, fn: Callable[[], int], debug: bool = False) -> int:
    """``fn()``'s exit code; an exception goes through :func:`report`."""
    try:
        return int(fn() or 0)
    except (KeyboardInterrupt, Exception) as err:
        return report(command, err, debug)
