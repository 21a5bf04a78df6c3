"""Helpers of the fault-injection suite (tests/faults): snapshots, results, subprocesses."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: tiny training settings: one epoch of a 16-neuron network on 4-step digits takes well under a second
TRAIN = ["--hidden", "16", "--epochs", "1", "--batch-size", "100", "--device", "cpu", "--threads", "1", "--no-progress"]


def snapshot(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (hidden files too)."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def temporaries(folder: str | os.PathLike) -> list[str]:
    """Temporary or lock files left under ``folder``."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.name.endswith((".tmp", ".mdn-lock")) or ".stale." in p.name)


class Result:
    def __init__(self, code: int, err: str, out: str = ""):
        self.code, self.err, self.out = code, err, out
        lines = [line for line in err.splitlines() if line.strip()]
        self.line = lines[-1] if lines else ""

    def __repr__(self) -> str:
        return f"Result(code={self.code}, line={self.line!r})"


def mdn_process(*argv, cwd=None, preexec_fn=None, timeout=120) -> subprocess.Popen:
    """``python -m mdn_snntorch ARGV`` started in the background (stdout and stderr piped)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "mdn_snntorch", *map(str, argv)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> Result:
    out, err = proc.communicate(timeout=timeout)
    result = Result(proc.returncode, err, out)
    assert "Traceback" not in err, err
    return result


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Poll ``predicate`` until it holds; fail when ``proc`` ends first or after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended first: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("timed out waiting")


def can_mount() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("mount") is not None
