"""Interrupts that are never lost: SIGINT (Ctrl-C) and SIGTERM become an exception that ``finally`` blocks see.

:func:`install` (the ``mdn`` command does it) makes both signals raise :class:`Interrupted`, a
``KeyboardInterrupt``, so every ``with`` block and ``finally`` on the way out runs: temporary files are
removed, locks released. The signal is also *remembered*: an exception raised inside a finaliser
(``__del__``, a weakref callback) is dropped by Python, which swallowed Ctrl-C in ``mdn prep``; long
loops call :func:`check`, which raises again, and the command's exit code comes from :func:`received`
whatever happened to the exception. Such a dropped :class:`Interrupted` is not printed either (Python
would print it as "Exception ignored in ..." with a traceback): it is expected, and remembered.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: the signals turned into :class:`Interrupted`
HANDLED = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None
_deferring = 0


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum

    def __str__(self) -> str:
        return "interrupted (Ctrl-C)" if self.signum == signal.SIGINT else f"terminated ({signal.Signals(self.signum).name})"


def _handler(signum: int, frame: Any) -> None:
    global _received
    _received = signum
    if not _deferring:
        raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """A block a signal does not cut in two (files that belong together: a checkpoint and its run files); a
    signal that arrives inside is raised when the block ends normally."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring:
        check()


def install() -> Callable[[], None]:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` (main thread only) and keep a dropped one off stderr;
    returns a function that restores the previous handlers and hook and forgets any signal received."""
    clear()
    if threading.current_thread() is not threading.main_thread():
        return clear
    previous = {s: signal.signal(s, _handler) for s in HANDLED}
    previous_hook = sys.unraisablehook

    def quiet_when_interrupted(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_when_interrupted

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        clear()

    return restore


def received() -> int | None:
    """The number of the last signal handled since :func:`install`, or None."""
    return _received


def clear() -> None:
    global _received
    _received = None


def check() -> None:
    """Raise :class:`Interrupted` again when a signal arrived (its exception may have been swallowed)."""
    if _received is not None:
        raise Interrupted(_received)
