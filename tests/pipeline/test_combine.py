"""``mdn combine``: one table, capability and Fig. 8 from evaluations trained apart, without training."""

import json

import pytest

from mdn_snntorch import cli
from mdn_snntorch.pipeline.evaluate import capability, combine, evaluate

TINY = dict(epochs=1, hidden=8, batch_size=100, device="cpu", threads=1)


@pytest.fixture(scope="module")
def two_evaluations(digits, tmp_path_factory):
    """The same file evaluated twice, once called spatial and once temporal, with partly different neurons."""
    root = tmp_path_factory.mktemp("evaluations")
    spatial = evaluate([digits], ["2-FS", "2-SDS", "1st-order"], seeds=1, out_dir=root / "a", progress=False, **TINY)
    temporal = evaluate(
        [digits], ["2-SDS", "2-FS"], seeds=[0, 1], out_dir=root / "b", kinds={"digits": "temporal"}, progress=False, **TINY
    )
    return root, spatial, temporal


def test_runs_are_pooled_under_their_labels(two_evaluations, tmp_path):
    root, spatial, temporal = two_evaluations
    doc = combine([("digits-a", root / "a"), ("digits-b", root / "b")], tmp_path / "c")
    assert list(doc["tasks"]) == ["digits-a", "digits-b"]
    assert doc["neurons"] == ["2-FS", "2-SDS"]  # the neurons both evaluated, in the first one's order
    assert doc["kinds"] == {"digits-a": "spatial", "digits-b": "temporal"} and doc["seeds"] == [0, 1]
    for task, source in (("digits-a", spatial), ("digits-b", temporal)):
        for neuron in doc["neurons"]:
            assert doc["accuracy_percent"][task][neuron] == source["accuracy_percent"]["digits"][neuron]
        # capability over the two kept neurons only, not over the source's three
        means = {n: source["accuracy_percent"]["digits"][n]["mean"] for n in doc["neurons"]}
        assert doc["capability"][task] == pytest.approx(capability(means))
    fs = doc["group_capability"]["2-FS"]
    assert fs["spatial"] == pytest.approx(doc["capability"]["digits-a"]["2-FS"])
    assert fs["temporal"] == pytest.approx(doc["capability"]["digits-b"]["2-FS"])
    assert {r["task"] for r in doc["runs"]} == {"digits-a", "digits-b"} and len(doc["runs"]) == 2 + 4
    for name in ("table.md", "results.json", "accuracy.png", "capability.png", "capability_per_task.png"):
        assert (tmp_path / "c" / name).stat().st_size > 0


def test_bad_sources_are_named(two_evaluations, tmp_path):
    root, _, _ = two_evaluations
    with pytest.raises(ValueError, match="also in an earlier source"):
        combine([root / "a", root / "b"], tmp_path / "c")  # both call their task "digits"
    with pytest.raises(ValueError, match="not in the evaluation"):
        combine([("x", root / "a"), ("y", root / "b")], tmp_path / "c", neurons=["1st-order"])
    with pytest.raises(ValueError, match=r"nowhere.*results.json: not the results"):
        combine([tmp_path / "nowhere"], tmp_path / "c")


def test_command(two_evaluations, tmp_path, capsys):
    root, _, _ = two_evaluations
    out = tmp_path / "c"
    assert cli.main(["combine", f"spatial={root / 'a'}", f"temporal={root / 'b'}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 task(s) x 2 neuron type(s)" in printed and "spatial" in printed and "temporal" in printed
    assert json.loads((out / "results.json").read_text())["tasks"].keys() == {"spatial", "temporal"}
    assert cli.main(["combine", str(root / "a"), str(root / "b"), "--out", str(out)]) == 2
    assert "give it a label" in capsys.readouterr().err
