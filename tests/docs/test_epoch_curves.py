"""benchmarks/epoch_curves.py: per-epoch test curves of runs, read from their metrics.json."""

import json
from pathlib import Path

import pytest
from data_fixtures.benchmarks import benchmark


def _script():
    return benchmark("epoch_curves")


def _run(folder: Path, series: list[float | None]) -> Path:
    folder.mkdir()
    rows = [{"epoch": e + 1, "test_acc": v} for e, v in enumerate(series)]
    (folder / "metrics.json").write_text(json.dumps({"status": "running", "epochs": rows}))
    return folder


def test_curves_are_the_runs_series_in_percent(tmp_path):
    a, b = _run(tmp_path / "a", [0.5, 0.75]), _run(tmp_path / "b", [None, 0.25])
    got = _script().curves([("a", str(a)), ("b", str(b))], "test_acc")
    assert got == {"a": ([1, 2], [50.0, 75.0]), "b": ([2], [25.0])}
    with pytest.raises(ValueError, match=r"metrics.json: no epoch records 'test_cosine'"):
        _script().curves([("a", str(a))], "test_cosine")
    assert _script().main([f"a={a}", "--out", str(tmp_path / "c.png"), "--paper", "60"]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
