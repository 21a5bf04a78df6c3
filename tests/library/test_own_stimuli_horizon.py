"""The package's own long stimuli (the meta-neuron characterisation, the snnTorch side of the Brian2
cross-check) run past the 2-SDS stability horizon on purpose and do not show users the horizon warning,
which stays on for users' own sequences."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import mdn_snntorch as mdn
from mdn_snntorch import dynamics, meta_neurons


def test_the_characterisation_of_2sds_is_silent():
    sds = meta_neurons.get("2-SDS")
    assert 150 > mdn.MDN("2-SDS")._horizon  # the stimulus is longer than the horizon
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = dynamics.characterise(sds)
    assert result.sine.spikes.shape[0] == 150 and result.sine.spikes.sum() > 0


def test_the_snntorch_side_of_the_cross_check_is_silent():
    from validation.population import Population
    from validation.snntorch_sim import simulate

    pop = Population(
        kind=np.array(["2-SDS"]),
        order=np.array([2]),
        theta=np.array([meta_neurons.get("2-SDS").theta]),
        decay=np.array([np.nan]),
        stimulus=np.array(["constant"]),
        currents=np.full((200, 1), 0.6),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traces = simulate(pop)
    assert traces.spikes.shape == (200, 1)


def test_a_users_sequence_still_warns_with_its_own_category():
    with pytest.warns(mdn.StabilityHorizonWarning, match="horizon"):
        mdn.MDN("2-SDS").multi_step(torch.zeros(150, 1, 1))
    assert issubclass(mdn.StabilityHorizonWarning, RuntimeWarning)
