"""Evaluation: neurons x tasks x seeds -> Table 3, capability (Eq. 7), figures; finished runs reused."""

import csv
import json

import numpy as np
import pytest

from mdn_snntorch import cli, meta_neurons
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.pipeline.evaluate import capability, evaluate

SMALL = dict(epochs=2, hidden=32, batch_size=50, lr=3e-3, device="cpu", threads=1)


def test_capability_is_eq7():
    cap = capability({"a": 90.0, "b": 80.0, "c": 70.0})
    sd = np.std([90, 80, 70])
    assert cap == pytest.approx({"a": 10 / sd, "b": 0.0, "c": -10 / sd})
    assert capability({"a": 50.0, "b": 50.0}) == {"a": 0.0, "b": 0.0}


def test_two_neurons_two_seeds_make_the_table(digits, tmp_path):
    doc = evaluate([digits], ["2-FS", "2-SDS"], seeds=2, out_dir=tmp_path, progress=False, **SMALL)
    runs = doc["runs"]
    assert len(runs) == 4 and not any(r["reused"] for r in runs)
    acc = doc["accuracy_percent"]["digits"]
    for neuron in ("2-FS", "2-SDS"):
        mine = [100 * r["test_acc"] for r in runs if r["neuron"] == neuron]
        assert acc[neuron]["mean"] == pytest.approx(np.mean(mine)) and acc[neuron]["std"] == pytest.approx(np.std(mine, ddof=1))
        assert acc[neuron]["mean"] > 20  # well above the 10 % of chance after two epochs
    assert mine[0] != mine[1]  # the seeds are different runs
    cap = doc["capability"]["digits"]
    assert cap["2-FS"] == pytest.approx(-cap["2-SDS"]) and abs(cap["2-FS"]) == pytest.approx(1.0)
    assert doc["kinds"] == {"digits": "spatial"} and doc["score"] == {"digits": "accuracy"}  # Fig. 8: one spatial task
    assert doc["group_capability"] == {n: {"spatial": cap[n], "temporal": None} for n in ("2-FS", "2-SDS")}
    table = (tmp_path / "table.md").read_text()
    assert "| digits |" in table and f"{acc['2-FS']['mean']:.2f} +- {acc['2-FS']['std']:.2f}" in table
    assert json.loads((tmp_path / "results.json").read_text())["accuracy_percent"] == doc["accuracy_percent"]
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"0", "1"}
    for fig in ("accuracy.png", "capability_per_task.png", "capability.png"):
        assert (tmp_path / fig).read_bytes()[:4] == b"\x89PNG"

    again = evaluate([digits], ["2-FS", "2-SDS"], seeds=2, out_dir=tmp_path, progress=False, **SMALL)
    assert all(r["reused"] for r in again["runs"]) and again["accuracy_percent"] == doc["accuracy_percent"]
    more = evaluate([digits], ["2-FS", "2-SDS"], seeds=2, out_dir=tmp_path, progress=False, **{**SMALL, "epochs": 3})
    assert not any(r["reused"] for r in more["runs"]) and all(r["epochs"] == 3 for r in more["runs"])
    with pytest.raises(ValueError, match="lr=0.003, not 0.001"):  # another experiment: not mixed into this table
        evaluate([digits], ["2-FS"], seeds=1, out_dir=tmp_path, progress=False, **{**SMALL, "epochs": 3, "lr": 1e-3})
    with pytest.raises(ValueError, match="3 epochs, more than the 2"):
        evaluate([digits], ["2-FS"], seeds=1, out_dir=tmp_path, progress=False, **SMALL)


def test_cli_with_a_library_neuron(digits, tmp_path, capsys):
    library = tmp_path / "lib.json"
    meta_neurons.save_library(library, [MetaNeuron("lib-1", 2, (0.06, 0.219, -0.03, 0.02))], {"source": "test"})
    argv = ["evaluate", "--data", digits, "--neurons", "1st-order", "lib-1", "--library", str(library), "--seeds", "1",
            "--out", str(tmp_path / "ev"), "--epochs", "1", "--hidden", "24", "--device", "cpu", "--threads", "1",
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "| digits |" in capsys.readouterr().out
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert doc["neurons"] == ["1st-order", "lib-1"] and doc["accuracy_percent"]["digits"]["lib-1"]["n"] == 1
    run = json.loads((tmp_path / "ev" / "runs" / "digits" / "lib-1" / "seed0" / "metrics.json").read_text())
    assert run["config"]["neuron"]["theta"] == [0.06, 0.219, -0.03, 0.02]
    assert cli.main(["evaluate", "--data", digits, "--neurons", "2-ZZ", "--out", str(tmp_path / "bad")]) == 2
    assert "2-ZZ" in capsys.readouterr().err
