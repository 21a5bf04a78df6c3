"""benchmarks/bench_epoch.py: an ``mdn train`` epoch's wall time split into its steps and the rest."""

from data_fixtures.benchmarks import benchmark


def _script():
    return benchmark("bench_epoch")


def test_the_epoch_splits_into_steps_and_named_pieces(digits, capsys):
    rows = _script().main(["--data", digits, "--epochs", "2", "--hidden", "12", "--train-samples", "300"])
    printed = capsys.readouterr().out
    assert len(rows) == 2 and "a subset: the first 300 training samples" in printed
    assert "epoch 1: 3 batches" in printed and "epoch 2: 3 batches" in printed  # batch 100
    for row in rows:
        pieces = [row[name] for name in ("loading", "host copies", "metrics", "evaluation", "checkpoint")]
        assert row["steps"] > 0 and all(p > 0 for p in pieces)  # every piece ran and was timed
        assert row["other"] >= 0, "a piece counted twice (timers nested inside each other)"
        assert row["ratio"] == row["wall"] / row["steps"] > 1
