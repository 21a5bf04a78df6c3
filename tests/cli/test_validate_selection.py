"""``mdn validate --library L --neurons a b``: the named neurons of the library (and presets) are validated,
the rest of the library is not; unknown names are one clear line with exit status 2."""

from __future__ import annotations

import pytest

from mdn_snntorch import cli
from mdn_snntorch.cli import validate
from mdn_snntorch.meta_neurons import MetaNeuron, save_library


@pytest.fixture
def library(tmp_path):
    return save_library(
        tmp_path / "lib.json",
        [
            MetaNeuron("fast", 2, (0.06, 0.219, -0.065, 0.003)),
            MetaNeuron("slow", 2, (0.02, 0.2, 0.0, 0.08)),
            MetaNeuron("lif", 1, decay=0.7),
        ],
    )


@pytest.fixture
def validated(monkeypatch):
    """The neurons handed to the validation (which is not run here)."""
    seen = []

    def fake_run(neurons, out, **kwargs):
        seen.extend(n.name for n in neurons)
        return {"passed": True}

    monkeypatch.setattr(validate, "run_validation", fake_run)
    monkeypatch.setattr(validate, "summary_lines", lambda result: ["PASS"])
    return seen


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--neurons", "lif", "fast"], ["lif", "fast"]),
        (["--neurons", "slow", "2-FS"], ["slow", "2-FS"]),  # a library neuron and a preset
        ([], ["fast", "slow", "lif"]),  # the whole library
    ],
)
def test_library_and_neurons_together_validate_those(library, validated, tmp_path, extra, names):
    assert cli.main(["validate", "--library", str(library), *extra, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert validated == names


def test_a_name_the_library_does_not_hold_is_refused(library, validated, tmp_path, capsys):
    rc = cli.main(["validate", "--library", str(library), "--neurons", "medium", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and validated == []
    assert "unknown neuron 'medium'" in err and "fast" in err and len(err.strip().splitlines()) == 1


def test_presets_alone_still_work(validated, tmp_path):
    assert cli.main(["validate", "--neurons", "2-SDS", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert validated == ["2-SDS"]
