r"""How far the discrete dt = 1 model is from the ODE it discretises (paper Eq. 2).

For every 2nd-order neuron type, constant currents (an f-I curve) and the sine stimulus are run with

- forward Euler at clock step ``h = 1, 1/2, 1/4, 1/10`` (``h = 1`` is the paper's model; ``h = 1/n``
  is what ``MDN(dt=1, substeps=n)`` integrates), and
- the continuous-time reference: classical Runge-Kutta (``rk4``) at ``h_ref`` and at ``h_ref / 2``,
  whose difference bounds the reference's own error,

all in Brian2 from the same derived model string (only ``method`` and the clock differ), the
current held over each unit step. Reported per unit of model time: the firing rate (all spikes) and
the occupancy (fraction of unit steps with at least one spike: the rate ``MDN(substeps=n)`` gives,
since it emits at most one spike per network step). 1st-order neurons are left out: paper Eq. 3 is a
discrete map by definition, with no ODE behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdn_snntorch.meta_neurons import MetaNeuron
from validation import stimuli
from validation.brian2_sim import spike_counts
from validation.population import Population

EULER_SUBSTEPS = (1, 2, 4, 10)


@dataclass
class DtStudy:
    """Rates ``[n_types, n_levels]`` (f-I) and ``[n_types]`` (sine) per integration scheme label."""

    types: list[str]
    levels: np.ndarray
    steps: int
    h_ref: float
    fi_rate: dict[str, np.ndarray]
    fi_occupancy: dict[str, np.ndarray]
    sine_rate: dict[str, np.ndarray]
    sine_occupancy: dict[str, np.ndarray]

    @property
    def reference(self) -> str:
        return f"rk4 h={self.h_ref:g}"

    @property
    def reference_check(self) -> str:
        return f"rk4 h={self.h_ref / 2:g}"

    def schemes(self) -> list[str]:
        return list(self.fi_rate)

    def reference_spread(self) -> np.ndarray:
        """Per type: max |rate(h_ref) - rate(h_ref / 2)| over levels and the sine, the reference's own error."""
        f = np.abs(self.fi_rate[self.reference] - self.fi_rate[self.reference_check]).max(axis=1, initial=0.0)
        s = np.abs(self.sine_rate[self.reference] - self.sine_rate[self.reference_check])
        return np.maximum(f, s)

    def reference_tolerance(self) -> float:
        """What :meth:`reference_spread` may be: ``h_ref + 2 / steps``. Spikes are detected on the clock
        grid, so each is late by up to ``h``: a rate ``r`` is biased by about ``-r^2 h / 2`` (< ``h`` for
        ``r < 1.4``), and counting over ``steps`` adds +-1 spike per run and scheme."""
        return self.h_ref + 2.0 / self.steps

    def unresolved_types(self) -> list[str]:
        """Types whose ODE the reference does not resolve (h_ref and h_ref / 2 disagree), e.g. when a
        strongly negative theta_a lets U grow like exp(|theta_a| t): no continuous-time verdict for them."""
        spread = self.reference_spread()
        return [t for t, s in zip(self.types, spread) if s > self.reference_tolerance()]

    def fi_error(self, scheme: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and max over levels of |rate(scheme) - rate(reference)| per type."""
        diff = np.abs(self.fi_rate[scheme] - self.fi_rate[self.reference])
        return diff.mean(axis=1), diff.max(axis=1)

    def to_json(self) -> dict:
        return {
            "types": self.types,
            "levels": self.levels.tolist(),
            "steps": self.steps,
            "reference": self.reference,
            "reference_spread": self.reference_spread().tolist(),
            "reference_tolerance": self.reference_tolerance(),
            "unresolved_types": self.unresolved_types(),
            "fi_rate": {k: v.tolist() for k, v in self.fi_rate.items()},
            "fi_occupancy": {k: v.tolist() for k, v in self.fi_occupancy.items()},
            "sine_rate": {k: v.tolist() for k, v in self.sine_rate.items()},
            "sine_occupancy": {k: v.tolist() for k, v in self.sine_occupancy.items()},
        }


def dt_study(
    neurons: list[MetaNeuron],
    steps: int,
    n_levels: int,
    h_ref: float,
    target: str = "numpy",
    *,
    substeps: tuple[int, ...] = EULER_SUBSTEPS,
    cache_root=None,
    progress=None,
) -> DtStudy:
    """Run Euler at ``h = 1/n`` for ``n`` in ``substeps`` and rk4 at ``h_ref``, ``h_ref / 2`` on every
    2nd-order neuron of ``neurons``; ``progress`` is called after each scheme."""
    second_order = [n for n in neurons if n.order == 2]
    rng = np.random.default_rng(0)
    stimulus = {"f-I": stimuli.constant(steps, n_levels), "sine": stimuli.sine(steps, 1, rng)}
    pop = Population.concat([Population.of(n, stimulus) for n in second_order])
    shape = (len(second_order), n_levels + 1)
    schemes = [(f"euler h={1 / n:g}", 1.0 / n, "euler") for n in substeps]
    schemes += [(f"rk4 h={h:g}", h, "rk4") for h in (h_ref, h_ref / 2)]
    rates, occupancy = {}, {}
    for label, h, method in schemes:
        counts = spike_counts(pop, h, method, target, cache_root=cache_root) if pop.size else np.zeros((steps, 0))
        rates[label] = (counts.sum(axis=0) / steps).reshape(shape)
        occupancy[label] = ((counts > 0).sum(axis=0) / steps).reshape(shape)
        if progress:
            progress()
    return DtStudy(
        types=[n.name for n in second_order],
        levels=stimulus["f-I"][0],
        steps=steps,
        h_ref=h_ref,
        fi_rate={k: v[:, :n_levels] for k, v in rates.items()},
        fi_occupancy={k: v[:, :n_levels] for k, v in occupancy.items()},
        sine_rate={k: v[:, n_levels] for k, v in rates.items()},
        sine_occupancy={k: v[:, n_levels] for k, v in occupancy.items()},
    )
