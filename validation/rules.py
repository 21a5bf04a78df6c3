r"""The tolerance rules a comparison is judged by, written down once (see ``docs/validation.md``).

Per neuron, with the exact window and the free window of :mod:`validation.metrics`:

1. **state**: :math:`\max|\Delta V|, \max|\Delta U| \le` ``state_atol`` over the exact window;
2. **spikes**: the spike trains agree up to the stability horizon, except where the first difference is
   a threshold graze, :math:`|V'_{ref} - V_{th}| \le` ``graze_atol`` (the potential sat on the threshold
   within the arithmetic's own error, so which side it lands on is the last bit's choice);
3. **rate**: over the free window of ``n`` steps, :math:`|\Delta r| \le k\sqrt{1/(2n)}`, ``k`` =
   ``rate_sigmas``: :math:`\sqrt{1/(2n)}` bounds the standard deviation of the rate difference of two
   independent spike trains of equal rate (Bernoulli, variance :math:`\le 1/(4n)` each), so only a
   difference beyond ``k`` of those is a failure: after the horizon the two runs are allowed to be as
   different as two independent realisations of the same neuron, but not to fire at a different rate.

``FLOAT64``: ``state_atol = graze_atol = 1e-12``. Measured differences are <= 4e-15 (a few ulp: Brian2
evaluates ``((-u + v**2) + I) - v``, PyTorch ``((v*v - v) - u) + I``); 1e-12 leaves room for error
growth over long runs while any modelling error (a wrong order of updates, a wrong reset) is orders of
magnitude larger.

``FLOAT32``: ``state_atol = graze_atol = 1e-3``. Each float32 operation rounds by up to
:math:`2^{-24} \approx 6\cdot10^{-8}`, theta itself is rounded to float32, and the contraction of the
dynamics (1 - 2 sqrt(eps) per step near the attractor) weakens towards the horizon; measured state
differences reach 2e-4 just before the 2-SDS horizon and stay < 1e-5 elsewhere. Spikes differ only at
grazes of <= 2e-6 (measured, about 1 neuron in 1,000 per 1,000 steps).

``BITWISE``: identical bits over the whole run, no horizon (Brian2 Cython in strict IEEE mode against
the numpy target: both evaluate the same expression with one rounding per operation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from validation.metrics import NeuronMetrics


@dataclass(frozen=True)
class Rule:
    name: str
    state_atol: float
    graze_atol: float
    rate_sigmas: float
    use_horizon: bool = True

    def describe(self) -> str:
        if not self.use_horizon:
            return "bit-identical spikes and states over the whole run"
        return (
            f"ΔV, ΔU <= {self.state_atol:g} and identical spikes up to the stability horizon "
            f"(except threshold grazes <= {self.graze_atol:g}); "
            f"afterwards Δrate <= {self.rate_sigmas:g} sqrt(1/(2n)) for n free steps"
        )


FLOAT64 = Rule("float64", state_atol=1e-12, graze_atol=1e-12, rate_sigmas=5.0)
FLOAT32 = Rule("float32", state_atol=1e-3, graze_atol=1e-3, rate_sigmas=5.0)
BITWISE = Rule("bitwise", state_atol=0.0, graze_atol=0.0, rate_sigmas=0.0, use_horizon=False)
RULES = {r.name: r for r in (FLOAT64, FLOAT32, BITWISE)}


@dataclass(frozen=True)
class Judgement:
    """Per-neuron failures by reason (boolean arrays) and the overall pass mask."""

    state_failed: np.ndarray
    spikes_failed: np.ndarray
    rate_failed: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        return ~(self.state_failed | self.spikes_failed | self.rate_failed)


def rate_tolerance(free_steps: np.ndarray, sigmas: float) -> np.ndarray:
    """:math:`k\\sqrt{1/(2n)}` spikes per step for a free window of ``n`` steps."""
    return sigmas * np.sqrt(0.5 / np.maximum(free_steps, 1))


def judge(m: NeuronMetrics, rule: Rule) -> Judgement:
    """Apply ``rule`` to every neuron's metrics."""
    state_failed = (m.max_dv > rule.state_atol) | (m.max_du > rule.state_atol)
    diverged_early = m.first_divergence < m.horizon
    spikes_failed = diverged_early & ~(m.graze <= rule.graze_atol)
    rate_failed = (m.free_steps > 0) & (m.free_rate_error > rate_tolerance(m.free_steps, rule.rate_sigmas))
    return Judgement(state_failed, spikes_failed, rate_failed)
