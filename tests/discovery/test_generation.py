"""``generate``: points drawn around known theta centres give those centres back as meta neurons; the accuracy
criterion is the caller's function, called once per candidate that survives the other filters."""

import json

import numpy as np
import pytest

from mdn_snntorch import meta_neurons
from mdn_snntorch.discovery import Generation, ThetaPoints, generate
from mdn_snntorch.meta_neurons import save_library

FS = meta_neurons.get("2-FS").theta
WDS = meta_neurons.get("2-WDS").theta
RUNAWAY = (0.060, 0.219, -0.135, -0.051)  # the authors' third spatial candidate: U falls without bound (Fig. 4c)
NOISE = np.array([0.003, 0.005, 0.002, 0.005])  # per column, small against the distance between the centres
#: how close a recovered centre must be: 200 points of noise <= 0.005 average to within ~0.001
TOLERANCE = 0.002


def around(centres, n=200, seed=0) -> ThetaPoints:
    rng = np.random.default_rng(seed)
    theta = np.concatenate([np.asarray(c) + rng.normal(0, NOISE, size=(n, 4)) for c in centres])
    return ThetaPoints(theta, np.repeat([f"layer{k}" for k in range(len(centres))], n), np.tile(np.arange(n), len(centres)))


def test_two_known_centres_come_back_as_two_meta_neurons():
    made = generate(around([FS, WDS]), prefix="gen")
    assert isinstance(made, Generation) and made.library.names == ["gen-1", "gen-2"]
    got = sorted((n.theta for n in made.library.neurons), key=lambda t: -t[0])  # 2-FS (a = 0.06) first
    for theta, true in zip(got, (FS, WDS)):
        assert np.abs(np.subtract(theta, true)).max() < TOLERANCE, (theta, true)
    assert [len(c.centres) for c in made.clusters.values()] == [2, 2]
    records = {r["id"]: r for r in made.candidates}
    assert len(records) == 4 and sorted(r["support"] for r in records.values()) == [0, 0, 200, 200]
    for record in records.values():  # the two cross combinations no point had are dropped before any simulation
        if record["support"] == 0:
            assert record["status"] == "dropped" and record["reason"] == "support 0 < min_support 1"
    prov = made.library.provenance
    assert prov["neurons_clustered"] == 400 and prov["layers"] == {"layer0": 200, "layer1": 200}
    assert prov["selection"]["candidates"] is made.candidates and prov["selection"]["accuracy"] is False
    assert prov["clustering"]["ab"]["num_centres"] == 2 and prov["clustering"]["cd"]["sizes"] == [200, 200]


def test_the_accuracy_callable_is_called_once_per_surviving_candidate(tmp_path):
    """Six candidates: three no point had, one runaway; the two healthy ones are scored, and the one below
    0.95 x the best is dropped, its verdict recorded."""
    calls = []

    def accuracy(neuron):
        calls.append(neuron)
        return 0.90 if neuron.theta[0] > 0.03 else 0.50  # the 2-FS-like candidate scores 0.90, the 2-WDS-like 0.50

    made = generate(around([FS, WDS, RUNAWAY]), accuracy=accuracy, prefix="acc")
    assert [r["support"] for r in made.candidates] == [200, 200, 200, 0, 0, 0]
    assert len(calls) == 2 and len({n.name for n in calls}) == 2  # once each, never for the runaway or empty ones
    assert all(n.order == 2 and n.name.startswith("ab") for n in calls)
    scored = {r["id"]: r for r in made.candidates if "accuracy" in r}
    assert sorted(scored) == sorted(n.name for n in calls)
    fs_id = next(i for i, r in scored.items() if r["theta"][0] > 0.03)
    wds_id = next(i for i in scored if i != fs_id)
    assert scored[fs_id]["accuracy"] == 0.90 and scored[fs_id]["status"] == "kept" and scored[fs_id]["name"] == "acc-1"
    assert scored[wds_id]["accuracy"] == 0.50 and scored[wds_id]["status"] == "dropped"
    assert scored[wds_id]["reason"] == "accuracy 50.00 % < 0.95 x the best 90.00 %"
    runaway = next(r for r in made.candidates if r["support"] == 200 and r["id"] not in scored)
    assert runaway["reason"].startswith("degenerate: runaway") and "accuracy" not in runaway
    assert made.library.names == ["acc-1"] and made.library.neurons[0].provenance["accuracy"] == 0.90
    assert made.library.provenance["selection"]["accuracy"] is True
    # the library round-trips through save_library, and both figures are drawn
    path = save_library(tmp_path / "lib.json", made.library.neurons, made.library.provenance)
    assert meta_neurons.load_library(path).get("acc-1").theta == made.library.neurons[0].theta
    assert json.loads(path.read_text())["provenance"]["selection"]["candidates"][0]["support"] == 200
    for kind in ("clusters", "dynamics"):
        assert made.figure(tmp_path / f"{kind}.png", kind).read_bytes()[:4] == b"\x89PNG"
    curves = {"seed 0": [(1, 0.5), (2, 0.7)]}
    assert made.figure(tmp_path / "fig3.png", curves=curves).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="figure kind must be one of clusters, dynamics"):
        made.figure(tmp_path / "x.png", "scatter")


def test_a_plain_array_and_forced_counts():
    theta = around([FS, WDS]).theta
    made = generate(theta, ab_clusters=1, cd_clusters=1)
    assert [len(c.centres) for c in made.clusters.values()] == [1, 1] and len(made.candidates) == 1
    assert made.library.provenance["clustering"]["ab"]["method"] == "standardised theta, KMeans(M = 1, forced)"
    assert made.library.provenance["layers"] == {"": 400}


@pytest.mark.parametrize(
    "kwargs, match",
    [({"space": "log"}, "space"), ({"quantile": 0}, "quantile"), ({"min_support": -1}, "min_support"),
     ({"min_accuracy": 2}, "min_accuracy"), ({"duplicate_distance": -0.1}, "duplicate_distance"),
     ({"prefix": ""}, "prefix"), ({"ab_clusters": 0}, "ab_clusters"), ({"steps": 3}, "steps")],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(around([FS]), **kwargs)
