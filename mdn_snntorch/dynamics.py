r"""What a meta neuron does on its own: responses to the sine stimulus and to constant currents,
the paper's Fig. 4 analysis, and the checks :mod:`mdn_snntorch.pipeline.discover` filters candidates with
(docs/model.md#meta-neuron-generation).

* Sine stimulus (paper Fig. 4: mean 0, standard deviation 0.723 before the sigmoid):
  :math:`I_k = \sigma(0.723\sqrt2 \sin(2\pi k / 50))`.
* Constant currents :math:`I = \sigma(x)`, :math:`x \in \{-3, -2.5, \ldots, 3\}` (13 levels, I from 0.047 to 0.953).
* Simulation in float64 with the neuron's own step (dt = 1), no surrogate, from V = 0, U = 0.08. The 150-step
  stimuli run past the 2-SDS stability horizon (about 120 steps) on purpose, to see how a candidate behaves
  there (``diverges``, ``runaway`` below), so the horizon warning meant for users' sequences is silenced here.

Response distance between two neurons (for near-duplicates), in [0, 1], 0 for identical responses:

.. math:: d = \tfrac12 \frac{\sum |r^{sine}_i - r^{sine}_j|}{\sum (r^{sine}_i + r^{sine}_j)}
            + \tfrac12 \frac{\sum |r^{const}_i - r^{const}_j|}{\sum (r^{const}_i + r^{const}_j)}

(a Bray-Curtis dissimilarity of each response), with :math:`r^{sine}` the firing rate in bins of 5 steps
under the sine (10 bins per period) and :math:`r^{const}` the firing rate over the whole run at each
constant current (an f-I curve). Relative, so sparse firers (2-SDS, 2-WDS) are compared on their own
scale: between the paper's four neurons d >= 0.34 (2-SDS vs 2-WDS), while theta moved by 1e-3 gives ~0.01.

Degenerate neurons (checked in this order):

* ``diverges``: V or U becomes non-finite;
* ``silent``: no spike under the sine or any constant current;
* ``runaway`` (paper Fig. 4c: "U continuously decreased, V reached the firing threshold quickly
  regardless"): over the second half of the sine run the neuron fires in at least half of the
  low-input steps (I < 1/2) and at least 0.8 times as often there as in the high-input steps, i.e.
  its output no longer follows its input; the reason given names where U went (typically falling
  without bound through negative resets, or growing without bound when Euler's map turns unstable).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from mdn_snntorch.functional import attractor
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.neurons.base import StabilityHorizonWarning
from mdn_snntorch.neurons.factory import make_neuron
from mdn_snntorch.surrogate import heaviside

SINE_STD = 0.723
SINE_PERIOD = 50
CONSTANT_DRIVES = np.linspace(-3.0, 3.0, 13)
RATE_BIN = 5
RUNAWAY_LOW_RATE = 0.5
RUNAWAY_RATIO = 0.8


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def sine_current(steps: int = 150, std: float = SINE_STD, period: int = SINE_PERIOD) -> np.ndarray:
    """The sine stimulus ``I[k] = sigmoid(std sqrt(2) sin(2 pi k / period))``, shape ``[steps]``."""
    k = np.arange(steps)
    return sigmoid(std * np.sqrt(2.0) * np.sin(2 * np.pi * k / period))


def constant_currents(steps: int = 150, drives: np.ndarray = CONSTANT_DRIVES) -> np.ndarray:
    """One constant current ``sigmoid(x)`` per column, shape ``[steps, len(drives)]``."""
    return np.tile(sigmoid(drives), (steps, 1))


@dataclass
class Trace:
    """A simulation: ``current``, ``spikes``, ``v`` (post-reset) and ``u`` (None for 1st order), each ``[T, n]``."""

    current: np.ndarray
    spikes: np.ndarray
    v: np.ndarray
    u: np.ndarray | None


def simulate(neuron: MetaNeuron, current: np.ndarray) -> Trace:
    """Run ``neuron`` on currents ``[T]`` or ``[T, n]`` (already in (0, 1)), float64, dt = 1."""
    current = np.asarray(current, dtype=np.float64)
    cur2 = current[:, None] if current.ndim == 1 else current
    layer = make_neuron(neuron, input_sigmoid=False, spike_grad=heaviside, check_input=False, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityHorizonWarning)  # past the horizon on purpose (module docstring)
        out = layer.multi_step(torch.from_numpy(cur2), return_traces=True)
    if neuron.order == 2:
        spikes, u, v = (t.numpy() for t in out)
    else:
        (spikes, v), u = (t.numpy() for t in out), None
    return Trace(cur2, spikes, v, u)


def attractor_trace(trace: Trace) -> np.ndarray:
    """Stable point ``V* = 1/2 - sqrt(U - I + 1/4)`` along a 2nd-order trace (NaN where none exists)."""
    _, stable, _ = attractor(torch.from_numpy(trace.u), torch.from_numpy(trace.current))
    return stable.numpy()


@dataclass
class Characterisation:
    """A neuron's responses and the verdict of the degeneracy checks (``problem`` None when it is usable)."""

    neuron: MetaNeuron
    sine: Trace
    constant: Trace
    response: np.ndarray
    problem: str | None

    @property
    def sine_rate(self) -> float:
        return float(self.sine.spikes.mean())


