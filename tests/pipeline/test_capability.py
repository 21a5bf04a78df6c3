"""Capability by task kind (paper Fig. 8) as the evaluation computes it, task kinds, the cosine score and the
evaluation figures (the public functions over plain tables: tests/discovery/test_capability_tables.py)."""

import json
from pathlib import Path

import pytest
from data_fixtures.paper import EXPECTED, KINDS, NEURONS, TABLE3

from mdn_snntorch import cli
from mdn_snntorch.discovery import scores as public_capability
from mdn_snntorch.pipeline import evaluate as evaluation
from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.evaluate import capability, evaluate, group_capability, markdown_table, task_kinds

TINY = dict(epochs=1, hidden=16, batch_size=100, lr=3e-3, device="cpu", threads=1)


def _paper_caps():
    return {task: capability(dict(zip(NEURONS, acc))) for task, acc in TABLE3.items()}


def test_the_evaluation_uses_the_public_capability():
    assert capability is public_capability.task_capability and group_capability is public_capability.group_capability


def test_group_capability_of_the_paper_table3():
    groups = group_capability(_paper_caps(), KINDS)
    assert list(groups) == NEURONS
    for neuron, (spatial, temporal) in EXPECTED.items():
        assert groups[neuron] == {"spatial": pytest.approx(spatial, abs=1e-4), "temporal": pytest.approx(temporal, abs=1e-4)}
    # the paper's reading of Fig. 8
    for neuron in ("2-SDS", "2-WDS"):
        assert groups[neuron]["temporal"] > groups[neuron]["spatial"]
    for neuron in ("2-FS", "2-RS", "1st-order"):
        assert groups[neuron]["spatial"] > groups[neuron]["temporal"]


def test_group_capability_missing_kinds():
    caps = _paper_caps()
    only_spatial = {t: (k if k == "spatial" else None) for t, k in KINDS.items()}
    groups = group_capability(caps, only_spatial)
    assert groups["2-FS"] == {"spatial": pytest.approx(0.9647, abs=1e-4), "temporal": None}
    one = group_capability({"mnist": caps["mnist"]}, {"mnist": "spatial", "timit": "temporal"})  # a kind without caps
    assert one["2-SDS"]["spatial"] == pytest.approx(caps["mnist"]["2-SDS"]) and one["2-SDS"]["temporal"] is None
    with pytest.raises(ValueError, match="kinds: mnist='spatio' is not one of spatial, temporal"):
        group_capability(caps, {"mnist": "spatio"})


def test_recipe_kinds():
    assert set(recipes.KINDS) == set(recipes.RECIPES)
    assert [recipes.kind(n) for n in ("MNIST", "fashion_mnist", "N-MNIST", "cifar-10", "digits", "digits_rows")] == [
        "spatial", "spatial", "temporal", "spatial", "spatial", "temporal",
    ]  # fmt: skip
    assert recipes.kind("spoken_digits") == "temporal" and recipes.kind("timit-gender") == "temporal"
    assert recipes.kind("unknown-set") is None
    assert recipes.settings("spoken_digits") == recipes.settings("tidigits")


def test_task_kinds_from_the_file_and_overrides(digits):
    assert task_kinds({"digits": digits}) == {"digits": "spatial"}
    assert task_kinds({"digits": digits}, {"digits": "temporal"}) == {"digits": "temporal"}
    assert task_kinds({"digits": digits}, {"digits": None}) == {"digits": None}
    with pytest.raises(ValueError, match="kinds: unknown task 'mnist'; the tasks are: digits"):
        task_kinds({"digits": digits}, {"mnist": "spatial"})
    with pytest.raises(ValueError, match="--kind: digits='both' is not one of spatial, temporal"):
        task_kinds({"digits": digits}, {"digits": "both"}, name="--kind")


