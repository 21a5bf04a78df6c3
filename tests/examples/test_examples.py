"""The examples run end to end (one epoch each, in a subprocess, as a user would run them)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("sklearn", reason="the examples use scikit-learn's embedded digits")


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, flags",
    [
        ("tutorial5_fc.py", []),
        ("tutorial6_conv.py", []),
        ("tutorial6_conv.py", ["--per-step"]),
        ("recurrent.py", []),
        ("recurrent.py", ["--feedforward"]),
    ],
    ids=["tutorial5", "tutorial6-sequence", "tutorial6-per-step", "recurrent", "recurrent-feedforward"],
)
def test_example_trains_and_reports_a_test_accuracy(repo_root, script, flags):
    done = subprocess.run(
        [sys.executable, str(repo_root / "examples" / script), "--epochs", "1", *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo_root,
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 1: loss" in done.stdout
    accuracy = float(re.search(r"test accuracy: ([\d.]+) %", done.stdout).group(1))
    assert 0 <= accuracy <= 100