def response_vector(sine: Trace, constant: Trace, bin_steps: int = RATE_BIN) -> np.ndarray:
    """Binned sine rates followed by the f-I rates (see the module docstring)."""
    s = sine.spikes[:, 0]
    n_bins = len(s) // bin_steps
    binned = s[: n_bins * bin_steps].reshape(n_bins, bin_steps).mean(axis=1)
    return np.concatenate([binned, constant.spikes.mean(axis=0)])


def response_distance(r1: np.ndarray, r2: np.ndarray, n_sine_bins: int) -> float:
    """``d`` of the module docstring for two :func:`response_vector` outputs."""

    def dissimilarity(a: np.ndarray, b: np.ndarray) -> float:
        total = float(a.sum() + b.sum())
        return float(np.abs(a - b).sum()) / total if total > 0 else 0.0

    return 0.5 * dissimilarity(r1[:n_sine_bins], r2[:n_sine_bins]) + 0.5 * dissimilarity(r1[n_sine_bins:], r2[n_sine_bins:])


def degeneracy(sine: Trace, constant: Trace) -> str | None:
    """``"diverges: ..."``, ``"silent: ..."``, ``"runaway: ..."`` (see the module docstring) or None."""
    traces = [sine.v, constant.v] + ([sine.u, constant.u] if sine.u is not None else [])
    if not all(np.isfinite(t).all() for t in traces):
        return "diverges: V or U became non-finite"
    if sine.spikes.sum() == 0 and constant.spikes.sum() == 0:
        return "silent: no spike under the sine or any constant current"
    half = sine.spikes.shape[0] // 2
    spikes, current = sine.spikes[half:, 0], sine.current[half:, 0]
    low, high = spikes[current < 0.5].mean(), spikes[current > 0.5].mean()
    if low >= RUNAWAY_LOW_RATE and low >= RUNAWAY_RATIO * high:
        where_u = (
            f"; U went from {sine.u[0, 0]:.3g} to {sine.u[half, 0]:.3g} at mid-run and {sine.u[-1, 0]:.3g} at the end"
            if sine.u is not None
            else ""
        )
        return f"runaway: fires regardless of the input (rate {low:.2f} at low vs {high:.2f} at high sine input){where_u}"
    return None


def characterise(neuron: MetaNeuron, steps: int = 150) -> Characterisation:
    """Simulate ``neuron`` on the sine and the constant currents and run the degeneracy checks."""
    sine = simulate(neuron, sine_current(steps))
    constant = simulate(neuron, constant_currents(steps))
    return Characterisation(neuron, sine, constant, response_vector(sine, constant), degeneracy(sine, constant))
