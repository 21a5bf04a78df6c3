"""The validation report: files present and parseable, PASS/FAIL and exit codes, clear errors."""

import json
import re
from pathlib import Path

import pytest
from test_validation_neurons import wrong_model

from mdn_snntorch import cli
from mdn_snntorch.meta_neurons import MetaNeuron, save_library
from validation.report import run_validation
from validation.rules import FLOAT64
from validation.run import QUICK, Candidate, replace_settings

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")

SMALL = replace_settings(QUICK, per_type=4, steps=200)


@pytest.mark.slow
def test_cli_writes_a_parseable_report_and_exits_zero(tmp_path, capsys):
    lib = save_library(
        tmp_path / "lib.json",
        [
            MetaNeuron("fast", 2, (0.06, 0.219, -0.065, 0.003)),
            MetaNeuron("depressing", 2, (-0.009, 0.246, -0.058, 0.065)),
            MetaNeuron("lif", 1, decay=0.8),
        ],
    )
    out = tmp_path / "report"
    rc = cli.main(
        ["validate", "--library", str(lib), "--quick", "--per-type", "4", "--steps", "200", "--out", str(out), "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert re.search(r"^PASS: \d+/\d+ checks passed$", printed, re.M)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["passed"] is True and all(c["passed"] for c in metrics["checks"])
    assert [n["name"] for n in metrics["settings"]["neurons"]] == ["fast", "depressing", "lif"]
    by_type = metrics["comparisons"][0]["by_type"]
    assert set(by_type) == {"fast", "depressing", "lif", "random-theta"}
    assert by_type["fast"]["identical_fraction"] == 1.0 and by_type["fast"]["max_dv"] < 1e-14
    assert metrics["dt_study"]["types"] == ["fast", "depressing"]  # the 1st-order map has no ODE
    for name in ("fast", "depressing", "lif", "random-theta"):
        for kind in ("traces", "raster"):
            assert (out / f"{kind}_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert linked and all((out / p).is_file() for p in linked)
    assert "fi_curves.png" in linked and "agreement.png" in linked
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(linked) and 'src="traces' not in page
    assert not list(out.glob("*.tmp"))


@pytest.mark.slow
def test_a_wrong_model_is_reported_as_fail(tmp_path):
    wrong = Candidate("U from the new V", lambda pop: wrong_model(pop), FLOAT64)
    result = run_validation(
        ["2-RS", "2-WDS"], tmp_path, settings=SMALL, random_theta=False, extra_candidates=[wrong], progress=False
    )
    assert result["passed"] is False
    verdicts = {c["name"]: c["passed"] for c in result["checks"]}
    assert verdicts["U from the new V vs Brian2 numpy (float64 rule)"] is False
    assert sum(not v for v in verdicts.values()) == 1  # everything else still passes
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["passed"] is False
    assert "FAIL" in (tmp_path / "report.md").read_text()


def test_cli_errors_name_the_bad_input(tmp_path, capsys):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else", "neurons": []}))
    cases = [
        (["--library", str(bad_json)], "broken.json"),
        (["--library", str(other)], "other.json"),
        (["--library", str(tmp_path / "missing.json")], "missing.json"),
        (["--neurons", "2-XX"], "2-XX"),
        (["--checkpoint", str(tmp_path)], "--checkpoint and --data"),
        (["--per-type", "2"], "--per-type"),
    ]
    for args, named in cases:
        assert cli.main(["validate", *args, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        assert named in capsys.readouterr().err
    assert not Path(tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_exits_one_when_a_check_fails(tmp_path, capsys, monkeypatch):
    from validation import run

    defaults = run.default_candidates
    monkeypatch.setattr(run, "default_candidates", lambda: defaults() + [Candidate("U from the new V", wrong_model, FLOAT64)])
    rc = cli.main(
        ["validate", "--neurons", "2-RS", "--quick", "--per-type", "4", "--steps", "150", "--out", str(tmp_path), "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert rc == 1
    assert "FAIL  U from the new V vs Brian2 numpy (float64 rule)" in printed and re.search(
        r"^FAIL: \d+/\d+ checks passed$", printed, re.M
    )


def test_dt_study_names_types_whose_ode_reference_is_not_resolved():
    import numpy as np

    from validation.continuous import DtStudy

    levels = np.array([0.2, 0.5, 0.8])
    ref = {"resolved": [0.0, 0.3, 0.6], "runaway": [1.2, 1.8, 2.5]}
    check = {"resolved": [0.0, 0.305, 0.61], "runaway": [0.0, 0.9, 2.4]}
    fi = {
        "rk4 h=0.01": np.array([ref["resolved"], ref["runaway"]]),
        "rk4 h=0.005": np.array([check["resolved"], check["runaway"]]),
    }
    sine = {"rk4 h=0.01": np.array([0.2, 1.0]), "rk4 h=0.005": np.array([0.2, 1.0])}
    study = DtStudy(["resolved", "runaway"], levels, 1000, 0.01, fi, fi, sine, sine)
    np.testing.assert_allclose(study.reference_spread(), [0.01, 1.2])
    assert study.reference_tolerance() == 0.01 + 2 / 1000
    assert study.unresolved_types() == ["runaway"]
