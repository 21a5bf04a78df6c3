"""Independent jobs (training runs) in parallel worker processes: ``--jobs N`` of ``mdn evaluate`` and ``mdn demo``.

* :func:`default_jobs`: the usable cores (:func:`mdn_snntorch.threads.usable_cores`) when the runs train on
  the CPU, 1 when they go to a GPU (several processes on one GPU compete for its memory).
* :func:`run_jobs`: ``fn(item)`` for every item, in ``jobs`` worker processes (``spawn`` start method: a
  fresh interpreter, nothing inherited from the parent's threads or locks) with one CPU thread each
  (``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1`` in their environment, ``torch.set_num_threads(1)``), or in
  this process one after the other when ``jobs`` is 1. A training run's results depend on its settings
  and seed only when its thread count is fixed (docs/performance.md#determinism-and-threads), so the
  callers fix it (one thread unless ``--threads`` is given): the same runs give the same files for any
  ``jobs``.
* A job that raises stops the others (the workers get SIGTERM, which the training loop turns into an
  interrupt: its locks are released, its finished epochs kept for ``resume``) and its error is raised
  here: the same exception when it survives pickling, else :class:`JobFailed` with its message.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mdn_snntorch import threads

#: environment of the worker processes: one thread in every runtime (set before they import torch)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class JobFailed(RuntimeError):
    """A job failed in a worker with an exception that does not survive pickling; the message is its own."""

    exit_code = 1

    def __init__(self, message: str, kind: str = "", worker_traceback: str = ""):
        super().__init__(message)
        self.kind, self.worker_traceback = kind, worker_traceback

    def __reduce__(self):
        return type(self), (str(self), self.kind, self.worker_traceback)


def default_jobs(device: str | None = "auto", threads_per_job: int | None = 1) -> int:
    """Worker processes by default: the usable cores divided by the threads of each job for CPU runs (at
    least 1), 1 for GPU runs (``device`` ``cuda...``, or ``auto`` on a machine with a GPU)."""
    device = (device or "auto").lower()
    if device.startswith("cuda"):
        return 1
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return 1
    return max(1, threads.usable_cores() // max(1, threads_per_job or 1))


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while the block runs (the spawned workers copy it when they start)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker() -> None:
    import torch

    from mdn_snntorch import signals

    torch.set_num_threads(1)
    signals.install()  # SIGTERM / SIGINT -> an interrupt that runs the run's finally blocks (locks, temp files)


def _call(packed: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, bool, Any]:
    """Run one job in a worker: ``(index, True, result)`` or ``(index, False, exception)``."""
    fn, index, item = packed
    try:
        return index, True, fn(item)
    except Exception as err:  # sent back to the parent, which raises it
        try:
            pickle.loads(pickle.dumps(err))
            return index, False, err
        except Exception:
            return index, False, JobFailed(str(err), type(err).__name__, traceback.format_exc())


def run_jobs(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    jobs: int = 1,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]``, computed by ``jobs`` worker processes (module docstring).

    ``fn`` must be a module-level function and the items and results picklable (spawned workers import
    ``fn`` by name). ``on_done(index, result)`` is called here, in this process, as each job finishes (in
    the order they finish). Returns the results in the order of ``items``."""
    results: list[Any] = [None] * len(items)
    if not items:
        return results
    jobs = max(1, min(int(jobs), len(items)))
    if jobs == 1:
        for index, item in enumerate(items):
            results[index] = fn(item)
            if on_done:
                on_done(index, results[index])
        return results
    context = multiprocessing.get_context("spawn")
    with _environment(WORKER_ENV):
        pool = context.Pool(jobs, initializer=_init_worker)
    try:
        for index, ok, value in pool.imap_unordered(_call, [(fn, i, item) for i, item in enumerate(items)]):
            if not ok:
                raise value
            results[index] = value
            if on_done:
                on_done(index, value)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


class Background:
    """``fn(item)`` in one worker process (spawned, one thread, as for :func:`run_jobs`) while this process
    goes on: :meth:`result` waits for it and returns its value or raises its error; :meth:`cancel` stops it."""

    def __init__(self, fn: Callable[[Any], Any], item: Any):
        with _environment(WORKER_ENV):
            self._pool = multiprocessing.get_context("spawn").Pool(1, initializer=_init_worker)
        self._async = self._pool.apply_async(_call, ((fn, 0, item),))

    def result(self) -> Any:
        try:
            _, ok, value = self._async.get()
            if not ok:
                raise value
            self._pool.close()
            return value
        except BaseException:
            self._pool.terminate()
            raise
        finally:
            self._pool.join()

    def cancel(self) -> None:
        self._pool.terminate()
        self._pool.join()
