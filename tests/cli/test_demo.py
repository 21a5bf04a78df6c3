"""`mdn demo --quick`: the whole pipeline on embedded data, as CI runs it."""

import json
from html.parser import HTMLParser

import pytest

from mdn_snntorch import meta_neurons
from mdn_snntorch.cli import main
from mdn_snntorch.cli.demo import run_demo

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # pyparsing, inside Brian2

#: the tests that share the quick demo's output (the demo itself takes about 45 s)
slow = pytest.mark.slow


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.images += tag == "img" and dict(attrs).get("src", "").startswith("data:image/png;base64,")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out)]) == 0, "the demo exits 0 only when the Brian2 check passed"
    return out, json.loads((out / "summary.json").read_text())


@slow
def test_report_files_exist_and_parse(demo):
    out, _ = demo
    page = _Tags()
    page.feed((out / "report.html").read_text())
    assert "table" in page.tags
    assert page.images >= 6, "Fig. 3 and 4 for both libraries, accuracy and capability are embedded"
    md = (out / "report.md").read_text()
    assert "## Accuracy and capability" in md and "## Brian2 validation" in md


@slow
def test_table_has_every_neuron_and_task(demo):
    _, summary = demo
    generated = [n for lib in summary["libraries"].values() for n in lib["neurons"]]
    assert len(summary["libraries"]["spatial"]["neurons"]) >= 1 and len(summary["libraries"]["temporal"]["neurons"]) >= 1
    assert summary["neurons"] == list(meta_neurons.PAPER_NEURONS) + generated
    for task in summary["task_names"]:
        for neuron in summary["neurons"]:
            cell = summary["accuracy_percent"][task][neuron]
            assert cell["n"] == 2 and 0 <= cell["mean"] <= 100
            assert neuron in summary["capability"][task]


@slow
def test_brian2_check_passed(demo):
    out, summary = demo
    assert summary["validation_passed"]
    assert (out / "quick" / "validation" / "report.html").exists()


@slow
def test_spatial_presets_beat_chance_by_a_wide_margin(demo):
    _, summary = demo
    spatial = summary["task_names"][0]
    for neuron in ("2-FS", "2-RS", "1st-order"):
        assert summary["accuracy_percent"][spatial][neuron]["mean"] > 60, neuron  # chance is 10 %


@slow
def test_rerun_reuses_finished_steps(demo):
    out, first = demo
    again = run_demo(out, quick=True)
    results = json.loads((out / "quick" / "evaluation" / "results.json").read_text())
    assert all(run["reused"] for run in results["runs"]), "no training run is repeated"
    assert again["accuracy_percent"] == first["accuracy_percent"]
    assert again["timings_s"]["evaluation"] < 30


def test_real_data_flags_need_both_files_that_exist(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--spatial", str(tmp_path / "a.h5")]) == 2
    assert "both --spatial and --temporal" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--spatial", str(tmp_path / "a.h5"), "--temporal", str(tmp_path / "b.h5")]) == 2
    assert "a.h5 does not exist" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


def test_the_authors_protocol_reaches_generation_and_evaluation(tmp_path, monkeypatch):
    """``mdn demo --protocol authors``: the generation and the evaluation get the protocol, the evaluation
    trains the authors' 1st-order neuron, and the runs go to their own folder (the paper's stay untouched)."""
    from mdn_snntorch.pipeline import discover as discovery
    from mdn_snntorch.pipeline import evaluate as evaluation

    class Stop(Exception):
        pass

    seen = {}

    def fake_discover(data, path, seeds, **settings):
        seen.setdefault("discover", []).append(settings["protocol"])
        meta_neurons.save_library(path, [meta_neurons.MetaNeuron(f"{path.stem}-1", 2, meta_neurons.get("2-FS").theta)])

    def fake_evaluate(data, neurons, seeds, out_dir, **settings):
        seen["evaluate"] = (list(neurons), settings["protocol"], out_dir)
        raise Stop

    monkeypatch.setattr(discovery, "discover", fake_discover)
    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    with pytest.raises(Stop):
        main(["demo", "--quick", "--out", str(tmp_path), "--jobs", "1", "--protocol", "authors"])
    assert seen["discover"] == ["authors", "authors"]
    neurons, protocol, out_dir = seen["evaluate"]
    assert protocol == "authors" and out_dir == tmp_path / "quick_authors" / "evaluation"
    assert neurons == ["2-FS", "2-RS", "2-SDS", "2-WDS", "1st-order-0.2", "spatial-1", "temporal-1"]
    assert not (tmp_path / "quick").exists()
