r"""Per-neuron agreement of a candidate simulator with a reference, both as :class:`Traces`.

- spike counts; the first divergence, the first step at which the spike trains differ (``T`` if never);
- the graze at the first divergence, :math:`|V'_{ref} - V_{th}|` with :math:`V'_{ref}` the reference's
  pre-reset potential of that step (rebuilt from its previous state with the equations); a tiny
  graze means the two simulators disagreed about a potential that sat on the threshold;
- van Rossum distance :math:`D = \sqrt{\tfrac1\tau \sum_k (f_k - g_k)^2}`, ``f``, ``g`` the spike
  trains filtered by :math:`f_k = e^{-1/\tau} f_{k-1} + s_k` (one unmatched spike gives
  :math:`D \approx 1/\sqrt2`);
- max :math:`|\Delta V|`, :math:`|\Delta U|` over the exact window: the steps before both the first
  divergence and the stability horizon;
- firing-rate error :math:`|r_c - r_r|` (spikes per step) over the whole run and over the free
  window: the steps from the end of the exact window until either simulator's state stops being
  finite (a state that overflows its dtype, e.g. U growing like exp(|theta_a| t) past float32's
  3.4e38, says nothing more about the model).

The stability horizon of a neuron is the first step at which the reference's
:math:`\epsilon = U - I + 1/4` exceeds :math:`1/dt^2 = 1`: from there on the Euler map
:math:`V' = V^2 - U + I` has no stable fixed point (the multiplier at the would-be attractor,
:math:`1 - 2\sqrt\epsilon`, leaves (-1, 1)), round-off grows instead of decaying and spike-exact
agreement of two float implementations stops being meaningful (2-SDS after ~120 steps under the sine;
see ``docs/model.md#tolerances``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from mdn_snntorch.equations import U0, V0, V_TH, dv_dt, first_order_map
from validation.population import Population
from validation.traces import Traces

VAN_ROSSUM_TAU = 10.0


def stability_horizon(reference: Traces, currents: np.ndarray) -> np.ndarray:
    """Per neuron, the first step with :math:`U - I + 1/4 > 1` in the reference (``T`` if never; 1st-order: ``T``)."""
    eps = reference.u - currents + 0.25
    unstable = np.nan_to_num(eps, nan=0.0) > 1.0
    return np.where(unstable.any(axis=0), unstable.argmax(axis=0), reference.u.shape[0])


def pre_reset_v(reference: Traces, pop: Population, step: np.ndarray) -> np.ndarray:
    """The reference's potential after the update and before threshold/reset of ``step[j]``, neuron ``j``."""
    cols = np.arange(pop.size)
    prev = np.maximum(step - 1, 0)
    first = step == 0
    v = np.where(first, np.where(pop.order == 2, V0, 0.0), reference.v[prev, cols])
    u = np.where(first, U0, reference.u[prev, cols])
    current = pop.currents[np.minimum(step, pop.steps - 1), cols]
    return np.where(pop.order == 2, v + 1.0 * dv_dt(v, u, current), first_order_map(v, current, pop.decay))


def van_rossum(candidate: np.ndarray, reference: np.ndarray, tau: float = VAN_ROSSUM_TAU) -> np.ndarray:
    """van Rossum distance per neuron of two spike arrays ``[T, N]`` (time in steps)."""
    diff = candidate.astype(np.float64) - reference.astype(np.float64)
    filtered = lfilter([1.0], [1.0, -np.exp(-1.0 / tau)], diff, axis=0)
    return np.sqrt((filtered**2).sum(axis=0) / tau)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|``; 0 where both are equal or both NaN (no U for 1st-order neurons), inf where only one is
    NaN or the two are different infinities."""
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    return np.where(same, 0.0, np.nan_to_num(diff, nan=np.inf))


def _finite_until(traces: Traces) -> np.ndarray:
    """Per neuron, the first step whose V or U is +-inf or NaN (``T`` if none; a 1st-order neuron's U is NaN)."""
    bad = ~np.isfinite(traces.v) | np.isinf(traces.u)
    return np.where(bad.any(axis=0), bad.argmax(axis=0), traces.v.shape[0])


def _max_abs_before(diff: np.ndarray, end: np.ndarray) -> np.ndarray:
    mask = np.arange(diff.shape[0])[:, None] < end[None, :]
    return np.where(mask, diff, 0.0).max(axis=0, initial=0.0)


@dataclass(frozen=True)
class NeuronMetrics:
    """Arrays of length ``N`` (one entry per neuron)."""

    count_reference: np.ndarray
    count_candidate: np.ndarray
    first_divergence: np.ndarray
    graze: np.ndarray  # |V'_ref - V_th| at the first divergence; inf if the trains are identical
    horizon: np.ndarray
    exact_end: np.ndarray  # min(first divergence, horizon)
    van_rossum: np.ndarray
    max_dv: np.ndarray  # over the exact window
    max_du: np.ndarray  # over the exact window (0 for 1st-order neurons)
    rate_error: np.ndarray  # whole run
    free_steps: np.ndarray  # steps from exact_end until a state stops being finite
    free_rate_error: np.ndarray  # over those steps (0 if there are none)

    steps: int

    @property
    def identical(self) -> np.ndarray:
        """Spike trains identical over the whole run."""
        return self.first_divergence == self.steps


def compare(candidate: Traces, reference: Traces, pop: Population, use_horizon: bool = True) -> NeuronMetrics:
    """Metrics of ``candidate`` against ``reference`` for every neuron of ``pop``
    (``use_horizon=False``: the horizon is the end of the run for every neuron)."""
    steps = pop.steps
    horizon = stability_horizon(reference, pop.currents) if use_horizon else np.full(pop.size, steps)
    differ = candidate.spikes != reference.spikes
    first = np.where(differ.any(axis=0), differ.argmax(axis=0), steps)
    graze = np.where(first < steps, np.abs(pre_reset_v(reference, pop, np.minimum(first, steps - 1)) - V_TH), np.inf)
    exact_end = np.minimum(first, horizon)
    finite_end = np.minimum(_finite_until(candidate), _finite_until(reference))
    t = np.arange(steps)[:, None]
    free = (t >= exact_end[None, :]) & (t < finite_end[None, :])
    free_steps = free.sum(axis=0)
    free_diff = (candidate.spikes & free).sum(axis=0) - (reference.spikes & free).sum(axis=0)
    return NeuronMetrics(
        count_reference=reference.spikes.sum(axis=0),
        count_candidate=candidate.spikes.sum(axis=0),
        first_divergence=first,
        graze=graze,
        horizon=horizon,
        exact_end=exact_end,
        van_rossum=van_rossum(candidate.spikes, reference.spikes),
        max_dv=_max_abs_before(_abs_diff(candidate.v, reference.v), exact_end),
        max_du=_max_abs_before(_abs_diff(candidate.u, reference.u), exact_end),
        rate_error=np.abs(candidate.spikes.sum(axis=0) - reference.spikes.sum(axis=0)) / steps,
        free_steps=free_steps,
        free_rate_error=np.abs(free_diff) / np.maximum(free_steps, 1),
        steps=steps,
    )
