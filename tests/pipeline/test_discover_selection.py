"""``discover`` on the built-in network: the protocols, settings checked before any work, and the authors' protocol
end to end on digits (the candidates scored on a validation split of the training data)."""

import json

import pytest

from mdn_snntorch import meta_neurons
from mdn_snntorch.pipeline.discover import PROTOCOLS, discover


def test_authors_protocol_settings():
    training, clustering = PROTOCOLS["authors"]
    assert training == {"theta_per_row": True, "detach_reset": False}
    assert clustering == {"space": "raw", "quantile": 0.5}
    assert PROTOCOLS["paper"][0] == {} and PROTOCOLS["paper"][1]["space"] == "standardised"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"protocol": "mine"}, "protocol"), ({"min_support": -1}, "min_support"), ({"accuracy_epochs": -1}, "accuracy_epochs"),
     ({"min_accuracy": 1.5}, "min_accuracy"), ({"validation_fraction": 0}, "validation_fraction"),
     ({"validation_fraction": 1.0}, "validation_fraction"), ({"duplicate_distance": 2}, "duplicate_distance"),
     ({"space": "log"}, "space"), ({"quantile": 0}, "quantile"), ({"ab_clusters": 0}, "ab_clusters")],
)  # fmt: skip
def test_discover_rejects_bad_selection_settings(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        discover(tmp_path / "none.h5", tmp_path / "lib.json", **kwargs)
    assert not (tmp_path / "lib.json").exists()


# ---- end to end -----------------------------------------------------------------------------------
def test_discover_with_the_authors_protocol(digits, tmp_path):
    out = tmp_path / "authors.json"
    batch, hidden = 50, 16
    library = discover(
        digits, out, protocol="authors", epochs=1, hidden=hidden, batch_size=batch, accuracy_epochs=1,
        device="cpu", threads=1, progress=False, figures=False,
    )  # fmt: skip
    prov = json.loads(out.read_text())["provenance"]
    assert prov == library.provenance and prov["protocol"] == "authors"
    assert prov["neurons_clustered"] == batch * (hidden + 10)  # every (row, neuron) pair of both layers
    training = prov["training"]
    assert training["theta_per_row"] is True and training["detach_reset"] is False and training["neuron"] == "learnable"
    for pair in ("ab", "cd"):
        c = prov["clustering"][pair]
        assert c["space"] == "raw" and c["quantile"] == 0.5 and sum(c["sizes"]) == batch * (hidden + 10)
        assert c["method"].startswith("raw theta, MeanShift")
    selection = prov["selection"]
    assert selection["min_support"] == 1 and selection["accuracy_epochs"] == 1 and selection["min_accuracy"] == 0.95
    candidates = selection["candidates"]
    scored = [r for r in candidates if "accuracy" in r]
    assert scored and all(0 <= r["accuracy"] <= 1 for r in scored)
    best = max(r["accuracy"] for r in scored)
    for record in candidates:
        if record["status"] == "kept":
            assert record["accuracy"] >= 0.95 * best
        elif "accuracy" not in record:  # dropped before the accuracy step
            assert record["reason"].startswith(("support", "degenerate"))
    kept = [r for r in candidates if r["status"] == "kept"]
    assert [n.provenance["accuracy"] for n in library.neurons] == [r["accuracy"] for r in kept]
    assert [r["accuracy"] for r in kept] == sorted((r["accuracy"] for r in kept), reverse=True)
    # the candidates' accuracy runs trained the frozen neuron (no theta per row) with the undetached reset
    runs = sorted((tmp_path / "authors_runs" / "candidates").iterdir())
    assert len(runs) == len(scored)
    config = json.loads((runs[0] / "metrics.json").read_text())["config"]
    assert config["theta_per_row"] is False and config["detach_reset"] is False and config["epochs"] == 1
    assert isinstance(config["neuron"], dict)
    for neuron in library.neurons:
        assert meta_neurons.MetaNeuron.from_dict(neuron.to_dict()).theta == neuron.theta
