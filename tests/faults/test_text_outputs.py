"""Names from data files and libraries never become markup or formulas in report.md, table.md, runs.csv."""

from __future__ import annotations

import csv
import json
import re

import h5py
from data_fixtures.faults import TRAIN

from mdn_snntorch.pipeline.checkpoint import csv_cell
from mdn_snntorch.pipeline.report import Report

TASK = '=HYPERLINK("http://evil.example")|<img src=x onerror=alert(1)>'
NEURON = "<b>n|x</b>"


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row, split at pipes that are not escaped."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def _raw_html(markdown: str) -> bool:
    """Whether ``markdown`` holds a ``<`` that is not backslash-escaped (raw HTML)."""
    return re.search(r"(?<!\\)<", markdown) is not None


def test_evaluate_escapes_task_and_neuron_names(mdn, data, tmp_path):
    with h5py.File(data, "a") as f:
        f.attrs["dataset"] = TASK
    lib = tmp_path / "lib.json"
    neuron = {"name": NEURON, "order": 2, "theta": [0.06, 0.219, -0.065, 0.003]}
    lib.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": [neuron]}))
    out = tmp_path / "ev"
    r = mdn(
        "evaluate", "--data", data, "--neurons", "2-FS", NEURON, "--library", lib, "--seeds", 1, "--jobs", 1, "--out", out, *TRAIN
    )
    assert r.code == 0, r.line

    table = (out / "table.md").read_text()
    assert not _raw_html(table) and "\\<img" in table
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows and all(len(_cells(row)) == 3 for row in rows), rows  # task + two neurons, no extra cell

    with open(out / "runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert {row["task"] for row in runs} == {"'" + TASK}  # a spreadsheet shows it, never runs it
    assert {row["neuron"] for row in runs} == {"2-FS", NEURON}
    assert all(not row["test_acc"].startswith("'") for row in runs)  # numbers stay numbers


def test_report_markdown_escapes_every_block(tmp_path):
    report = Report("<script>alert(1)</script>")
    report.heading("a | b <i>")
    report.paragraph("**PASS** for <img src=x> [link](javascript:alert(1))")
    report.table(["neuron", "acc"], [[NEURON, "-1"], ["line\nbreak", "=1+1"]])
    report.code("```\n<raw>")
    md, page = report.write(tmp_path)
    text = md.read_text()
    assert not _raw_html(text.replace("```\n<raw>", ""))  # HTML only inside the code block
    assert "**PASS**" in text and "\\[link\\](javascript:alert(1))" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [len(_cells(row)) for row in rows] == [2, 2, 2] and "line break" in text
    assert "````\n```\n<raw>\n````" in text  # a longer fence: the code cannot close it
    assert "<script>" not in page.read_text()


def test_csv_cells_that_look_like_formulas_get_a_quote():
    assert [csv_cell(v) for v in ("=1+1", "+1", "-x", "@SUM(A1)", "\tx", "ok", -0.5, 3)] == [
        "'=1+1", "'+1", "'-x", "'@SUM(A1)", "'\tx", "ok", -0.5, 3,
    ]  # fmt: skip
