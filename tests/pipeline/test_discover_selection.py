"""Meta-neuron discovery: the candidate filters (support, accuracy), the clustering space and forced centre
counts, theta per batch row as cluster points, and the authors' protocol end to end on digits."""

import json

import numpy as np
import pytest
import torch

from mdn_snntorch import meta_neurons
from mdn_snntorch.pipeline.discover import PROTOCOLS, Clustering, cluster_pair, collect_theta, discover, select_candidates
from mdn_snntorch.pipeline.model import ThreeLayerSNN

AB = np.array([[0.060, 0.219]])  # the paper's spatial (a, b) centre
#: (c, d) centres: 0 and 1 are near-duplicates of each other, 2 is another neuron, 3 is degenerate (runaway)
CD = np.array([[-0.065, 0.003], [-0.0652, 0.0031], [-0.010, 0.050], [-0.058, -0.4]])


def clusterings(cd_labels, cd_centres=CD):
    """One (a, b) centre holding every neuron and the (c, d) clusters as given (by hand, as a clustering would)."""
    cd_labels = np.asarray(cd_labels)
    ab = Clustering(np.zeros(len(cd_labels), dtype=int), AB, 1.0, np.ones(2))
    cd = Clustering(cd_labels, cd_centres, 1.0, np.ones(2))
    return ab, cd


def by_id(records):
    return {r["id"]: r for r in records}


# ---- step 4: support --------------------------------------------------------------------------
def test_min_support_drops_a_combination_no_neuron_had():
    """(c, d) centre 2 is a healthy neuron, but no neuron sits in cell ab0-cd2: dropped before any simulation."""
    ab, cd = clusterings([0, 0, 0, 3])
    kept, records, _ = select_candidates(ab, cd, "t")
    record = by_id(records)["ab0-cd2"]
    assert record["support"] == 0 and record["status"] == "dropped"
    assert record["reason"] == "support 0 < min_support 1"
    assert "sine_rate" not in record  # never simulated
    assert [n.provenance["candidate"] for n in kept] == ["ab0-cd0"]
    # min_support=0 keeps the old behaviour: the empty cell is a candidate like any other
    kept0, records0, _ = select_candidates(ab, cd, "t", min_support=0)
    assert by_id(records0)["ab0-cd2"]["status"] == "kept"
    assert [n.provenance["candidate"] for n in kept0] == ["ab0-cd0", "ab0-cd2"]


def test_min_support_above_one_drops_thin_cells():
    ab, cd = clusterings([0, 0, 0, 2, 2])
    kept, records, _ = select_candidates(ab, cd, "t", min_support=3)
    assert by_id(records)["ab0-cd2"]["reason"] == "support 2 < min_support 3"
    assert [n.provenance["candidate"] for n in kept] == ["ab0-cd0"]


# ---- step 6: accuracy ---------------------------------------------------------------------------
def fake_accuracy(table, calls):
    def accuracy(neuron):
        calls.append(neuron.name)
        assert neuron.order == 2 and len(neuron.theta) == 4
        return table[neuron.name]

    return accuracy


def test_accuracy_filter_keeps_those_near_the_best_in_order_of_accuracy():
    """Best 0.90: the bar is 0.95 x 0.90 = 0.855. cd2 (0.86) passes and, being the most accurate of the rest after
    cd1, comes second; cd0 (0.80, the best supported) fails. cd1 is kept first; its near-duplicate cd0 is not reached."""
    ab, cd = clusterings([0, 0, 0, 0, 1, 2, 2, 3])
    calls = []
    table = {"ab0-cd0": 0.80, "ab0-cd1": 0.90, "ab0-cd2": 0.86}
    kept, records, chars = select_candidates(ab, cd, "t", accuracy=fake_accuracy(table, calls))
    rec = by_id(records)
    assert sorted(calls) == ["ab0-cd0", "ab0-cd1", "ab0-cd2"]  # the degenerate cd3 is never trained
    assert "accuracy" not in rec["ab0-cd3"] and rec["ab0-cd3"]["reason"].startswith("degenerate")
    assert [n.provenance["candidate"] for n in kept] == ["ab0-cd1", "ab0-cd2"]
    assert [n.name for n in kept] == ["t-1", "t-2"] and list(chars) == ["t-1", "t-2"]
    assert [n.provenance["accuracy"] for n in kept] == [0.90, 0.86]
    assert rec["ab0-cd0"]["status"] == "dropped" and rec["ab0-cd0"]["accuracy"] == 0.80
    assert rec["ab0-cd0"]["reason"] == "accuracy 80.00 % < 0.95 x the best 90.00 %"
    assert rec["ab0-cd1"]["status"] == rec["ab0-cd2"]["status"] == "kept"


def test_near_duplicates_are_dropped_in_order_of_accuracy():
    """cd0 and cd1 respond alike: whichever is more accurate is kept, the other dropped as its near-duplicate."""
    ab, cd = clusterings([0, 0, 0, 0, 1, 2])
    for better, worse in (("ab0-cd0", "ab0-cd1"), ("ab0-cd1", "ab0-cd0")):
        table = {better: 0.90, worse: 0.89, "ab0-cd2": 0.88}
        kept, records, _ = select_candidates(ab, cd, "t", accuracy=fake_accuracy(table, []))
        assert [n.provenance["candidate"] for n in kept] == [better, "ab0-cd2"]
        assert by_id(records)[worse]["reason"].startswith("near-duplicate of t-1")


