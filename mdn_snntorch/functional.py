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
into the reset itself (docs/model.md#surrogate-gradient-and-reset). ``detach_reset=False`` writes the
reset as ``V' (1 - S) + S theta_c`` and ``U' + S theta_d`` with the spike's surrogate gradient flowing
through it, as the paper authors' published code does: the same values, other gradients.
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
    current: Tensor, state: MDNState, theta: MDNParameters, threshold, dt: float, spike_fn: SpikeFn, detach_reset: bool = True
) -> tuple[Tensor, MDNState]:
    v, u = state
    v_next = v + dt * dv_dt(v, u, current)
    u_next = u + dt * du_dt(v, u, theta.theta_a, theta.theta_b)
    spikes = spike_fn(v_next - threshold)
    if not detach_reset:  # the reset as a product with the spike, its gradient included
        return spikes, MDNState(v_next * (1 - spikes) + spikes * theta.theta_c, u_next + theta.theta_d * spikes)
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
    detach_reset: bool = True,
) -> tuple[Tensor, MDNState]:
    """One network step of the 2nd-order neuron; ``current`` is I (already through the sigmoid).

    Returns ``(spikes, new_state)``; ``new_state`` is the post-reset state. ``detach_reset``: see the
    module docstring.
    """
    if substeps == 1:
        return _mdn_euler_step(current, state, theta, threshold, dt, spike_fn, detach_reset)
    sub_dt = dt / substeps
    spikes = None
    for _ in range(substeps):
        s, state = _mdn_euler_step(current, state, theta, threshold, sub_dt, spike_fn, detach_reset)
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
    detach_reset: bool = True,
) -> tuple[Tensor, Tensor]:
    """One step of the 1st-order neuron (paper Eq. 3): ``V' = g V + I``, fire on ``V' > V_th``,
    reset ``V' <- V_reset`` with the detached spike (``detach_reset=False``: ``V' (1 - S) + S V_reset``
    with the spike's gradient). Returns ``(spikes, new_v)``."""
    v_next = first_order_map(v, current, decay)
    spikes = spike_fn(v_next - threshold)
    if not detach_reset:
        return spikes, v_next * (1 - spikes) + spikes * reset
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
    detach_reset: bool = True,
) -> MDNTrace:
    """Reference loop of :func:`mdn_step` over the leading time axis of ``currents`` ``[T, ...]``."""
    spikes, vs, us = [], [], []
    for current in currents.unbind(0):
        s, state = mdn_step(
            current, state, theta, threshold=threshold, dt=dt, substeps=substeps, spike_fn=spike_fn, detach_reset=detach_reset
        )
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
    detach_reset: bool = True,
) -> FirstOrderTrace:
    """Reference loop of :func:`first_order_step` over the leading time axis of ``currents`` ``[T, ...]``."""
    spikes, vs = [], []
    for current in currents.unbind(0):
        s, v = first_order_step(
            current, v, decay=decay, threshold=threshold, reset=reset, spike_fn=spike_fn, detach_reset=detach_reset
        )
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


# ---------------------------------------------------------------------------------------------
# The fast single step: one autograd node per step with an explicit backward
# ---------------------------------------------------------------------------------------------
#: raised instead of PyTorch's "Trying to backward through the graph a second time" when the graph behind
#: a neuron's state was already freed: the state was carried over from a batch that was backpropagated
STALE_STATE_MESSAGE = (
    "an MDN-family neuron's state comes from a graph that was already backpropagated and freed: the state "
    "was carried over from an earlier batch. Call mdn.reset(net) before each batch (snntorch.utils.reset "
    "does not know these neurons), mdn.detach(net) between the chunks of truncated BPTT, or pass "
    "retain_graph=True to backward() if you really mean to backpropagate through the old graph again."
)


class StaleStateError(RuntimeError):
    """The backward pass reached a neuron state whose graph was already freed (see :data:`STALE_STATE_MESSAGE`)."""


def saved_or_stale(ctx) -> tuple[Tensor, ...]:
    """``ctx.saved_tensors``, or :class:`StaleStateError` where autograd already freed them."""
    try:
        return ctx.saved_tensors
    except RuntimeError as error:
        if "second time" not in str(error) and "freed" not in str(error):
            raise
        raise StaleStateError(STALE_STATE_MESSAGE) from error