def test_bad_arguments_fail_before_training(digits, tmp_path, capsys):
    common = ["evaluate", "--data", digits, "--neurons", "2-FS", "--seeds", "1", "--no-progress"]
    for extra, message in (
        (
            ["--kind", "digits=spatio"],
            "argument --kind: 'digits=spatio': the kind 'spatio' is not one of spatial, temporal, none",
        ),
        (["--kind", "digits"], "argument --kind: 'digits' is not TASK=spatial, TASK=temporal or TASK=none"),
        (["--kind", "mnist=spatial"], "--kind: unknown task 'mnist'; the tasks are: digits"),
        (["--score", "f1"], "argument --score: invalid choice: 'f1'"),
    ):
        out = tmp_path / "o"
        assert cli.main([*common, "--out", str(out), *extra]) == 2
        assert message in capsys.readouterr().err
        assert not (out / "runs").exists()
    with pytest.raises(ValueError, match="score='f1' is not one of accuracy, cosine"):
        evaluate([digits], ["2-FS"], seeds=1, out_dir=tmp_path / "e", score="f1")
    with pytest.raises(ValueError, match="kinds: unknown task 'x'"):
        evaluate([digits], ["2-FS"], seeds=1, out_dir=tmp_path / "e", kinds={"x": "spatial"}, progress=False, **TINY)


def test_kind_none_leaves_a_task_out_of_both_groups(digits, tmp_path):
    argv = ["evaluate", "--data", digits, "--neurons", "2-FS", "2-SDS", "--seeds", "1", "--out", str(tmp_path), "--epochs",
            "1", "--hidden", "16", "--batch-size", "100", "--device", "cpu", "--threads", "1", "--no-progress",
            "--kind", "digits=none"]  # fmt: skip
    assert cli.main(argv) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["kinds"] == {"digits": None}
    assert saved["group_capability"]["2-FS"] == {"spatial": None, "temporal": None}


