"""A library JSON loads in time linear in its neurons, within stated limits, each breach one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from data_fixtures.faults import ROOT

from mdn_snntorch import meta_neurons

BIG = 100_000


@pytest.mark.slow
def test_a_library_of_a_hundred_thousand_neurons_loads(tmp_path):
    """Once quadratic (40,000 neurons: 34 s, 10^5 did not finish): now seconds (benchmarks/bench_library.py)."""
    path = tmp_path / "big.json"
    neurons = [{"name": f"n{i}", "order": 2, "theta": [0.02, 0.2, 0.0, 0.08]} for i in range(BIG)]
    path.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": neurons}))
    code = f"from mdn_snntorch.meta_neurons import load_library; print(len(load_library({str(path)!r}).neurons))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip() == str(BIG), done.stderr


def test_a_duplicate_among_many_is_named(tmp_path):
    path = tmp_path / "dup.json"
    neurons = [{"name": f"n{i % 5000}", "order": 2, "theta": [0.02, 0.2, 0.0, 0.08]} for i in range(5001)]
    path.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": neurons}))
    with pytest.raises(ValueError, match=r"neuron name\(s\) 'n0' appear more than once"):
        meta_neurons.load_library(path)


def test_too_many_neurons_is_one_line(mdn, tmp_path, monkeypatch):
    monkeypatch.setattr(meta_neurons, "MAX_LIBRARY_NEURONS", 3)
    path = tmp_path / "lib.json"
    neurons = [{"name": f"n{i}", "order": 2, "theta": [0.02, 0.2, 0.0, 0.08]} for i in range(4)]
    path.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": neurons}))
    r = mdn("presets", "--library", path)
    assert r.code == 2 and r.line == f"mdn presets: error: {path}: 4 neurons, more than a library may hold (3)"


def test_a_file_over_the_size_limit_is_refused_before_reading(mdn, tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(meta_neurons.MAX_LIBRARY_BYTES + 1)  # sparse: nothing on disk
    r = mdn("presets", "--library", path)
    limit = meta_neurons.MAX_LIBRARY_BYTES
    assert r.code == 2
    assert r.line == f"mdn presets: error: meta-neuron library {path} holds {limit + 1} bytes, more than a library may ({limit})"


def test_a_fifo_library_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "lib.json"
    os.mkfifo(fifo)
    code = (
        "from mdn_snntorch.meta_neurons import load_library\n"
        f"try:\n    load_library({str(fifo)!r})\nexcept ValueError as e:\n    print(e)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == f"meta-neuron library {fifo} is not a regular file", done.stderr


def test_a_missing_name_in_a_large_library_is_one_short_line():
    """The error names the first 20 neurons and counts the rest, instead of listing all of them."""
    lib = meta_neurons.MetaNeuronLibrary([meta_neurons.MetaNeuron(f"n{i}", 2, (0.02, 0.2, 0.0, 0.08)) for i in range(1000)])
    with pytest.raises(KeyError) as caught:
        lib.get("missing")
    message = caught.value.args[0]
    assert message == f"no meta neuron 'missing' in this library; it has: {', '.join(f'n{i}' for i in range(20))} and 980 more"
