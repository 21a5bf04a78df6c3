"""Names and attributes from files (a spike file's ``dataset``, a library's descriptions, a lock's host) reach the
terminal as escapes, one line each, never as control characters (docs/robustness.md#inputs)."""

from __future__ import annotations

import json

import h5py
from data_fixtures.faults import TRAIN

THETA = [0.06, 0.219, -0.065, 0.003]
ESC = "\x1b"


def library(path, *names, description=""):
    neurons = [{"name": n, "order": 2, "theta": THETA, "description": description} for n in names]
    path.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": neurons}))
    return path


def renamed(data, task):
    with h5py.File(data, "a") as f:
        f.attrs["dataset"] = task
    return data


def test_a_dataset_attribute_with_escapes_and_newlines_is_printed_escaped(mdn, data, tmp_path):
    renamed(data, f"digits{ESC}[2J\nFAKE row")
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 0, r.line
    assert ESC not in r.err + r.out and "FAKE row" not in r.err.replace("\\nFAKE row", "")
    assert "mdn train: digits\\x1b[2J\\nFAKE row -> " in r.err

    r = mdn("evaluate", "--data", data, "--neurons", "2-FS", "--seeds", 1, "--jobs", 1, "--out", tmp_path / "ev", *TRAIN)
    assert r.code == 0, r.line
    assert ESC not in r.out + r.err and not any(line.startswith("FAKE") for line in r.out.splitlines())
    assert "| digits\\\\x1b\\[2J FAKE row |" in r.out  # the Markdown table: one line per row, the escape shown


def test_an_error_message_shows_control_characters_as_escapes(mdn, tmp_path):
    r = mdn("train", "--data", tmp_path / f"no{ESC}]0;pwned\x07.h5", "--out", tmp_path / "run", *TRAIN)
    assert r.code == 2 and ESC not in r.err and "\x07" not in r.err
    assert "no\\x1b]0;pwned\\x07.h5" in r.line


def test_a_lock_holder_with_escapes_in_its_host_is_shown_escaped(mdn, data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".mdn-lock").write_text(json.dumps({"pid": 1, "host": f"evil{ESC}[2J", "since": "then", "token": "x"}))
    r = mdn("train", "--data", data, "--out", run, *TRAIN)
    assert r.code == 2 and ESC not in r.err and "on host evil\\x1b[2J" in r.line


def test_presets_of_a_library_print_one_escaped_line_per_neuron(mdn, tmp_path):
    lib = library(tmp_path / "lib.json", "mine", description=f"fast{ESC}[31m red\n2-FS    fake")
    r = mdn("presets", "--library", lib)
    assert r.code == 0 and ESC not in r.out
    rows = r.out.splitlines()
    assert len(rows) == 2 and rows[1].startswith("mine ") and "fast\\x1b[31m red\\n2-FS    fake" in rows[1]