def test_cosine_score_from_saved_run_metrics(digits, tmp_path, capsys):
    """Runs that record a cosine score (bit-vector targets) are scored by it with ``score="cosine"``;
    the score is read from the saved metrics, so the finished runs are reused."""
    neurons = ["2-FS", "2-SDS"]
    first = evaluate([digits], neurons, seeds=1, out_dir=tmp_path, progress=False, **TINY)
    assert first["score"] == {"digits": "accuracy"} and all(r["test_cosine"] is None for r in first["runs"])
    fake = {"2-FS": 0.625, "2-SDS": 0.5}  # a run's cosine score, as the trainer records it for bit-vector targets
    for neuron, cosine in fake.items():
        path = tmp_path / "runs" / "digits" / neuron / "seed0" / "metrics.json"
        doc = json.loads(path.read_text())
        for row in doc["epochs"]:
            row["train_cosine"], row["test_cosine"] = cosine, cosine
        path.write_text(json.dumps(doc))

    doc = evaluate([digits], neurons, seeds=1, out_dir=tmp_path, progress=False, score="cosine", **TINY)
    assert all(r["reused"] for r in doc["runs"])
    assert doc["score"] == {"digits": "cosine"}
    assert {r["neuron"]: r["test_cosine"] for r in doc["runs"]} == fake
    assert doc["accuracy_percent"]["digits"]["2-FS"]["mean"] == pytest.approx(62.5)
    assert doc["accuracy_percent"]["digits"]["2-SDS"]["mean"] == pytest.approx(50.0)
    assert doc["capability"]["digits"] == pytest.approx({"2-FS": 1.0, "2-SDS": -1.0})
    assert doc["group_capability"] == {"2-FS": {"spatial": 1.0, "temporal": None}, "2-SDS": {"spatial": -1.0, "temporal": None}}
    table = (tmp_path / "table.md").read_text()
    assert "Test score (%)" in table and "cosine score (x 100) on digits" in table and "62.50 +- 0.00" in table
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["score"] == {"digits": "cosine"} and saved["kinds"] == {"digits": "spatial"}
    assert [r["test_cosine"] for r in json.loads((tmp_path / "runs.json").read_text())] == [0.625, 0.5]
    assert "test_cosine" in (tmp_path / "runs.csv").read_text().splitlines()[0]

    # accuracy again (the default): the same runs, their accuracy; --kind through the CLI
    argv = ["evaluate", "--data", digits, "--neurons", *neurons, "--seeds", "1", "--out", str(tmp_path), "--epochs", "1",
            "--hidden", "16", "--batch-size", "100", "--lr", "3e-3", "--device", "cpu", "--threads", "1", "--no-progress",
            "--kind", "digits=temporal"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "capability_per_task.png, capability.png" in capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["score"] == {"digits": "accuracy"} and saved["kinds"] == {"digits": "temporal"}
    assert saved["accuracy_percent"] == first["accuracy_percent"]
    assert saved["group_capability"]["2-FS"]["spatial"] is None and saved["group_capability"]["2-FS"]["temporal"] is not None
    table = (tmp_path / "table.md").read_text()
    assert "## Capability by kind (paper Fig. 8)" in table and "Task kinds: digits temporal." in table
    assert "| neuron | temporal |" in table and "spatial |" not in table
    for name in ("accuracy.png", "capability_per_task.png", "capability.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def _paper_doc():
    table = {t: {n: {"mean": a, "std": 0.5, "n": 5} for n, a in zip(NEURONS, acc)} for t, acc in TABLE3.items()}
    caps = _paper_caps()
    return {
        "tasks": {t: f"{t}.h5" for t in TABLE3},
        "kinds": KINDS,
        "neurons": NEURONS,
        "seeds": [0, 1, 2, 3, 4],
        "score": dict.fromkeys(TABLE3, "accuracy") | {"nettalk": "cosine"},
        "accuracy_percent": table,
        "capability": caps,
        "group_capability": group_capability(caps, KINDS),
        "runs": [],
    }


def _capture_figures(monkeypatch):
    """Every figure's title, legend labels, bars and dashed lines, by file name, before it is saved."""
    seen = {}
    save, save_png = evaluation.save_figure, public_capability.save_png

    def capture(fig, path, *args, **kwargs):
        ax = fig.axes[0]
        legend = ax.get_legend()
        seen[Path(path).name] = {
            "title": ax.get_title(),
            "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
            "bars": {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers if hasattr(c, "patches")},
            "dashed": {c.get_label(): c.get_segments() for c in ax.collections if c.get_linestyle()[0][1] is not None},
        }
        return (save if Path(path).name != "capability.png" else save_png)(fig, path, *args, **kwargs)

    monkeypatch.setattr(evaluation, "save_figure", capture)
    monkeypatch.setattr(public_capability, "save_png", capture)  # Fig. 8 is drawn by the public function
    return seen


def test_figures_of_the_paper_table(tmp_path, monkeypatch):
    seen = _capture_figures(monkeypatch)
    doc = _paper_doc()
    evaluation._figures(tmp_path, doc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy.png", "capability.png", "capability_per_task.png"]
    assert seen["capability_per_task.png"]["title"] == "capability per task (paper Eq. 7)"

    fig8 = seen["capability.png"]
    assert fig8["title"] == "spatial and temporal capability (paper Fig. 8)" and fig8["legend"] == ["spatial", "temporal"]
    for k, kind in enumerate(("spatial", "temporal")):
        assert fig8["bars"][kind] == pytest.approx([EXPECTED[n][k] for n in NEURONS], abs=1e-4)

    acc = seen["accuracy.png"]
    assert {"spatial meta neurons", "temporal meta neurons"} <= set(acc["legend"])
    for label, members in (("spatial meta neurons", (0, 1)), ("temporal meta neurons", (2, 3))):
        heights = [segment[0][1] for segment in acc["dashed"][label]]
        assert heights == pytest.approx([(TABLE3[t][members[0]] + TABLE3[t][members[1]]) / 2 for t in TABLE3])


def test_figures_only_what_was_evaluated(tmp_path, monkeypatch):
    """No group line without both members; Fig. 8 draws only the kinds present."""
    seen = _capture_figures(monkeypatch)
    doc = _paper_doc()
    keep = ["2-FS", "2-SDS", "2-WDS"]
    doc["neurons"] = keep
    doc["kinds"] = {t: (k if k == "temporal" else None) for t, k in KINDS.items()}
    doc["group_capability"] = group_capability(doc["capability"], doc["kinds"])
    evaluation._figures(tmp_path, doc)
    assert "spatial meta neurons" not in seen["accuracy.png"]["legend"]
    assert "temporal meta neurons" in seen["accuracy.png"]["legend"]
    assert seen["capability.png"]["legend"] == ["temporal"] and set(seen["capability.png"]["bars"]) == {"temporal"}
    text = markdown_table(doc)
    assert "| neuron | temporal |" in text and "mnist none" in text and "; the cosine score (x 100) on nettalk. Each run" in text

    doc["kinds"] = dict.fromkeys(TABLE3)
    doc["group_capability"] = group_capability(doc["capability"], doc["kinds"])
    evaluation._figures(tmp_path, doc)
    assert seen["capability.png"]["bars"] == {} and (tmp_path / "capability.png").exists()
    assert "No task has a kind" in markdown_table(doc)
