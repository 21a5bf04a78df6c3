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
  here: the same exception when it survives pickling, else :class:`JobFailed` with its message, with a
  note naming the job; its traceback goes to the job's log file (``logs``), never to stderr, and a worker
  stopped this way ends without a word.
* A worker that dies (SIGKILL from the out-of-memory killer, a crash) is seen at once through its process
  sentinel (``multiprocessing.connection.wait``), not by a timeout: its job runs again in a fresh worker,
  after a one-line warning; a second death raises :class:`WorkerDied` naming the job and the signal (exit
  code 1), the other workers are stopped as above, and the finished jobs' results stay where they were
  written (a training run's folder), so running the command again resumes.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from mdn_snntorch import threads
from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.printable import printable

#: environment of the worker processes: one thread in every runtime (set before they import torch)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class WorkerDied(RuntimeError):
    """A job's worker process died twice, killed by a signal (SIGKILL from the out-of-memory killer) or
    exiting: the run failed (exit code 1)."""

    exit_code = 1


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


def _call(packed: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, bool, Any, str]:
    """Run one job in a worker: ``(index, True, result, "")`` or ``(index, False, exception, its traceback)``."""
    fn, index, item = packed
    try:
        return index, True, fn(item), ""
    except Exception as err:  # sent back to the parent, which raises it
        text = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(err))
            return index, False, err, text
        except Exception:
            return index, False, JobFailed(str(err), type(err).__name__, text), text


def _serve(conn: Connection) -> None:
    """A worker's life: run the jobs that come over ``conn`` until ``None`` comes. Nothing is printed here: a
    job's error goes back to the parent, and SIGTERM or SIGINT (the parent stopping the jobs, Ctrl-C) ends
    the worker quietly once the job's ``finally`` blocks have run."""
    try:
        _init_worker()
        for task in iter(conn.recv, None):
            reply = _call(task)
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as err:
                conn.send((reply[0], False, JobFailed(f"its result cannot be sent back: {err}", type(err).__name__), ""))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: int | None = None  # the index of the job it runs


def _worker_environment() -> dict[str, str]:
    from mdn_snntorch.fused import kernel_cache  # a private kernel folder chosen here is the workers' too

    return {**WORKER_ENV, **kernel_cache.environment()}


def _how(exitcode: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}" + (" (the out-of-memory killer, or kill -9)" if -exitcode == signal.SIGKILL else "")
    return f"exited with code {exitcode}"