def _reduce(grad: Tensor | None, like: Tensor) -> Tensor | None:
    """``grad`` summed down to ``like``'s (broadcast) shape and cast to its dtype."""
    if grad is None:
        return None
    if grad.shape != like.shape:
        grad = grad.sum_to_size(like.shape)
    return grad.to(like.dtype)


# The fast steps use float arithmetic only: on CPUs, kernels that read or write bool tensors (comparisons,
# torch.where, bool -> float casts) take a slow mixed-dtype path, 5-30x slower than a float multiply.
def _indicator(x: Tensor, eager: bool) -> Tensor:
    """1.0 where ``x > 0``, else 0.0 (NaN too), in ``x``'s dtype."""
    return torch.gt(x, 0, out=torch.empty_like(x)) if eager else (x > 0).to(x.dtype)


def _select(fired: Tensor, value: Tensor, other: Tensor, bound: Tensor, eager: bool) -> tuple[Tensor, Tensor]:
    """``(torch.where(fired > 0, value, other), 1 - fired)`` for a 0/1 ``fired`` that is 1 exactly where
    ``other > bound``, in float arithmetic: ``min(other, bound) (1 - fired) + value fired``. Exact for every
    ``other`` (also infinite or NaN: the minimum keeps a fired +inf from becoming inf * 0), up to the sign of a zero."""
    keep = torch.rsub(fired, 1)
    if not eager:
        return torch.where(fired > 0, value, other), keep
    return torch.minimum(other, bound).mul_(keep).addcmul_(value, fired), keep


def _window(grad: Tensor, margin: Tensor, width: float) -> Tensor:
    """``grad`` where ``|margin| < width``, else 0: the window surrogate's backward (paper Eq. 6), one kernel."""
    return torch.ops.aten.hardtanh_backward(grad, margin, -width, width)


def _euler(v, u, current, a, b, c, d, th, dt: float, eager: bool):
    """One Euler (sub-)step and its reset, the operations of :func:`_mdn_euler_step` in its order (in-place on
    temporaries; multiplying by ``dt = 1`` is exact and skipped): ``(v_new, u_new, V' - V_th, spike 0/1)``."""
    vp = v * v
    vp -= v
    vp -= u
    vp += current
    if dt != 1.0:
        vp *= dt
    vp += v  # v + dt * dv_dt: addition commutes exactly
    up = b * v
    up -= u
    up.mul_(a)  # a * (b v - u): multiplication commutes exactly
    if dt != 1.0:
        up *= dt
    up += u
    margin = vp - th
    fired = _indicator(margin, eager)
    v_new, keep = _select(fired, c, vp, th, eager)
    u_new = up.addcmul_(d, fired)  # u' + d * s: d * s is exact (s in {0, 1}), one rounding
    return v_new, u_new, margin, fired, keep


