"""``mdn combine`` claims its ``--out`` like every other writer: a folder another run holds is refused (exit 2)
and left as it was, and two combines into one folder never mix their files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from data_fixtures.faults import ROOT, TRAIN, finish, snapshot, temporaries

from mdn_snntorch import cli
from mdn_snntorch.runlock import LOCK_NAME

HOLD = """
import sys, time
from mdn_snntorch.runlock import claim_dir
with claim_dir(sys.argv[1], "output directory"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def evaluation(spikes, tmp_path_factory):
    """A finished evaluation of two neurons on the digits (one seed, one epoch)."""
    out = tmp_path_factory.mktemp("combine") / "ev"
    argv = ["evaluate", "--data", str(spikes), "--neurons", "2-FS", "1st-order", "--seeds", "1", "--out", str(out), *TRAIN]
    assert cli.main(argv) == 0
    return out


def test_combine_into_a_folder_another_run_holds_is_refused(mdn, evaluation, tmp_path):
    """The folder of a live evaluation (a real holder of its lock): its results.json is not overwritten."""
    out = tmp_path / "busy"
    out.mkdir()
    (out / "results.json").write_text('{"written by": "the live evaluation"}')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(out)
        r = mdn("combine", f"a={evaluation}", "--out", out)
        assert r.code == 2, r.line
        assert f"output directory {out} is in use by another mdn run: pid {holder.pid}" in r.line
        assert f"delete {out / LOCK_NAME}" in r.line
        assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()


def test_combine_checks_its_out_before_writing(mdn, evaluation, tmp_path):
    (tmp_path / "file").write_text("keep me")
    r = mdn("combine", f"a={evaluation}", "--out", tmp_path / "file")
    assert r.code == 2 and "is an existing file" in r.line and (tmp_path / "file").read_text() == "keep me"


SLOW_COMBINE = """
import sys, time
from mdn_snntorch import cli
from mdn_snntorch.pipeline import evaluate
write_csv = evaluate.write_csv

def paused(path, rows):  # runs.csv: results.json and runs.json are written, table.md and the figures not yet
    print("paused", flush=True)
    time.sleep(5)
    write_csv(path, rows)

evaluate.write_csv = paused
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_combine_into_a_folder_a_combine_is_writing_is_refused_and_nothing_mixes(mdn, evaluation, tmp_path):
    """The first combine pauses halfway through its files; a second one started then is refused (unlocked, it
    would write all its files in the pause, and the first one's table.md would then sit beside its results.json)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["combine", f"first={evaluation}", "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, "-c", SLOW_COMBINE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert first.stdout.readline().strip() == "paused", first.stderr.read()
    second = mdn("combine", f"second={evaluation}", "--out", out)
    assert finish(first).code == 0
    assert second.code == 2 and f"output directory {out} is in use by another mdn run: pid {first.pid}" in second.line
    assert list(json.loads((out / "results.json").read_text())["tasks"]) == ["first"]
    assert {r["task"] for r in json.loads((out / "runs.json").read_text())} == {"first"}
    table = (out / "table.md").read_text()
    assert "| first |" in table and "second" not in table
    assert not temporaries(out)
