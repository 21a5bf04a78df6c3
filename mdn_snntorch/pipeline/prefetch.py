"""Reading ahead: the items of an iterator produced by a background thread while the caller works on the last one.

The loader's batches are HDF5 reads and bit unpacking, which run in C with the interpreter's lock released, so a
thread makes them while the training step runs on the caller's thread (an idle core when torch uses fewer threads
than the machine has). The items come in the iterator's order, the same objects it yields; an exception it
raises comes to the caller in its place; stopping early (``break``, an error in the caller) stops the thread.
(docs/performance.md#an-epoch-of-mdn-train)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: the depth the spike loaders read ahead by default (``SpikeLoader(prefetch=...)``, ``mdn train --prefetch``)
DEFAULT_DEPTH = 2
#: seconds a blocked hand-over waits before it looks again whether the other side has stopped
_POLL = 0.1


class _Raised:
    """What the producer passes on when its iterator raised."""

    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """The items of ``items``, produced up to ``depth`` ahead by a background thread (``depth`` 0: in the caller's
    thread, as a plain iterator)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    return iter(items) if depth == 0 else _threaded(items, depth)


def _threaded(items: Iterable[T], depth: int) -> Iterator[T]:
    handed: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            put(_Raised(error))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="mdn-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handed.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
