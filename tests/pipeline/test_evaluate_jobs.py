"""``evaluate(..., jobs=N)`` / ``mdn evaluate --jobs N``: runs in worker processes, the same results as one by one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mdn_snntorch import cli
from mdn_snntorch.pipeline import jobs as jobs_module
from mdn_snntorch.pipeline.evaluate import evaluate
from mdn_snntorch.pipeline.jobs import JobFailed, default_jobs, run_jobs

pytestmark = pytest.mark.slow

SMALL = dict(epochs=2, hidden=32, batch_size=50, lr=3e-3, device="cpu")
NEURONS = ["2-FS", "2-SDS"]


def _per_run(doc):
    return {(r["task"], r["neuron"], r["seed"]): (r["test_acc"], r["train_loss"], r["train_acc"]) for r in doc["runs"]}


def _weights(run_dir):
    return torch.load(sorted(run_dir.glob("epoch_*.pt"))[-1], weights_only=True)["model"]


def test_jobs_give_the_results_of_one_by_one(digits, tmp_path):
    one = evaluate([digits], NEURONS, seeds=2, out_dir=tmp_path / "one", progress=False, jobs=1, **SMALL)
    two = evaluate([digits], NEURONS, seeds=2, out_dir=tmp_path / "two", progress=False, jobs=2, **SMALL)
    assert not any(r["reused"] for r in two["runs"])
    assert two["accuracy_percent"] == one["accuracy_percent"] and two["capability"] == one["capability"]
    assert _per_run(two) == _per_run(one)  # every run exactly: same seeds, one thread each
    saved = [json.loads((tmp_path / d / "results.json").read_text())["accuracy_percent"] for d in ("one", "two")]
    assert saved[0] == saved[1]
    for r1, r2 in zip(one["runs"], two["runs"]):
        w1, w2 = _weights(Path(r1["run_dir"])), _weights(Path(r2["run_dir"]))
        assert all(torch.equal(w1[k], w2[k]) for k in w1)  # and the same weights, bit for bit
        assert json.loads((Path(r2["run_dir"]) / "metrics.json").read_text())["config"]["threads"] == 1

    again = evaluate([digits], NEURONS, seeds=2, out_dir=tmp_path / "two", progress=False, jobs=2, **SMALL)
    assert all(r["reused"] for r in again["runs"]) and again["accuracy_percent"] == one["accuracy_percent"]


def test_jobs_resume_unfinished_runs(digits, tmp_path):
    """Runs stopped after one epoch continue from their checkpoint in the workers, as they do one by one."""
    evaluate([digits], NEURONS, seeds=1, out_dir=tmp_path / "ev", progress=False, jobs=2, **{**SMALL, "epochs": 1})
    resumed = evaluate([digits], NEURONS, seeds=1, out_dir=tmp_path / "ev", progress=False, jobs=2, **SMALL)
    fresh = evaluate([digits], NEURONS, seeds=1, out_dir=tmp_path / "fresh", progress=False, jobs=1, **SMALL)
    assert _per_run(resumed) == _per_run(fresh)
    assert all(r["epochs"] == 2 and not r["reused"] for r in resumed["runs"])


def test_cli_jobs(digits, tmp_path, capsys):
    common = ["evaluate", "--data", digits, "--neurons", "2-FS", "1st-order", "--seeds", "1", "--epochs", "1",
              "--hidden", "24", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert cli.main([*common, "--out", str(tmp_path / "j2"), "--jobs", "2"]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "j1"), "--jobs", "1"]) == 0
    docs = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("j1", "j2")]
    assert docs[0]["accuracy_percent"] == docs[1]["accuracy_percent"]
    assert cli.main([*common, "--out", str(tmp_path / "j0"), "--jobs", "0"]) == 2
    assert "jobs=0 is out of range" in capsys.readouterr().err


class _TwoArgError(Exception):
    """An exception that does not survive pickling (its __init__ takes two arguments, args holds one)."""

    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


def fail_on_three(x: int) -> int:
    if x == 3:
        raise _TwoArgError("three", "item 3")
    return x * x


def test_run_jobs_in_order_and_errors():
    assert run_jobs(math.sqrt, [4.0, 9.0, 16.0], jobs=2) == [2.0, 3.0, 4.0]
    seen = []
    assert run_jobs(math.sqrt, [1.0, 4.0], jobs=1, on_done=lambda i, r: seen.append((i, r))) == [1.0, 2.0]
    assert seen == [(0, 1.0), (1, 2.0)]
    with pytest.raises(ValueError, match="math domain error"):  # the worker's own exception
        run_jobs(math.sqrt, [4.0, -1.0, 9.0], jobs=2)
    with pytest.raises(JobFailed, match="three at item 3") as caught:  # one that does not pickle: its message
        run_jobs(fail_on_three, [1, 2, 3], jobs=2)
    assert caught.value.kind == "_TwoArgError" and caught.value.exit_code == 1
    assert run_jobs(math.sqrt, [], jobs=4) == []


def test_default_jobs(monkeypatch):
    monkeypatch.setattr(jobs_module.threads, "usable_cores", lambda: 8)
    assert default_jobs("cpu") == 8
    assert default_jobs("cpu", 2) == 4 and default_jobs("cpu", 16) == 1
    assert default_jobs("cuda:0") == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_jobs("auto") == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_jobs("auto") == 8 and default_jobs(None) == 8