def test_min_accuracy_sets_the_bar():
    ab, cd = clusterings([0, 0, 0, 0, 1, 2])
    table = {"ab0-cd0": 0.50, "ab0-cd1": 0.40, "ab0-cd2": 0.90}
    kept, records, _ = select_candidates(ab, cd, "t", accuracy=fake_accuracy(table, []), min_accuracy=0.5)
    assert [n.provenance["candidate"] for n in kept] == ["ab0-cd2", "ab0-cd0"]  # 0.50 >= 0.5 x 0.90, kept
    assert by_id(records)["ab0-cd1"]["reason"] == "accuracy 40.00 % < 0.5 x the best 90.00 %"
    kept, _, _ = select_candidates(ab, cd, "t", accuracy=fake_accuracy(table, []), min_accuracy=0.0)
    assert len(kept) == 2  # no bar: only the near-duplicate cd1 (of cd0) is dropped


def test_without_accuracy_candidates_go_in_order_of_support():
    ab, cd = clusterings([2, 2, 2, 0, 0, 1])
    kept, records, _ = select_candidates(ab, cd, "t")
    assert [n.provenance["candidate"] for n in kept] == ["ab0-cd2", "ab0-cd0"]
    assert [n.provenance["accuracy"] for n in kept] == [None, None]
    assert all("accuracy" not in r for r in records)
    assert by_id(records)["ab0-cd1"]["reason"].startswith("near-duplicate of t-2")  # cd1 (support 1) after cd0 (2)


# ---- clustering space and forced counts ------------------------------------------------------------
def blobs_apart_along_a(seed=0, n=1000):
    """Two blobs 0.02 apart in theta_a (std 0.001) and one spread of std 0.1 in theta_b: apart only on the small scale."""
    rng = np.random.default_rng(seed)
    a = np.concatenate([rng.normal(0.0, 0.001, n), rng.normal(0.02, 0.001, n)])
    b = rng.normal(0.2, 0.1, 2 * n)
    return np.stack([a, b], axis=1)


def test_standardised_space_sees_a_separation_the_raw_space_does_not():
    points = blobs_apart_along_a()
    standardised = cluster_pair(points)
    assert len(standardised.centres) == 2 and standardised.sizes == [1000, 1000]
    assert sorted(standardised.centres[:, 0]) == pytest.approx([0.0, 0.02], abs=1e-3)  # centres in theta units
    assert (standardised.labels[:1000] != standardised.labels[1000:].reshape(-1, 1)).all()
    raw = cluster_pair(points, space="raw")
    assert len(raw.centres) == 1 and raw.sizes == [2000]
    assert raw.scale.tolist() == [1.0, 1.0]
    assert raw.centres[0] == pytest.approx(points.mean(axis=0), abs=1e-12)  # the mean in theta units, not z = 0


def test_raw_space_centres_are_in_theta_units():
    rng = np.random.default_rng(1)
    true = np.array([[0.02, 0.2], [0.02, 0.6]])
    points = np.concatenate([c + rng.normal(0, [0.002, 0.02], size=(300, 2)) for c in true])
    c = cluster_pair(points, space="raw")
    assert len(c.centres) == 2 and c.sizes == [300, 300]
    for centre in true:
        assert np.abs(c.centres - centre).sum(axis=1).min() < 0.01


def test_n_clusters_forces_the_number_of_centres():
    points = blobs_apart_along_a(n=300)
    for space in ("standardised", "raw"):
        c = cluster_pair(points, space=space, n_clusters=3)
        assert len(c.centres) == 3 and sum(c.sizes) == 600 and c.sizes == sorted(c.sizes, reverse=True)
        assert set(c.labels.tolist()) == {0, 1, 2}
    # never more centres than distinct points
    assert len(cluster_pair(np.tile([[0.02, 0.2]], (10, 1)), n_clusters=3).centres) == 1


@pytest.mark.parametrize("kwargs", [{"space": "log"}, {"n_clusters": 0}, {"n_clusters": True}, {"n_clusters": 2.0}])
def test_cluster_pair_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        cluster_pair(blobs_apart_along_a(n=20), **kwargs)


# ---- theta per batch row ------------------------------------------------------------------------
def test_collect_theta_takes_every_row_of_theta_per_row():
    rows = 4
    net = ThreeLayerSNN(6, 5, 3, neuron="learnable", theta_rows=rows)
    with torch.no_grad():
        net.hidden.theta_a.copy_(torch.arange(rows * 5, dtype=torch.float32).reshape(rows, 5))
        net.output.theta_a.copy_(100 + torch.arange(rows * 3, dtype=torch.float32).reshape(rows, 3))
    theta = collect_theta(net)
    assert theta.shape == (rows * (5 + 3), 4)
    assert theta[:, 0].tolist() == list(range(20)) + list(range(100, 112))  # hidden then output, row by row
    assert np.allclose(theta[:, 1:], [0.2, 0.0, 0.08])  # the initial values of the untouched b, c, d
    assert collect_theta(ThreeLayerSNN(6, 5, 3, neuron="learnable")).shape == (5 + 3, 4)


def test_authors_protocol_settings():
    training, clustering = PROTOCOLS["authors"]
    assert training == {"theta_per_row": True, "detach_reset": False}
    assert clustering == {"space": "raw", "quantile": 0.5}
    assert PROTOCOLS["paper"][0] == {} and PROTOCOLS["paper"][1]["space"] == "standardised"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"protocol": "mine"}, "protocol"), ({"min_support": -1}, "min_support"), ({"accuracy_epochs": -1}, "accuracy_epochs"),
     ({"min_accuracy": 1.5}, "min_accuracy")],
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