class MDNStep(torch.autograd.Function):
    """:func:`mdn_step` with the window surrogate, the input sigmoid and the graded-spikes factor as one node."""

    @staticmethod
    def forward(ctx, x, v, u, a, b, c, d, th, scale, dt, substeps, width, sigmoid):
        current = torch.sigmoid(x) if sigmoid else x
        h = dt / substeps
        v0, u0, fired_any = v, u, None
        eager = not torch.compiler.is_compiling()
        for _ in range(substeps):
            v, u, margin, fired, keep = _euler(v, u, current, a, b, c, d, th, h, eager)
            fired_any = fired if fired_any is None else torch.maximum(fired_any, fired)
        spikes = fired_any if scale is None else fired_any * scale
        ctx.config = (h, substeps, width, sigmoid)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None (no zero tensors)
        # save what the backward needs: with sub-steps it recomputes them from the state and the current
        need = ctx.needs_input_grad
        one = substeps == 1
        ctx.save_for_backward(
            v0 if not one or any(need[1:5]) else None,
            u0 if not one or need[3] else None,
            current if not one or sigmoid else None,
            a,
            b,
            c,
            d,
            th,
            scale,
            margin if one else None,
            keep if one else None,
        )
        return spikes, v, u

    @staticmethod
    def backward(ctx, g_spk, g_v, g_u):
        v0, u0, current, a, b, c, d, th, scale, margin, keep = saved_or_stale(ctx)
        h, substeps, width, sigmoid = ctx.config
        need = ctx.needs_input_grad
        if substeps == 1:
            subs = [(v0, u0, margin, keep)]
        else:
            subs, v, u = [], v0, u0
            eager = not torch.compiler.is_compiling()
            for _ in range(substeps):
                v_next, u_next, m, _, k = _euler(v, u, current, a, b, c, d, th, h, eager)
                subs.append((v, u, m, k))
                v, u = v_next, u_next
        g_scale = g_step = None
        if g_spk is not None:
            if scale is not None and need[8]:
                keep_all = subs[0][3]
                for sub in subs[1:]:
                    keep_all = keep_all * sub[3]
                g_scale = _reduce(g_spk * torch.rsub(keep_all, 1), scale)
            g_step = g_spk if scale is None else g_spk * scale
        g_a = g_b = g_c = g_d = g_th = g_current = None
        for k in reversed(range(substeps)):
            v, u, m, keep = subs[k]
            g_sh = None
            if g_step is not None:  # the OR passes the step's spike gradient to a sub-step iff no other sub-step fired
                g_sub = g_step
                for j, sub in enumerate(subs):
                    if j != k:
                        g_sub = g_sub * sub[3]
                g_sh = _window(g_sub, m, width)
                if need[7]:
                    g_th = _acc(g_th, -g_sh)
            # through the reset: V <- theta_c and U <- U' + theta_d where the (detached) spike is 1
            if g_v is None:
                g_vp = g_sh if g_sh is not None else torch.zeros_like(v)
            else:
                if need[5]:
                    g_c = _acc(g_c, g_v * torch.rsub(keep, 1))
                g_vp = g_v * keep if g_sh is None else g_sh.addcmul_(g_v, keep)  # g_sh: this backward's own tensor
            if g_u is not None:
                if need[6]:
                    g_d = _acc(g_d, g_u * torch.rsub(keep, 1))
                if need[3]:
                    g_a = _acc(g_a, g_u * ((b * v - u) if h == 1.0 else h * (b * v - u)))
                if need[4]:
                    g_b = _acc(g_b, g_u * ((a * v) if h == 1.0 else h * (a * v)))
            g_in = g_vp if h == 1.0 else g_vp * h
            g_current = g_in if g_current is None else g_current + g_in
            if k == 0 and not (need[1] or need[2]):
                break
            # through the Euler step to the pre-step state: dV'/dV = 1 + h (2V - 1), dV'/dU = -h,
            # dU'/dV = h a b, dU'/dU = 1 - h a
            if h == 1.0:
                g_v_prev = g_vp * (v * 2) if g_u is None else (g_u * (a * b)).addcmul_(v, g_vp, value=2)
                g_u_prev = -g_vp if g_u is None else g_vp.neg().addcmul_(g_u, 1 - a)
            else:
                g_v_prev = g_vp * (1 + h * (2 * v - 1))
                if g_u is not None:
                    g_v_prev += g_u * (h * (a * b))
                g_u_prev = -g_in if g_u is None else torch.addcmul(-g_in, g_u, 1 - h * a)
            g_v, g_u = g_v_prev, g_u_prev
        g_x = torch.ops.aten.sigmoid_backward(g_current, current) if sigmoid else g_current
        return (
            g_x,
            g_v if need[1] else None,
            g_u if need[2] else None,
            _reduce(g_a, a),
            _reduce(g_b, b),
            _reduce(g_c, c),
            _reduce(g_d, d),
            _reduce(g_th, th),
            g_scale,
            None,
            None,
            None,
            None,
        )


