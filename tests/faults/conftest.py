"""Fault injection through the real ``mdn`` entry point (docs/robustness.md).

Each case runs ``mdn_snntorch.cli.main`` (in this process, where only the exit code and the message
matter) or ``python -m mdn_snntorch`` (a subprocess, where signals, resource limits or a second process
matter) and checks the exit code, the one-line message and that nothing already written was lost or
changed (:func:`snapshot`: every file, hidden ones included, by content).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from data_fixtures.faults import Result, can_mount

from mdn_snntorch import cli


@pytest.fixture
def mdn(capsys) -> Callable[..., Result]:
    """``mdn(*argv)``: the command in this process; its exit code and stderr (``.line``: the last line)."""

    def run(*argv) -> Result:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        result = Result(code, captured.err, captured.out)
        assert "Traceback" not in result.err, result.err
        return result

    return run


@pytest.fixture(scope="session")
def spikes(tmp_path_factory) -> Path:
    """The embedded digits as a spike file, T = 4 (read-only for tests: copy it before changing it)."""
    path = tmp_path_factory.mktemp("faults-data") / "digits.h5"
    assert cli.main(["prep", "digits", "--out", str(path), "--time-steps", "4"]) == 0
    return path


@pytest.fixture
def data(spikes, tmp_path) -> Path:
    """A private copy of :func:`spikes` in the test's folder."""
    path = tmp_path / "data.h5"
    shutil.copy2(spikes, path)
    return path


@pytest.fixture
def mounted(tmp_path):
    """``mounted(options)``: a fresh tmpfs under the test's folder (unmounted afterwards); skips when mounting
    is not permitted (tests that need a full or read-only file system run where it is)."""
    points = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        if not can_mount() or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "none", str(point)]).returncode:
            pytest.skip("mounting a tmpfs is not permitted here")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", "-l", str(point)])