class _Runner:
    """The parent's side: ``jobs`` spawned workers, each given one job at a time; a worker's death is seen
    through its process sentinel, and its job is run once more in a fresh worker."""

    def __init__(self, fn, items: Sequence[Any], jobs: int, labels: Sequence[str] | None, logs: Sequence[Any] | None):
        self.fn, self.items = fn, list(items)
        self.labels = list(labels) if labels else [f"job {i + 1} of {len(items)}" for i in range(len(items))]
        self.logs = list(logs) if logs else [None] * len(items)
        self.context = multiprocessing.get_context("spawn")
        self.todo = deque(range(len(items)))
        self.deaths = [0] * len(items)
        self.workers: list[_Worker] = []
        try:
            self.workers = [self._spawn() for _ in range(jobs)]
            self._hand_out()
        except BaseException:
            self.stop(graceful=False)
            raise

    def _spawn(self) -> _Worker:
        conn, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child,), daemon=True, name="mdn-job")
        with _environment(_worker_environment()):
            process.start()
        child.close()
        return _Worker(process, conn)

    def _hand_out(self) -> None:
        """Give each idle worker the next job; an idle worker that died meanwhile (no job of its lost) is
        replaced first. A send that fails because the worker dies just then is seen by its sentinel."""
        for k, worker in enumerate(self.workers):
            if worker.job is None and self.todo:
                if not worker.process.is_alive():
                    worker.conn.close()
                    worker = self.workers[k] = self._spawn()
                worker.job = self.todo.popleft()
                try:
                    worker.conn.send((self.fn, worker.job, self.items[worker.job]))
                except OSError:  # BrokenPipeError: it died after the check; _finished's wait reports it
                    pass

    def _finished(self) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` of each job as it finishes; a job's error or a second death is raised."""
        while True:
            self._hand_out()
            busy = [w for w in self.workers if w.job is not None]
            if not busy:
                return
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    yield from self._collect(worker)

    def _collect(self, worker: _Worker) -> Iterator[tuple[int, Any]]:
        try:
            reply = worker.conn.recv() if worker.conn.poll() else None
        except (EOFError, OSError):
            reply = None
        if reply is None:
            if not worker.process.is_alive():
                self._died(worker)
            return
        index, ok, value, text = reply
        worker.job = None
        if not ok:
            raise self._failed(index, value, text)
        yield index, value

    def _failed(self, index: int, err: BaseException, text: str) -> BaseException:
        """The job's error, noting which job it was; its traceback goes to the job's log file, not to stderr."""
        where = self.labels[index]
        log = self.logs[index]
        if log is not None and text:
            try:
                Path(log).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(log, text)
                where += f"; its traceback is in {log}"
            except OSError:
                pass
        err.add_note(printable(where))
        return err

    def _died(self, worker: _Worker) -> None:
        index, how = worker.job, _how(worker.process.exitcode)
        assert index is not None
        worker.conn.close()
        self.workers.remove(worker)
        self.deaths[index] += 1
        label = printable(self.labels[index])
        if self.deaths[index] >= 2:
            raise WorkerDied(
                f"{label}: its worker process {how}, twice (the second time in a fresh worker); the runs finished so far "
                "are kept: run the command again to resume"
            )
        print(f"mdn: warning: {label}: its worker process {how}; running the job again in a fresh worker", file=sys.stderr)
        self.todo.appendleft(index)
        self.workers.append(self._spawn())

    def run(self, on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        results: list[Any] = [None] * len(self.items)
        finished = False
        try:
            for index, value in self._finished():
                results[index] = value
                if on_done:
                    on_done(index, value)
            finished = True
        finally:
            self.stop(graceful=finished)
        return results

    def stop(self, graceful: bool) -> None:
        """Let the workers end (``graceful``: after their job, which is none by now) or stop them with SIGTERM
        (the training loop turns it into an interrupt that keeps finished epochs and releases locks)."""
        for worker in self.workers:
            try:
                if graceful:
                    worker.conn.send(None)
                else:
                    worker.process.terminate()
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(timeout=60)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers = []


def run_jobs(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    jobs: int = 1,
    on_done: Callable[[int, Any], None] | None = None,
    *,
    labels: Sequence[str] | None = None,
    logs: Sequence[str | os.PathLike | None] | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]``, computed by ``jobs`` worker processes (module docstring).

    ``fn`` must be a module-level function and the items and results picklable (spawned workers import
    ``fn`` by name). ``on_done(index, result)`` is called here, in this process, as each job finishes (in
    the order they finish). ``labels`` name the jobs in messages (default ``job 3 of 8``); ``logs``: per job,
    the file its traceback is written to when it fails in a worker. Returns the results in the order of
    ``items``."""
    if not items:
        return []
    jobs = max(1, min(int(jobs), len(items)))
    if jobs == 1:
        results: list[Any] = [None] * len(items)
        for index, item in enumerate(items):
            results[index] = fn(item)
            if on_done:
                on_done(index, results[index])
        return results
    return _Runner(fn, items, jobs, labels, logs).run(on_done)


class Background:
    """``fn(item)`` in one worker process (spawned, one thread, as for :func:`run_jobs`) while this process
    goes on: :meth:`result` waits for it and returns its value or raises its error (a worker that dies is
    replaced once, as there); :meth:`cancel` stops it."""

    def __init__(self, fn: Callable[[Any], Any], item: Any, label: str = "the background job"):
        self._runner = _Runner(fn, [item], 1, [label], None)

    def result(self) -> Any:
        return self._runner.run()[0]

    def cancel(self) -> None:
        self._runner.stop(graceful=False)