def _acc(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


def _as_param(value, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _scale_or_none(graded_spikes_factor, like: Tensor) -> Tensor | None:
    """The graded-spikes factor as a tensor, or ``None`` for a plain python 1 (no multiplication)."""
    if not torch.is_tensor(graded_spikes_factor) and float(graded_spikes_factor) == 1.0:
        return None
    return _as_param(graded_spikes_factor, like)


def fused_mdn_step(
    inputs: Tensor,
    state: MDNState,
    theta: MDNParameters,
    *,
    threshold: Tensor | float = V_TH,
    dt: float = 1.0,
    substeps: int = 1,
    width: float = 0.5,
    graded_spikes_factor: Tensor | float = 1.0,
    input_sigmoid: bool = False,
) -> tuple[Tensor, MDNState]:
    """:func:`mdn_step` with ``spike_fn=window(width)`` as one autograd node with an explicit backward.

    ``I = sigmoid(inputs)`` when ``input_sigmoid`` (else ``inputs``); the spikes are multiplied by
    ``graded_spikes_factor``. Theta, the threshold and the factor are floats or tensors that broadcast
    against ``inputs`` (their gradients come back in their own shapes). The forward performs the
    reference's float operations in its order (bitwise the same spikes and state); the backward is the
    adjoint of :func:`mdn_snntorch.fused.torch_loop._mdn_adjoint`'s equations, equal to autograd's to rounding.
    The node saves the old state, the current and the margin ``V' - V_th`` (what the backward needs).
    """
    a, b, c, d = (_as_param(p, inputs) for p in theta)
    v, u = (s if s.shape == inputs.shape else s.expand_as(inputs) for s in state)
    scale = _scale_or_none(graded_spikes_factor, inputs)
    th = _as_param(threshold, inputs)
    spikes, v, u = MDNStep.apply(inputs, v, u, a, b, c, d, th, scale, float(dt), int(substeps), float(width), bool(input_sigmoid))
    return spikes, MDNState(v, u)


class FirstOrderStep(torch.autograd.Function):
    """:func:`first_order_step` with the window surrogate, the input sigmoid and the graded-spikes factor as one node."""

    @staticmethod
    def forward(ctx, x, v, decay, th, reset, scale, width, sigmoid):
        current = torch.sigmoid(x) if sigmoid else x
        vp = decay * v
        vp += current  # first_order_map: decay * v + current
        margin = vp - th
        eager = not torch.compiler.is_compiling()
        fired = _indicator(margin, eager)
        v_new, keep = _select(fired, reset, vp, th, eager)
        spikes = fired if scale is None else fired * scale
        ctx.config = (width, sigmoid)
        ctx.set_materialize_grads(False)
        need = ctx.needs_input_grad
        ctx.save_for_backward(v if need[2] else None, current if sigmoid else None, decay, th, reset, scale, margin, keep)
        return spikes, v_new

    @staticmethod
    def backward(ctx, g_spk, g_v):
        v, current, decay, th, reset, scale, margin, keep = saved_or_stale(ctx)
        width, sigmoid = ctx.config
        need = ctx.needs_input_grad
        g_scale = g_th = g_reset = g_sh = None
        if g_spk is not None:
            if scale is not None and need[5]:
                g_scale = _reduce(g_spk * torch.rsub(keep, 1), scale)
            g_sh = _window(g_spk if scale is None else g_spk * scale, margin, width)
            if need[3]:
                g_th = _reduce(-g_sh, th)
        if g_v is None:
            g_vp = g_sh if g_sh is not None else torch.zeros_like(v)
        else:
            if need[4]:
                g_reset = _reduce(g_v * torch.rsub(keep, 1), reset)
            g_vp = g_v * keep if g_sh is None else g_sh.addcmul_(g_v, keep)  # g_sh: this backward's own tensor
        g_decay = _reduce(g_vp * v, decay) if need[2] else None
        g_x = torch.ops.aten.sigmoid_backward(g_vp, current) if sigmoid else g_vp
        return g_x, (g_vp * decay) if need[1] else None, g_decay, g_th, g_reset, g_scale, None, None


def fused_first_order_step(
    inputs: Tensor,
    v: Tensor,
    *,
    decay: Tensor | float = 0.8,
    threshold: Tensor | float = V_TH,
    reset: Tensor | float = 0.0,
    width: float = 0.5,
    graded_spikes_factor: Tensor | float = 1.0,
    input_sigmoid: bool = False,
) -> tuple[Tensor, Tensor]:
    """:func:`first_order_step` with ``spike_fn=window(width)`` as one autograd node (see :func:`fused_mdn_step`).
    Returns ``(spikes * graded_spikes_factor, new_v)``."""
    return FirstOrderStep.apply(
        inputs,
        v if v.shape == inputs.shape else v.expand_as(inputs),
        _as_param(decay, inputs),
        _as_param(threshold, inputs),
        _as_param(reset, inputs),
        _scale_or_none(graded_spikes_factor, inputs),
        float(width),
        bool(input_sigmoid),
    )
