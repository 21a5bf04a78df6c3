"""Capability (paper Eq. 7) and Fig. 8's spatial and temporal capability over a plain ``{task: {neuron: accuracy}}``."""

import pytest
from data_fixtures.paper import EXPECTED, KINDS, NEURONS, table

from mdn_snntorch.discovery import capability, capability_figure, group_capability, task_capability


def test_capability_of_the_paper_table3_equals_the_hand_computed_figures():
    caps = capability(table())
    assert list(caps) == list(table()) and all(list(c) == NEURONS for c in caps.values())
    groups = group_capability(caps, KINDS)  # what Fig. 8 plots
    for neuron, (spatial, temporal) in EXPECTED.items():
        assert groups[neuron] == {"spatial": pytest.approx(spatial, abs=1e-4), "temporal": pytest.approx(temporal, abs=1e-4)}


def test_eq7_on_one_task():
    assert task_capability({"a": 90.0, "b": 80.0, "c": 70.0}) == pytest.approx({"a": 1.2247, "b": 0.0, "c": -1.2247}, abs=1e-4)
    assert task_capability({"a": 0.5, "b": 0.5}) == {"a": 0.0, "b": 0.0}  # no spread: 0, not NaN
    # any scale: fractions give what percentages give
    assert capability({"t": {"x": 0.9, "y": 0.7}})["t"] == pytest.approx(capability({"t": {"x": 90.0, "y": 70.0}})["t"])


def test_bad_tables_and_kinds():
    with pytest.raises(ValueError, match=r"takes \{task: \{neuron: accuracy\}\}; task 'mnist' holds 98.6"):
        capability({"mnist": 98.6})
    with pytest.raises(ValueError, match="finite scores"):
        task_capability({"a": float("nan"), "b": 1.0})
    with pytest.raises(ValueError, match="kinds: mnist='spatio' is not one of spatial, temporal"):
        group_capability(capability(table()), {"mnist": "spatio"})


def test_fig8_is_drawn_from_the_groups(tmp_path):
    groups = group_capability(capability(table()), KINDS)
    assert capability_figure(groups, tmp_path / "fig8.png").read_bytes()[:4] == b"\x89PNG"
    only = {n: {"spatial": None, "temporal": g["temporal"]} for n, g in groups.items()}
    assert capability_figure(only, tmp_path / "temporal.png", neurons=["2-SDS", "2-FS"]).exists()
