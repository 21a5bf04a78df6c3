"""From centres to meta neurons: the candidates (every centre combination) and their filters (support, dynamics,
accuracy, near-duplicates), each candidate's record of why it was kept or dropped."""

import re

import numpy as np
import pytest

from mdn_snntorch import dynamics, meta_neurons
from mdn_snntorch.discovery import Clustering, select_candidates
from mdn_snntorch.discovery.selection import DUPLICATE_DISTANCE
from mdn_snntorch.meta_neurons import MetaNeuron

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


@pytest.mark.parametrize("name", ["2-FS", "2-RS", "2-SDS", "2-WDS"])
def test_paper_neurons_pass_the_filters(name):
    assert dynamics.characterise(meta_neurons.get(name)).problem is None


def test_paper_neurons_are_not_near_duplicates_of_each_other():
    """The default threshold keeps the paper's four apart (2-SDS vs 2-WDS is the closest pair, 0.34),
    and calls a theta moved by ~1e-3 a duplicate."""
    chars = {n: dynamics.characterise(meta_neurons.get(n)) for n in ("2-FS", "2-RS", "2-SDS", "2-WDS")}
    bins = 150 // dynamics.RATE_BIN
    pairs = [(a, b) for a in chars for b in chars if a < b]
    closest = min(dynamics.response_distance(chars[a].response, chars[b].response, bins) for a, b in pairs)
    assert closest > 3 * DUPLICATE_DISTANCE
    moved = dynamics.characterise(MetaNeuron("fs", 2, (0.060, 0.219, -0.066, 0.004)))
    assert dynamics.response_distance(chars["2-FS"].response, moved.response, bins) < DUPLICATE_DISTANCE


def test_runaway_neuron_is_degenerate():
    """Negative theta_a and theta_d: U falls without bound and V fires whatever the input (paper Fig. 4c)."""
    problem = dynamics.characterise(MetaNeuron("x", 2, (-0.009, 0.246, -0.058, -0.065))).problem
    assert problem.startswith("runaway")
    u_end = float(re.search(r"(\S+) at the end", problem).group(1))
    assert u_end < -5


def test_silent_and_diverging_traces_are_degenerate():
    steps = 20
    quiet = dynamics.Trace(np.full((steps, 1), 0.5), np.zeros((steps, 1)), np.zeros((steps, 1)), np.zeros((steps, 1)))
    assert dynamics.degeneracy(quiet, quiet).startswith("silent")
    v = np.zeros((steps, 1))
    v[-1] = np.nan
    broken = dynamics.Trace(quiet.current, np.ones((steps, 1)), v, np.zeros((steps, 1)))
    assert dynamics.degeneracy(broken, quiet).startswith("diverges")


def test_near_duplicates_and_degenerate_candidates_are_dropped():
    ab = Clustering(np.zeros(6, dtype=int), np.array([[0.060, 0.219]]), 1.0, np.ones(2))
    cd_centres = np.array([[-0.065, 0.003], [-0.0652, 0.0031], [-0.010, 0.050], [-0.058, -0.4]])
    cd = Clustering(np.array([0, 0, 0, 1, 2, 3]), cd_centres, 1.0, np.ones(2))
    kept, records, chars = select_candidates(ab, cd, "t")
    status = {r["id"]: (r["status"], r.get("reason", "")) for r in records}
    assert [n.name for n in kept] == ["t-1", "t-2"] and list(chars) == ["t-1", "t-2"]
    assert kept[0].theta == pytest.approx((0.060, 0.219, -0.065, 0.003))  # the best-supported candidate first
    assert status["ab0-cd1"][0] == "dropped" and "near-duplicate of t-1" in status["ab0-cd1"][1]
    assert status["ab0-cd3"][0] == "dropped" and "degenerate" in status["ab0-cd3"][1]
    assert status["ab0-cd2"][0] == "kept"
