"""Meta-neuron discovery: clustering, the dynamics filters, and a tiny end-to-end run on digits."""

import json
import re

import numpy as np
import pytest

from mdn_snntorch import MDN, cli, dynamics, make_neuron, meta_neurons
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.pipeline.discover import DUPLICATE_DISTANCE, Clustering, cluster_pair, discover, select_candidates


def test_cluster_pair_counts_blobs_on_unequal_scales():
    """Three blobs separated along a (scale 0.01) and b (scale 0.1): both axes must count."""
    rng = np.random.default_rng(0)
    true = np.array([[0.02, 0.2], [0.05, 0.2], [0.02, 0.5]])
    points = np.concatenate([c + rng.normal(0, [0.002, 0.02], size=(150, 2)) for c in true])
    c = cluster_pair(points)
    assert len(c.centres) == 3 and sorted(c.sizes) == [150, 150, 150]
    for centre in true:
        nearest = c.centres[np.argmin(np.abs((c.centres - centre) / [0.01, 0.1]).sum(axis=1))]
        assert (np.abs(nearest - centre) < [0.002, 0.02]).all(), (nearest, centre)


def test_cluster_pair_of_identical_points_is_one_centre():
    c = cluster_pair(np.tile([[0.02, 0.2]], (20, 1)))
    assert c.centres.tolist() == [[0.02, 0.2]] and c.sizes == [20]


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


def test_discover_on_a_tiny_run_writes_a_loadable_library(digits, tmp_path):
    out = tmp_path / "spatial.json"
    hidden = 40
    library = discover(
        digits, out, seeds=1, epochs=2, hidden=hidden, batch_size=50, lr=3e-3, device="cpu", threads=1, progress=False
    )
    loaded = meta_neurons.load_library(out)
    assert loaded.names == library.names and len(loaded.neurons) >= 1
    for neuron in loaded.neurons:
        layer = make_neuron(neuron)
        assert isinstance(layer, MDN) and neuron.order == 2 and np.isfinite(neuron.theta).all()
        assert neuron.provenance["candidate"].startswith("ab")
    prov = loaded.provenance
    assert prov["source"] == digits and prov["seeds"] == [0] and prov["neurons_clustered"] == hidden + 10
    for pair in ("ab", "cd"):
        c = prov["clustering"][pair]
        assert c["num_centres"] == len(c["centres"]) >= 1 and sum(c["sizes"]) == hidden + 10
    candidates = prov["selection"]["candidates"]
    assert len(candidates) == prov["clustering"]["ab"]["num_centres"] * prov["clustering"]["cd"]["num_centres"]
    assert all(r["status"] == "kept" or r["reason"] for r in candidates)
    assert sum(r["support"] for r in candidates) == hidden + 10  # every neuron sits in one (ab, cd) cell
    for fig in ("spatial_fig3.png", "spatial_fig4.png"):
        assert (tmp_path / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the training run is kept and reused: a second call trains nothing new and gives the same library
    stamp = (tmp_path / "spatial_runs" / "seed0" / "epoch_002.pt").stat().st_mtime_ns
    again = discover(
        digits,
        out,
        seeds=1,
        epochs=2,
        hidden=hidden,
        batch_size=50,
        lr=3e-3,
        device="cpu",
        threads=1,
        progress=False,
        figures=False,
    )
    assert [n.theta for n in again.neurons] == [n.theta for n in library.neurons]
    assert (tmp_path / "spatial_runs" / "seed0" / "epoch_002.pt").stat().st_mtime_ns == stamp


def test_discover_cli(digits, tmp_path, capsys):
    out = tmp_path / "lib.json"
    argv = ["discover", "--data", digits, "--out", str(out), "--epochs", "1", "--hidden", "24", "--batch-size", "50",
            "--device", "cpu", "--threads", "1", "--no-progress", "--no-figures"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "(a, b) centres:" in printed and "written to" in printed
    doc = json.loads(out.read_text())
    assert doc["format"] == meta_neurons.LIBRARY_FORMAT and doc["provenance"]["training"]["hidden"] == 24
    assert cli.main(["discover", "--data", str(tmp_path / "nope.h5"), "--out", str(out)]) == 2
    assert "nope.h5" in capsys.readouterr().err
