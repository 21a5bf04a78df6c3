"""``mdn discover`` / ``discover`` on the built-in network: a tiny end-to-end run on digits, the CLI, and the same
library as the public API (:mod:`mdn_snntorch.discovery`) gives on the same trained network."""

import json

import numpy as np
import pytest

from mdn_snntorch import MDN, cli, make_neuron, meta_neurons
from mdn_snntorch.discovery import collect_theta, generate
from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.checkpoint import load_checkpoint
from mdn_snntorch.pipeline.discover import discover, validation_accuracy


def test_discover_on_a_tiny_run_writes_a_loadable_library(digits, tmp_path):
    out = tmp_path / "spatial.json"
    hidden = 40
    library = discover(
        digits, out, seeds=1, epochs=2, hidden=hidden, batch_size=50, lr=3e-3, device="cpu", threads=1, progress=False
    )
    loaded = meta_neurons.load_library(out)
    assert loaded.names == library.names and len(loaded.neurons) >= 1
    for neuron in loaded.neurons:
        layer = make_neuron(neuron)
        assert isinstance(layer, MDN) and neuron.order == 2 and np.isfinite(neuron.theta).all()
        assert neuron.provenance["candidate"].startswith("ab")
    prov = loaded.provenance
    assert prov["source"] == digits and prov["seeds"] == [0] and prov["neurons_clustered"] == hidden + 10
    for pair in ("ab", "cd"):
        c = prov["clustering"][pair]
        assert c["num_centres"] == len(c["centres"]) >= 1 and sum(c["sizes"]) == hidden + 10
    candidates = prov["selection"]["candidates"]
    assert len(candidates) == prov["clustering"]["ab"]["num_centres"] * prov["clustering"]["cd"]["num_centres"]
    assert all(r["status"] == "kept" or r["reason"] for r in candidates)
    assert sum(r["support"] for r in candidates) == hidden + 10  # every neuron sits in one (ab, cd) cell
    for fig in ("spatial_fig3.png", "spatial_fig4.png"):
        assert (tmp_path / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the training run is kept and reused: a second call trains nothing new and gives the same library
    stamp = (tmp_path / "spatial_runs" / "seed0" / "epoch_002.pt").stat().st_mtime_ns
    again = discover(
        digits,
        out,
        seeds=1,
        epochs=2,
        hidden=hidden,
        batch_size=50,
        lr=3e-3,
        device="cpu",
        threads=1,
        progress=False,
        figures=False,
    )
    assert [n.theta for n in again.neurons] == [n.theta for n in library.neurons]
    assert (tmp_path / "spatial_runs" / "seed0" / "epoch_002.pt").stat().st_mtime_ns == stamp


def test_discover_cli(digits, tmp_path, capsys):
    out = tmp_path / "lib.json"
    argv = ["discover", "--data", digits, "--out", str(out), "--epochs", "1", "--hidden", "24", "--batch-size", "50",
            "--device", "cpu", "--threads", "1", "--no-progress", "--no-figures", "--validation-fraction", "0.2"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "(a, b) centres:" in printed and "written to" in printed and "validation acc." in printed
    doc = json.loads(out.read_text())
    assert doc["format"] == meta_neurons.LIBRARY_FORMAT and doc["provenance"]["training"]["hidden"] == 24
    assert doc["provenance"]["selection"]["validation_fraction"] == 0.2
    assert cli.main(["discover", "--data", str(tmp_path / "nope.h5"), "--out", str(out)]) == 2
    assert "nope.h5" in capsys.readouterr().err
    for bad in ("0", "1", "-0.1"):
        assert cli.main(["discover", "--data", digits, "--out", str(tmp_path / "other.json"), "--validation-fraction", bad]) == 2
        assert "validation_fraction" in capsys.readouterr().err
    assert not (tmp_path / "other.json").exists() and not (tmp_path / "other_runs").exists()


SOURCE = ["--epochs", "2", "--hidden", "24", "--batch-size", "50", "--device", "cpu", "--threads", "1", "--no-progress"]


@pytest.mark.slow
def test_mdn_discover_gives_the_library_of_the_api_on_the_same_trained_network(digits, tmp_path):
    """``mdn discover`` = train, then ``collect_theta`` -> ``generate`` with the validation-split accuracy criterion:
    calling the API on the run's trained network (candidates retrained from scratch) gives the same library, bit
    for bit. The criterion scores each candidate on the held-out part of the training split, never on the test split."""
    out = tmp_path / "lib.json"
    assert cli.main(["discover", "--data", digits, "--out", str(out), *SOURCE, "--no-figures"]) == 0
    saved = json.loads(out.read_text())

    model = load_checkpoint(tmp_path / "lib_runs" / "seed0")["model"]  # the trained network, as a user has it
    settings = {**recipes.settings("digits"), "recipe": "digits", "epochs": 2, "hidden": 24, "batch_size": 50,
                "device": "cpu", "threads": 1, "progress": False}  # fmt: skip
    accuracy = validation_accuracy(digits, tmp_path / "api_candidates", 1, settings, 0.1)
    made = generate(collect_theta(model), accuracy=accuracy, prefix="lib")

    assert [n.to_dict() for n in made.library.neurons] == saved["neurons"]  # names, theta, provenance: every float
    assert json.loads(json.dumps(made.candidates)) == saved["provenance"]["selection"]["candidates"]
    for key in ("neurons_clustered", "layers", "theta_mean", "clustering"):
        assert json.loads(json.dumps(made.library.provenance[key])) == saved["provenance"][key], key
    scored = [r for r in made.candidates if "accuracy" in r]
    assert scored and len(list((tmp_path / "api_candidates").iterdir())) == len(scored)
    for run in (tmp_path / "lib_runs" / "candidates").iterdir():  # each score is the run's validation accuracy
        doc = json.loads((run / "metrics.json").read_text())
        assert doc["config"]["validation_fraction"] == 0.1 and doc["config"]["epochs"] == 1
        record = next(r for r in scored if run.name.startswith(r["id"] + "-"))
        assert record["accuracy"] == doc["epochs"][-1]["val_acc"]
