"""Replay a :class:`~validation.population.Population` with the snnTorch neurons of this package.

The 2nd-order neurons run as one :class:`~mdn_snntorch.MDN` with per-neuron theta, the
1st-order ones as one :class:`~mdn_snntorch.FirstOrder` with per-neuron decay; the currents
are taken as given (``input_sigmoid=False``) and cast to ``dtype``. Theta is converted from
the float64 population straight to ``dtype``, as a user constructing ``MDN(dtype=...)`` gets it.
The cross-check compares whole runs, past the 2-SDS stability horizon too, so the horizon warning (meant for
users' sequences) is silenced here.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from mdn_snntorch.neurons.base import StabilityHorizonWarning
from mdn_snntorch.neurons.first_order import FirstOrder
from mdn_snntorch.neurons.mdn import MDN
from validation.population import Population
from validation.traces import Traces


@torch.no_grad()
def simulate(pop: Population, dtype: torch.dtype = torch.float64, backend: str = "auto") -> Traces:
    """Run ``pop`` through the snnTorch neurons in ``dtype`` with their ``backend`` (``"auto"``: the
    fused op where it applies; ``"reference"``: the autograd loop); post-reset traces as float64."""
    spikes = np.zeros((pop.steps, pop.size), dtype=bool)
    v = np.full((pop.steps, pop.size), np.nan)
    u = np.full((pop.steps, pop.size), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityHorizonWarning)  # whole runs, past the horizon on purpose
        _run(pop, dtype, backend, spikes, v, u)
    return Traces(spikes, v, u)


def _run(pop: Population, dtype: torch.dtype, backend: str, spikes: np.ndarray, v: np.ndarray, u: np.ndarray) -> None:
    """Fill ``spikes``, ``v`` and ``u`` ``[steps, size]`` with the population's runs."""
    idx = pop.index(2)
    if len(idx):
        theta = tuple(torch.from_numpy(pop.theta[idx, j].copy()) for j in range(4))
        neuron = MDN(theta, num_neurons=len(idx), dtype=dtype, input_sigmoid=False, check_input=False, backend=backend)
        s, uu, vv = neuron.multi_step(torch.from_numpy(pop.currents[:, None, idx]).to(dtype), return_traces=True)
        spikes[:, idx], u[:, idx], v[:, idx] = s[:, 0].numpy() > 0, uu[:, 0].double().numpy(), vv[:, 0].double().numpy()
    idx = pop.index(1)
    if len(idx):
        decay = torch.from_numpy(pop.decay[idx].copy())
        neuron = FirstOrder(decay, num_neurons=len(idx), dtype=dtype, input_sigmoid=False, check_input=False, backend=backend)
        s, vv = neuron.multi_step(torch.from_numpy(pop.currents[:, None, idx]).to(dtype), return_traces=True)
        spikes[:, idx], v[:, idx] = s[:, 0].numpy() > 0, vv[:, 0].double().numpy()
