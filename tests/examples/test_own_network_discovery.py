"""examples/own_network_discovery.py runs end to end (one epoch per step, in a subprocess, as a user would run it):
theta of the conv net's neurons -> a library -> frozen neurons on the source task and row by row, with Eq. 7."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mdn_snntorch import meta_neurons

pytest.importorskip("sklearn", reason="the example uses scikit-learn's embedded digits")


@pytest.mark.slow
def test_own_network_discovery_prints_the_table_and_capability(repo_root, tmp_path):
    done = subprocess.run(
        [sys.executable, str(repo_root / "examples" / "own_network_discovery.py"), "--epochs", "1", "--accuracy-epochs", "1",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=repo_root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "epoch 1: loss" in out and "theta points: {'1': 8, '3': 16, '5': 10}" in out
    library = meta_neurons.load_library(tmp_path / "conv.json")
    assert library.names and all(n.startswith("conv-") for n in library.names)
    scored = re.findall(r"validation ([\d.]+) %", out)
    assert scored and all(0 <= float(a) <= 100 for a in scored)  # the criterion's scores, on the validation split
    rows = dict(re.findall(r"^  (\S+)\s+([\d.]+ \([+-][\d.]+\)\s+[\d.]+ \([+-][\d.]+\))$", out, re.M))
    assert list(rows) == [*library.names, "2-FS", "2-RS", "2-SDS", "2-WDS"]
    cells = [re.findall(r"([\d.]+) \(([+-][\d.]+)\)", r) for r in rows.values()]
    for task in (0, 1):
        assert all(0 <= float(c[task][0]) <= 100 for c in cells)
        assert abs(sum(float(c[task][1]) for c in cells)) < 0.05  # Eq. 7: capabilities of a task average to 0
    for name in ("conv_fig3.png", "conv_fig4.png", "capability.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
