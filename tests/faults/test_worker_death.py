"""``--jobs``: a worker that dies is noticed at once, its job run once more, and a second death ends the command
in one line (exit 1) with the lock released and the finished runs kept; a failed job is one line too.

The deaths are real: a job that sends SIGKILL to its own worker (the out-of-memory killer's signal), once or
every time, and for ``mdn evaluate`` a watcher that kills the worker holding one run's lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from data_fixtures.faults import finish, mdn_process, temporaries

from mdn_snntorch.pipeline.jobs import Background, WorkerDied, run_jobs
from mdn_snntorch.runlock import LOCK_NAME

pytestmark = pytest.mark.slow


def square_or_die(item: tuple[str, int, str]) -> int:
    """``x * x``; ``how`` = ``once``: SIGKILL to its own worker the first time (a marker file remembers), ``always``:
    every time, ``never``: not at all."""
    marker, x, how = item
    if how == "always" or (how == "once" and not os.path.exists(marker)):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def square_then_die_idle(x: int) -> int:
    """``x * x``; for 0 the worker is killed (SIGKILL) 0.2 s after the job returned, while it waits for another."""
    if x == 0:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGKILL)).start()
    elif x == 1:
        time.sleep(3)  # keeps the other worker busy meanwhile
    return x * x


def fail_slowly(item: int) -> int:
    if item == 2:
        raise ValueError("item 2 is bad")
    time.sleep(30)  # stopped by the parent long before
    return item


def test_a_worker_killed_once_is_replaced_and_its_job_rerun(tmp_path, capfd):
    items = [(str(tmp_path / f"m{x}"), x, "once" if x == 3 else "never") for x in range(5)]
    started = time.monotonic()
    assert run_jobs(square_or_die, items, jobs=2, labels=[f"square {x}" for x in range(5)]) == [0, 1, 4, 9, 16]
    assert time.monotonic() - started < 120
    err = capfd.readouterr().err
    assert "mdn: warning: square 3: its worker process was killed by SIGKILL" in err and "running the job again" in err
    assert "Traceback" not in err


def test_a_worker_that_died_idle_is_replaced_before_it_gets_a_job(capfd):
    """No job was lost, so nothing is rerun and nothing said; the next job goes to a fresh worker, not into a
    broken pipe."""
    assert run_jobs(square_then_die_idle, [0, 1, 2], jobs=2, on_done=lambda i, r: time.sleep(1.0 if i == 0 else 0)) == [0, 1, 4]
    err = capfd.readouterr().err
    assert "warning" not in err and "Traceback" not in err


def test_a_worker_killed_twice_ends_with_one_line_naming_the_job_and_the_signal(tmp_path, capfd):
    items = [(str(tmp_path / "m"), 7, "always"), (str(tmp_path / "n"), 2, "never")]
    with pytest.raises(WorkerDied) as caught:
        run_jobs(square_or_die, items, jobs=2, labels=["seven", "two"])
    message = str(caught.value)
    assert message.startswith("seven: its worker process was killed by SIGKILL") and "twice" in message
    assert "run the command again to resume" in message and caught.value.exit_code == 1
    assert "Traceback" not in capfd.readouterr().err


def test_a_background_job_whose_worker_dies_twice_is_an_error(tmp_path):
    job = Background(square_or_die, (str(tmp_path / "m"), 3, "always"), "the validation")
    with pytest.raises(WorkerDied, match="the validation: its worker process was killed by SIGKILL"):
        job.result()
    assert Background(square_or_die, (str(tmp_path / "m"), 3, "never")).result() == 9


def test_a_failed_job_is_one_line_and_its_traceback_goes_to_its_log(tmp_path):
    """The other workers are stopped with SIGTERM: they end quietly (no 'Process SpawnPoolWorker' tracebacks)."""
    logs = [tmp_path / f"run{i}" / "error.log" for i in range(4)]
    here, paths = [str(Path(__file__).parent), str(Path(__file__).parents[1])], [str(p) for p in logs]
    code = (
        f"import sys; sys.path[:0] = {here!r}\n"
        "from mdn_snntorch import signals; signals.install()\n"
        "from test_worker_death import fail_slowly\n"
        "from mdn_snntorch.pipeline.jobs import run_jobs\n"
        "try:\n"
        f"    run_jobs(fail_slowly, [0, 1, 2, 3], jobs=3, labels=['a', 'b', 'c', 'd'], logs={paths!r})\n"
        "except ValueError as err:\n"
        "    print('raised:', err, err.__notes__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # not one worker traceback
    assert f"raised: item 2 is bad ['c; its traceback is in {logs[2]}']" in done.stdout
    text = logs[2].read_text()
    assert "Traceback (most recent call last)" in text and "ValueError: item 2 is bad" in text
    assert not any(p.exists() for p in (logs[0], logs[1], logs[3]))


# ---- through mdn evaluate ----------------------------------------------------------------------
def _killer(lock: Path, times: int, stop: threading.Event, killed: list[int], second_when) -> None:
    """SIGKILL the process holding ``lock`` (a training run's), up to ``times`` different ones; the second one
    only once ``second_when()`` holds."""
    while not stop.is_set() and len(killed) < times:
        try:
            pid = json.loads(lock.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            pid = None
        if pid and pid not in killed and (not killed or second_when()):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _finished(run: Path) -> bool:
    try:
        return json.loads((run / "metrics.json").read_text())["status"] == "finished"
    except (OSError, ValueError, KeyError):
        return False


def _evaluate(data, out, extra=()):
    return mdn_process(
        "evaluate", "--data", data, "--neurons", "2-FS", "2-SDS", "--seeds", 1, "--jobs", 2, "--hidden", 16,
        "--epochs", 3, "--batch-size", 100, "--device", "cpu", "--no-progress", "--out", out, *extra,
    )  # fmt: skip


@pytest.mark.parametrize("times", [1, 2])
def test_evaluate_jobs_survives_one_worker_death_and_stops_at_the_second(times, data, tmp_path):
    out = tmp_path / "ev"
    lock = out / "runs" / "digits" / "2-SDS" / "seed0" / LOCK_NAME
    stop, killed = threading.Event(), []
    other = out / "runs" / "digits" / "2-FS" / "seed0"  # killed again only after this one finished
    watcher = threading.Thread(target=_killer, args=(lock, times, stop, killed, lambda: _finished(other)), daemon=True)
    watcher.start()
    try:
        result = finish(_evaluate(data, out), timeout=600)
    finally:
        stop.set()
        watcher.join()
    assert len(killed) == times
    assert "mdn: warning: digits 2-SDS seed 0: its worker process was killed by SIGKILL" in result.err
    assert "running the job again in a fresh worker" in result.err
    if times == 1:
        assert result.code == 0, result.err
        assert json.loads((out / "results.json").read_text())["neurons"] == ["2-FS", "2-SDS"]
        return
    assert result.code == 1, result.err
    assert result.line.startswith("mdn evaluate: error: digits 2-SDS seed 0: its worker process was killed by SIGKILL")
    assert not (out / LOCK_NAME).exists()  # the evaluation's lock is released
    assert _finished(other)  # the other run is kept
    again = finish(_evaluate(data, out), timeout=600)  # and the command resumes: the dead run's lock is stale
    assert again.code == 0, again.err
    runs = json.loads((out / "runs.json").read_text())
    assert {r["neuron"]: r["reused"] for r in runs} == {"2-FS": True, "2-SDS": False}
    assert not temporaries(out)
