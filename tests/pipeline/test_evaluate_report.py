"""Which epoch a table shows (final, best, mean of the last ten) and which score (accuracy, cosine on all test
samples, cosine on the authors' scored subset): read from the saved run metrics, so finished runs are reused."""

import json

import pytest

from mdn_snntorch import cli
from mdn_snntorch.pipeline.evaluate import combine, evaluate, markdown_table, run_value

TINY = dict(epochs=3, hidden=16, batch_size=100, lr=3e-3, device="cpu", threads=1)
NEURONS = ["2-FS", "2-SDS"]
#: per-epoch test series planted in the saved runs: (test_acc, test_cosine, test_cosine_first_of_5)
SERIES = {
    "2-FS": ([0.50, 0.90, 0.70], [0.60, 0.80, 0.40], [0.62, 0.84, 0.44]),
    "2-SDS": ([0.40, 0.30, 0.20], [0.10, 0.20, 0.30], [0.12, 0.22, 0.32]),
}


@pytest.fixture
def planted(digits, tmp_path):
    """An evaluation of two neurons for 3 epochs whose saved test series are replaced by :data:`SERIES`."""
    evaluate([digits], NEURONS, seeds=1, out_dir=tmp_path, progress=False, **TINY)
    for neuron, (acc, cos, first) in SERIES.items():
        path = tmp_path / "runs" / "digits" / neuron / "seed0" / "metrics.json"
        doc = json.loads(path.read_text())
        for row, a, c, f in zip(doc["epochs"], acc, cos, first, strict=True):
            row.update(test_acc=a, test_cosine=c, test_cosine_first_of_5=f)
        path.write_text(json.dumps(doc))
    return digits, tmp_path


def _means(doc):
    return {n: round(doc["accuracy_percent"]["digits"][n]["mean"], 6) for n in NEURONS}


@pytest.mark.parametrize(
    "report, expected",
    [
        ("final", {"2-FS": 70.0, "2-SDS": 20.0}),
        ("best", {"2-FS": 90.0, "2-SDS": 40.0}),
        ("last10", {"2-FS": 70.0, "2-SDS": 30.0}),
    ],
)
def test_the_report_chooses_the_epoch_of_every_run(planted, report, expected):
    digits, out = planted
    doc = evaluate([digits], NEURONS, seeds=1, out_dir=out, progress=False, report=report, **TINY)
    assert all(r["reused"] for r in doc["runs"]) and doc["report"] == report
    assert _means(doc) == expected
    assert doc["runs"][0]["summary"]["test_acc"]["best_epoch"] == 2


@pytest.mark.parametrize(
    "score, expected", [("cosine", {"2-FS": 40.0, "2-SDS": 30.0}), ("cosine_first_of_5", {"2-FS": 44.0, "2-SDS": 32.0})]
)
def test_the_scored_subset_is_a_score_of_its_own(planted, score, expected):
    digits, out = planted
    doc = evaluate([digits], NEURONS, seeds=1, out_dir=out, progress=False, score=score, **TINY)
    assert doc["score"] == {"digits": score} and _means(doc) == expected


def test_the_table_says_which_epoch_and_score(planted, capsys):
    digits, out = planted
    argv = ["evaluate", "--data", digits, "--neurons", *NEURONS, "--seeds", "1", "--out", str(out), "--epochs", "3",
            "--hidden", "16", "--batch-size", "100", "--lr", "3e-3", "--device", "cpu", "--threads", "1", "--no-progress",
            "--score", "cosine_first_of_5", "--report", "best"]  # fmt: skip
    assert cli.main(argv) == 0
    table = (out / "table.md").read_text()
    assert table in capsys.readouterr().out
    assert "the first of every five test samples (the authors' scored subset) on digits" in table
    assert "Each run's value: its best epoch (chosen on the test split)." in table
    assert "| digits | 84.00 +- 0.00 | 32.00 +- 0.00 |" in table


def test_combine_keeps_the_report_of_its_sources_or_takes_another(planted, digits, tmp_path_factory):
    _, out = planted
    evaluate([digits], NEURONS, seeds=1, out_dir=out, progress=False, report="last10", **TINY)
    pooled = tmp_path_factory.mktemp("pooled")
    assert combine([out], pooled)["report"] == "last10"
    assert _means(combine([out], pooled, report="best")) == {"2-FS": 90.0, "2-SDS": 40.0}
    other = tmp_path_factory.mktemp("other")
    evaluate([digits], NEURONS, seeds=1, out_dir=other, progress=False, report="final", **TINY)
    with pytest.raises(ValueError, match=r"report different epochs \(final, last10\)"):
        combine([("a", out), ("b", other)], tmp_path_factory.mktemp("mixed"))


def test_records_without_a_summary_give_their_final_values_only():
    old = {"run_dir": "runs/mnist/2-FS/seed0", "test_acc": 0.98, "best_test_acc": 0.99, "test_cosine": None}
    assert run_value(old, "accuracy", "final") == 0.98 and run_value(old, "accuracy", "best") == 0.99
    assert run_value(old, "cosine", "final") is None
    with pytest.raises(ValueError, match=r"runs/mnist/2-FS/seed0 records final values only: it cannot report 'last10'"):
        run_value(old, "accuracy", "last10")


def test_a_table_with_cells_of_different_seed_counts_shows_each_count():
    cell = {"mean": 90.0, "std": 1.0, "capability": 0.0}
    doc = {
        "tasks": {"a": "a.h5", "b": "b.h5"},
        "neurons": ["2-FS"],
        "seeds": [0, 1, 2, 3, 4],
        "accuracy_percent": {"a": {"2-FS": {**cell, "n": 5}}, "b": {"2-FS": {**cell, "n": 3}}},
        "capability": {"a": {"2-FS": 0.0}, "b": {"2-FS": 0.0}},
    }
    table = markdown_table(doc)
    assert "mean +- std over seeds (n per cell)" in table
    assert "| a | 90.00 +- 1.00 (n=5) |" in table and "| b | 90.00 +- 1.00 (n=3) |" in table
    doc["accuracy_percent"]["b"]["2-FS"]["n"] = 5
    assert "mean +- std over 5 seed(s)" in markdown_table(doc) and "(n=5)" not in markdown_table(doc)


def test_bad_choices_are_refused_before_training(digits, tmp_path):
    with pytest.raises(ValueError, match="report='median' is not one of final, best, last10"):
        evaluate([digits], NEURONS, seeds=1, out_dir=tmp_path, progress=False, report="median", **TINY)
    assert not (tmp_path / "runs").exists()
