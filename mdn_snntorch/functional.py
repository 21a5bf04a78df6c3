r"""Pure step functions of the MDN and the 1st-order neuron (docs/model.md#discretisation).

One network step of length ``dt`` of the 2nd-order neuron, forward Euler,
in Brian2's order (state update -> threshold -> reset)::

    V' = V + dt (V^2 - V - U + I)            # both from the OLD V, U
    U' = U + dt theta_a (theta_b V - U)
    S  = H(V' - V_th)                        # strict: V' > V_th
    V' <- theta_c,  U' <- U' + theta_d       where S = 1

With ``substeps = n`` the step runs ``n`` Euler sub-steps of ``dt / n`` with ``I`` held,
resetting at every sub-step that fires; the step's spike is 1 if any sub-step fired
(a differentiable OR, ``s <- s + s_k - s s_k``).

The state is reset with the *detached* spike (as snnTorch does), so gradients reach
``theta_c`` and ``theta_d`` through the reset while no gradient flows through the spike
into the reset itself (docs/model.md#surrogate-gradient-and-reset).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from mdn_snntorch.equations import U0, V0, V_TH, du_dt, dv_dt, first_order_map
from mdn_snntorch.surrogate import window

Tensor = torch.Tensor
SpikeFn = Callable[[Tensor], Tensor]

_DEFAULT_SPIKE_FN = window()


class MDNState(NamedTuple):
    """State of a 2nd-order neuron: membrane potential ``v`` and recovery variable ``u``."""

    v: Tensor
    u: Tensor


class MDNParameters(NamedTuple):
    """Dynamic parameters theta = (a, b, c, d) of paper Eq. 2; floats or per-neuron tensors."""

    theta_a: Tensor | float
    theta_b: Tensor | float
    theta_c: Tensor | float
    theta_d: Tensor | float


def initial_state(like: Tensor, v0: float = V0, u0: float = U0) -> MDNState:
    """V = v0, U = u0 with the shape, dtype and device of ``like``."""
    return MDNState(torch.full_like(like, v0), torch.full_like(like, u0))


def _mdn_euler_step(
    current: Tensor, state: MDNState, theta: MDNParameters, threshold, dt: float, spike_fn: SpikeFn
) -> tuple[Tensor, MDNState]:
    v, u = state
    v_next = v + dt * dv_dt(v, u, current)
    u_next = u + dt * du_dt(v, u, theta.theta_a, theta.theta_b)
    spikes = spike_fn(v_next - threshold)
    fired = spikes.detach()
    theta_c = torch.as_tensor(theta.theta_c, dtype=v_next.dtype, device=v_next.device)
    v_next = torch.where(fired > 0, theta_c, v_next)
    u_next = u_next + theta.theta_d * fired
    return spikes, MDNState(v_next, u_next)


def mdn_step(
    current: Tensor,
    state: MDNState,
    theta: MDNParameters,
    *,
    threshold: Tensor | float = V_TH,
    dt: float = 1.0,
    substeps: int = 1,
    spike_fn: SpikeFn = _DEFAULT_SPIKE_FN,
) -> tuple[Tensor, MDNState]:
    """One network step of the 2nd-order neuron; ``current`` is I (already through the sigmoid).

    Returns ``(spikes, new_state)``; ``new_state`` is the post-reset state.
    """
    if substeps == 1:
        return _mdn_euler_step(current, state, theta, threshold, dt, spike_fn)
    sub_dt = dt / substeps
    spikes = None
    for _ in range(substeps):
        s, state = _mdn_euler_step(current, state, theta, threshold, sub_dt, spike_fn)
        spikes = s if spikes is None else spikes + s - spikes * s
    return spikes, state


def first_order_step(
    current: Tensor,
    v: Tensor,
    *,
    decay: Tensor | float = 0.8,
    threshold: Tensor | float = V_TH,
    reset: Tensor | float = 0.0,
    spike_fn: SpikeFn = _DEFAULT_SPIKE_FN,
) -> tuple[Tensor, Tensor]:
    """One step of the 1st-order neuron (paper Eq. 3): ``V' = g V + I``, fire on ``V' > V_th``,
    reset ``V' <- V_reset`` with the detached spike. Returns ``(spikes, new_v)``."""
    v_next = first_order_map(v, current, decay)
    spikes = spike_fn(v_next - threshold)
    reset_value = torch.as_tensor(reset, dtype=v_next.dtype, device=v_next.device)
    return spikes, torch.where(spikes.detach() > 0, reset_value, v_next)


class MDNTrace(NamedTuple):
    """Result of a multi-step run: spikes and, when asked for, post-reset state traces, each ``[T, ...]``."""

    spikes: Tensor
    state: MDNState
    u: Tensor | None = None
    v: Tensor | None = None


def mdn_multistep(
    currents: Tensor,
    state: MDNState,
    theta: MDNParameters,
    *,
    threshold: Tensor | float = V_TH,
    dt: float = 1.0,
    substeps: int = 1,
    spike_fn: SpikeFn = _DEFAULT_SPIKE_FN,
    return_traces: bool = False,
) -> MDNTrace:
    """Reference loop of :func:`mdn_step` over the leading time axis of ``currents`` ``[T, ...]``."""
    spikes, vs, us = [], [], []
    for current in currents.unbind(0):
        s, state = mdn_step(current, state, theta, threshold=threshold, dt=dt, substeps=substeps, spike_fn=spike_fn)
        spikes.append(s)
        if return_traces:
            vs.append(state.v)
            us.append(state.u)
    if return_traces:
        return MDNTrace(torch.stack(spikes), state, torch.stack(us), torch.stack(vs))
    return MDNTrace(torch.stack(spikes), state)


class FirstOrderTrace(NamedTuple):
    """Spikes ``[T, ...]``, the final membrane potential and, when asked for, its post-reset trace."""

    spikes: Tensor
    state: Tensor
    v: Tensor | None = None


def first_order_multistep(
    currents: Tensor,
    v: Tensor,
    *,
    decay: Tensor | float = 0.8,
    threshold: Tensor | float = V_TH,
    reset: Tensor | float = 0.0,
    spike_fn: SpikeFn = _DEFAULT_SPIKE_FN,
    return_traces: bool = False,
) -> FirstOrderTrace:
    """Reference loop of :func:`first_order_step` over the leading time axis of ``currents`` ``[T, ...]``."""
    spikes, vs = [], []
    for current in currents.unbind(0):
        s, v = first_order_step(current, v, decay=decay, threshold=threshold, reset=reset, spike_fn=spike_fn)
        spikes.append(s)
        if return_traces:
            vs.append(v)
    return FirstOrderTrace(torch.stack(spikes), v, torch.stack(vs) if return_traces else None)


def attractor(u: Tensor | float, current: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    r"""Fixed points of the V equation for frozen U and I (paper §3.2).

    :math:`\epsilon = U - I + 1/4`; stable point :math:`1/2 - \sqrt\epsilon`, unstable point
    :math:`1/2 + \sqrt\epsilon`; both NaN where :math:`\epsilon < 0` (no real attractor: V runs to +inf).
    Returns ``(eps, v_stable, v_unstable)``.
    """
    u = torch.as_tensor(u)
    eps = u - current + 0.25
    root = torch.sqrt(eps)  # NaN where eps < 0
    return eps, 0.5 - root, 0.5 + root
