"""benchmarks/bench_epoch.py: an ``mdn train`` epoch's wall time split into its steps and the rest."""

import threading

from data_fixtures.benchmarks import benchmark


def _script():
    return benchmark("bench_epoch")


def test_the_epoch_splits_into_steps_and_named_pieces(digits, capsys):
    runs = _script().main(["--data", digits, "--epochs", "2", "--hidden", "12", "--train-samples", "300", "--prefetch", "2", "0"])
    printed = capsys.readouterr().out
    assert list(runs) == [2, 0] and all(len(r) == 1 for r in runs.values())  # one run per read-ahead depth
    assert "--- prefetch 2 ---" in printed and "--- prefetch 0 ---" in printed
    assert "a subset: the first 300 training samples" in printed
    assert printed.count("epoch 1: 3 batches") == printed.count("epoch 2: 3 batches") == 2  # batch 100
    rows = [row for run in runs.values() for row in run[0]]
    assert len(rows) == 4
    for row in rows:
        pieces = [row[name] for name in ("loading", "host copies", "metrics", "evaluation", "checkpoint")]
        assert row["steps"] > 0 and all(p > 0 for p in pieces)  # every piece ran and was timed
        assert row["other"] >= 0, "a piece counted twice (timers nested inside each other)"
        assert row["ratio"] == row["wall"] / row["steps"] > 1


def test_interleaved_loaders_time_the_same_steps_with_and_without_reading_ahead(digits, capsys):
    out = _script().interleaved(digits, [2, 0], rounds=2, hidden=12, batches=3)
    printed = capsys.readouterr().out
    assert "interleaved: 2 rounds of 3 batches per value" in printed
    assert set(out) == {2, 0}
    for times in out.values():
        assert 0 < times["step"] < times["batch"]  # a batch in all: its step and the wait for its input
    assert not [t for t in threading.enumerate() if t.name == "mdn-read-ahead"]  # the loaders' threads stopped
