"""Replay a :class:`~validation.population.Population` in Brian2.

The model strings come from :mod:`mdn_snntorch.equations` (``brian2_mdn_model``,
``brian2_first_order_model``); the current enters through a 2-D ``TimedArray``
(``I = current(t, i)``). One model time unit is one Brian2 second, ``dt = 1 * second``, so the
step length is exact. Brian2's schedule per step is state update -> threshold -> reset; a
``StateMonitor(when='after_resets')`` therefore records the same post-reset state as the
snnTorch traces (the default ``when='start'`` would record the state of the previous step).
"""

from __future__ import annotations

import numpy as np

from mdn_snntorch.equations import U0, V0, V_TH, brian2_first_order_model, brian2_mdn_model
from validation.population import Population
from validation.targets import use_target
from validation.traces import Traces


def _current_array(currents: np.ndarray):
    import brian2 as b2

    return b2.TimedArray(np.ascontiguousarray(currents, dtype=np.float64), dt=1 * b2.second)


def _mdn_group(pop: Population, h: float = 1.0, method: str | None = None):
    """The 2nd-order neurons of ``pop``; clock step ``h`` (the current still changes every 1 s)."""
    import brian2 as b2

    m = brian2_mdn_model()
    group = b2.NeuronGroup(
        pop.size,
        m["model"] + "\nI = current(t, i) : 1",
        threshold=m["threshold"],
        reset=m["reset"],
        method=method or m["method"],
        dt=h * b2.second,
        namespace={"current": _current_array(pop.currents)},
    )
    group.theta_a, group.theta_b, group.theta_c, group.theta_d = pop.theta.T
    group.v_th = V_TH
    group.v = V0
    group.u = U0
    return group


def _first_order_group(pop: Population):
    import brian2 as b2

    m = brian2_first_order_model()
    group = b2.NeuronGroup(
        pop.size,
        m["model"] + "\nI = current(t, i) : 1",
        threshold=m["threshold"],
        reset=m["reset"],
        dt=1 * b2.second,
        namespace={"current": _current_array(pop.currents)},
    )
    group.run_regularly(m["update"], when=m["when"])
    group.decay = pop.decay
    group.v_th = V_TH
    group.v_reset = 0.0
    group.v = 0.0
    return group


def simulate(
    pop: Population,
    target: str = "numpy",
    *,
    record_when: str = "after_resets",
    cache_root=None,
) -> Traces:
    """Run ``pop`` for ``pop.steps`` steps of ``dt = 1`` with the Brian2 ``target``
    (``numpy``, ``cython``, ``cython-strict``). Returns spikes and the state recorded at ``record_when``."""
    import brian2 as b2

    steps = pop.steps
    spikes = np.zeros((steps, pop.size), dtype=bool)
    v = np.full((steps, pop.size), np.nan)
    u = np.full((steps, pop.size), np.nan)
    with use_target(target, cache_root):
        parts = []
        for order, build, variables in ((2, _mdn_group, ("v", "u")), (1, _first_order_group, ("v",))):
            idx = pop.index(order)
            if len(idx):
                group = build(pop.select(idx))
                parts.append(
                    (
                        idx,
                        variables,
                        b2.StateMonitor(group, variables, record=True, when=record_when),
                        b2.SpikeMonitor(group),
                        group,
                    )
                )
        net = b2.Network(*[obj for part in parts for obj in part[2:]])
        net.run(steps * b2.second, namespace={})
    for idx, variables, state, spike_mon, _ in parts:
        step = np.rint(np.asarray(spike_mon.t / b2.second)).astype(int)
        spikes[step, idx[np.asarray(spike_mon.i)]] = True
        v[:, idx] = state.v[:].T
        if "u" in variables:
            u[:, idx] = state.u[:].T
    return Traces(spikes, v, u)


def spike_counts(pop: Population, h: float, method: str, target: str = "numpy", *, cache_root=None) -> np.ndarray:
    """Spikes per unit time step ``[T, N]`` of the 2nd-order population ``pop`` integrated with clock
    step ``h`` and Brian2's ``method`` (``'euler'``, ``'rk4'``); the current is held over each unit step."""
    import brian2 as b2

    if (pop.order != 2).any():
        raise ValueError("spike_counts integrates the 2nd-order ODE; the population holds 1st-order neurons")
    per_unit = round(1.0 / h)
    if not np.isclose(per_unit * h, 1.0):
        raise ValueError(f"the clock step h={h} must divide the unit step (1/h an integer)")
    with use_target(target, cache_root):
        group = _mdn_group(pop, h, method)
        monitor = b2.SpikeMonitor(group, record=True)
        b2.Network(group, monitor).run(pop.steps * b2.second, namespace={})
        step = np.asarray(monitor.t_[:] / h).round().astype(np.int64) // per_unit
        counts = np.zeros((pop.steps, pop.size), dtype=np.int64)
        np.add.at(counts, (step, np.asarray(monitor.i[:])), 1)
    return counts
