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

:class:`MDNStep` and :class:`FirstOrderStep` are the same steps as one autograd node each, with the adjoint
written out in named pieces (the reset, the surrogate, the ``U`` and the ``V`` updates); the fused op's
kernels repeat them in C, Triton and a PyTorch loop. Where every copy lives and the test that keeps it equal
to this module: docs/performance.md#the-copies-of-the-step.
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
    """Reference loop of :func:`mdn_step` over the leading time axis of ``currents`` ``[T, ...]``. With ``T = 0``
    the spikes and traces are empty and the state is returned as given."""
    if currents.shape[0] == 0:
        empty = currents.new_zeros(currents.shape)
        return MDNTrace(empty, state, empty, empty) if return_traces else MDNTrace(empty, state)
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
    """Reference loop of :func:`first_order_step` over the leading time axis of ``currents`` ``[T, ...]`` (``T = 0``:
    as :func:`mdn_multistep`)."""
    if currents.shape[0] == 0:
        empty = currents.new_zeros(currents.shape)
        return FirstOrderTrace(empty, v, empty if return_traces else None)
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


def _reduce(grad: Tensor | None, like: Tensor | None) -> Tensor | None:
    """``grad`` summed down to ``like``'s (broadcast) shape and cast to its dtype."""
    if grad is None or like is None:
        return None
    if grad.shape != like.shape:
        grad = grad.sum_to_size(like.shape)
    return grad.to(like.dtype)


def _acc(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


# The fast steps use float arithmetic only: on CPUs, kernels that read or write bool tensors (comparisons,
# torch.where, bool -> float casts) take a slow mixed-dtype path, 5-30x slower than a float multiply.
def _indicator(x: Tensor, eager: bool) -> Tensor:
    """1.0 where ``x > 0``, else 0.0 (NaN too), in ``x``'s dtype."""
    return torch.gt(x, 0, out=torch.empty_like(x)) if eager else (x > 0).to(x.dtype)


def _reset(fired: Tensor, value: Tensor, other: Tensor, bound: Tensor, eager: bool, detach_reset: bool) -> tuple[Tensor, Tensor]:
    """The reset ``V <- value where fired`` of a 0/1 ``fired`` that is 1 exactly where ``other > bound``, in float
    arithmetic, and ``keep = 1 - fired``. Detached: ``torch.where(fired > 0, value, other)``, computed as
    ``min(other, bound) keep + value fired``, exact for every ``other`` (also infinite or NaN: the minimum keeps a
    fired +inf from becoming inf * 0), up to the sign of a zero. Undetached: ``other keep + value fired``, the
    reference's own formula (a fired +inf gives NaN there too)."""
    keep = torch.rsub(fired, 1)
    if not eager:
        return (torch.where(fired > 0, value, other) if detach_reset else other * keep + value * fired), keep
    kept = torch.minimum(other, bound).mul_(keep) if detach_reset else other * keep
    return kept.addcmul_(value, fired), keep


# ---- the pieces of the step's adjoint, named as in the C and Triton kernels (docs/performance.md#the-copies-of-the-step)
def _surrogate_adjoint(grad: Tensor, margin: Tensor, width: float) -> Tensor:
    """``grad`` where ``|margin| < width``, else 0: the window surrogate's backward (paper Eq. 6), one kernel
    (the C kernels' ``in_window`` select)."""
    return torch.ops.aten.hardtanh_backward(grad, margin, -width, width)


def _reset_adjoint(g_v: Tensor | None, g_sh: Tensor | None, keep: Tensor) -> Tensor | None:
    """The reset ``V <- theta_c where S`` seen from ``V'``: ``g_V' = g_V (1 - S) + g_sh`` (``g_sh``, the spike's
    gradient through the surrogate, is this backward's own tensor and is updated in place); ``None`` if both are."""
    if g_v is None:
        return g_sh
    return g_v * keep if g_sh is None else g_sh.addcmul_(g_v, keep)


def _reset_spike_adjoint(g_v: Tensor | None, g_u: Tensor | None, vp: Tensor, c: Tensor, d: Tensor) -> Tensor | None:
    """The undetached reset ``V' (1 - S) + S theta_c``, ``U' + S theta_d`` seen from the spike ``S``:
    ``g_S = g_V (theta_c - V') + g_U theta_d`` (``None`` without state gradients)."""
    g = None if g_v is None else g_v * (c - vp)
    if g_u is not None:
        g = g_u * d if g is None else g.addcmul_(g_u, d)
    return g


def _u_update_adjoint(g_u: Tensor, v: Tensor, u: Tensor, a: Tensor, b: Tensor, h: float, want_a: bool, want_b: bool,
                      propagate: bool):  # fmt: skip
    """``U' = U + h a (b V - U)`` backwards from ``g_U'``: the terms ``g_U' h (b V - U)`` of theta_a,
    ``g_U' h a V`` of theta_b, ``g_U' h a b`` of ``V`` and ``g_U' (1 - h a)`` of ``U``, each ``None`` where not
    wanted (multiplying by ``h = 1`` is skipped)."""
    one = h == 1.0
    g_a = (g_u * (b * v - u) if one else g_u * (h * (b * v - u))) if want_a else None
    g_b = (g_u * (a * v) if one else g_u * (h * (a * v))) if want_b else None
    if not propagate:
        return g_a, g_b, None, None
    if one:
        return g_a, g_b, g_u * (a * b), g_u * (1 - a)
    return g_a, g_b, g_u * (h * (a * b)), g_u * (1 - h * a)


def _v_update_adjoint(g_vp: Tensor, g_in: Tensor, v: Tensor, h: float, to_v: Tensor | None, to_u: Tensor | None):
    """``V' = V + h (V^2 - V - U + I)`` backwards from ``g_V'`` (``g_in = h g_V'``, the current's share), added to
    the ``U`` update's terms ``to_v``, ``to_u`` (in place): ``(g_V, g_U)`` with ``dV'/dV = 1 + h (2V - 1)``,
    ``dV'/dU = -h``."""
    if h == 1.0:  # 1 + (2V - 1) = 2V
        g_v = g_vp * (v * 2) if to_v is None else to_v.addcmul_(v, g_vp, value=2)
    else:
        g_v = g_vp * (1 + h * (2 * v - 1)) if to_v is None else to_v.addcmul_(g_vp, 1 + h * (2 * v - 1))
    g_u = g_in.neg() if to_u is None else to_u.sub_(g_in)
    return g_v, g_u


# ---- the 2nd-order step as one autograd node
class _Substep(NamedTuple):
    """What the adjoint of one Euler (sub-)step reads: the state before it, ``V' - V_th`` and ``1 - S``."""

    v: Tensor
    u: Tensor
    margin: Tensor
    keep: Tensor


def _mdn_euler(v, u, current, a, b, c, d, th, dt: float, eager: bool, detach_reset: bool):
    """One Euler (sub-)step and its reset, the operations of :func:`_mdn_euler_step` in its order (in-place on
    temporaries; multiplying by ``dt = 1`` is exact and skipped): ``(v_new, u_new, spike 0/1, _Substep)``."""
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
    v_new, keep = _reset(fired, c, vp, th, eager, detach_reset)
    u_new = up.addcmul_(d, fired)  # u' + d * s: d * s is exact (s in {0, 1}), one rounding
    return v_new, u_new, fired, _Substep(v, u, margin, keep)


class MDNArgs(NamedTuple):
    """:class:`MDNStep`'s arguments by name (``MDNArgs(*ctx.needs_input_grad)`` says which need a gradient)."""

    x: object
    v: object
    u: object
    a: object
    b: object
    c: object
    d: object
    th: object
    scale: object
    dt: object
    substeps: object
    width: object
    sigmoid: object
    detach_reset: object


class MDNSaved(NamedTuple):
    """What :class:`MDNStep` saves for its backward (``None`` where no requested gradient needs it): the state
    before the step, the current ``I``, the parameters, and for one sub-step its ``V' - V_th`` and ``1 - S``
    (with sub-steps these are recomputed from the state and the current)."""

    v: Tensor | None
    u: Tensor | None
    current: Tensor | None
    a: Tensor
    b: Tensor
    c: Tensor
    d: Tensor
    th: Tensor
    scale: Tensor | None
    margin: Tensor | None
    keep: Tensor | None


class _Grads:
    """The parameter and current gradients summed over a step's sub-steps."""

    __slots__ = ("a", "b", "c", "d", "th", "current")

    def __init__(self):
        self.a = self.b = self.c = self.d = self.th = self.current = None


class MDNStep(torch.autograd.Function):
    """:func:`mdn_step` with the window surrogate, the input sigmoid and the graded-spikes factor as one node
    (arguments: :class:`MDNArgs`; saved: :class:`MDNSaved`)."""

    @staticmethod
    def forward(ctx, x, v, u, a, b, c, d, th, scale, dt, substeps, width, sigmoid, detach_reset):
        current = torch.sigmoid(x) if sigmoid else x
        h = dt / substeps
        v0, u0, fired_any = v, u, None
        eager = not torch.compiler.is_compiling()
        for _ in range(substeps):
            v, u, fired, sub = _mdn_euler(v, u, current, a, b, c, d, th, h, eager, detach_reset)
            fired_any = fired if fired_any is None else torch.maximum(fired_any, fired)
        spikes = fired_any if scale is None else fired_any * scale
        ctx.config = (h, substeps, width, sigmoid, detach_reset)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None (no zero tensors)
        need, one = MDNArgs(*ctx.needs_input_grad), substeps == 1
        saved = MDNSaved(
            v=v0 if not one or need.v or need.u or need.a or need.b else None,
            u=u0 if not one or need.a else None,
            current=current if not one or sigmoid else None,
            a=a,
            b=b,
            c=c,
            d=d,
            th=th,
            scale=scale,
            margin=sub.margin if one else None,
            keep=sub.keep if one else None,
        )
        ctx.save_for_backward(*saved)
        return spikes, v, u

    @staticmethod
    def backward(ctx, g_spk, g_v, g_u):
        p = MDNSaved(*saved_or_stale(ctx))
        h, substeps, width, sigmoid, detach_reset = ctx.config
        need = MDNArgs(*ctx.needs_input_grad)
        subs = _recorded_substeps(p, h, substeps, detach_reset)
        g_step = g_scale = None
        if g_spk is not None:  # spikes = scale * (OR of the sub-steps' spikes)
            if p.scale is not None and need.scale:
                g_scale = _reduce(g_spk * torch.rsub(_product(s.keep for s in subs), 1), p.scale)
            g_step = g_spk if p.scale is None else g_spk * p.scale
        grads = _Grads()
        for k in reversed(range(substeps)):
            g_out = g_step if g_step is None or substeps == 1 else g_step * _product(s.keep for j, s in enumerate(subs) if j != k)
            propagate = k > 0 or need.v or need.u
            g_v, g_u = _mdn_adjoint(g_v, g_u, g_out, subs[k], p, h, width, detach_reset, need, grads, propagate)
        g_x = torch.ops.aten.sigmoid_backward(grads.current, p.current) if sigmoid else grads.current
        thetas = (_reduce(grads.a, p.a), _reduce(grads.b, p.b), _reduce(grads.c, p.c), _reduce(grads.d, p.d))
        return (g_x, g_v if need.v else None, g_u if need.u else None, *thetas, _reduce(grads.th, p.th), g_scale, *[None] * 5)


def _product(factors) -> Tensor:
    it = iter(factors)
    out = next(it)
    for f in it:
        out = out * f
    return out


def _recorded_substeps(p: MDNSaved, h: float, substeps: int, detach_reset: bool) -> list[_Substep]:
    """The step's sub-steps as the backward reads them: saved for one, recomputed (bitwise) for several."""
    if substeps == 1:
        return [_Substep(p.v, p.u, p.margin, p.keep)]
    subs, v, u = [], p.v, p.u
    eager = not torch.compiler.is_compiling()
    for _ in range(substeps):
        v, u, _, sub = _mdn_euler(v, u, p.current, p.a, p.b, p.c, p.d, p.th, h, eager, detach_reset)
        subs.append(sub)
    return subs


def _mdn_adjoint(g_v, g_u, g_out, sub: _Substep, p: MDNSaved, h: float, width: float, detach_reset: bool, need: MDNArgs,
                 grads: _Grads, propagate: bool):  # fmt: skip
    """The adjoint of one :func:`_mdn_euler` sub-step (the kernels' ``mdn_adjoint``): from the gradients of its
    post-reset state ``g_v, g_u`` and of its spike as the step's output sees it (``g_out``) to those of its
    pre-step state (``(None, None)`` unless ``propagate``); the parameters' and the current's terms go into
    ``grads``. The reset, the surrogate, the ``U`` update and the ``V`` update, backwards."""
    if not detach_reset:  # the spike also reset the state
        g_reset = _reset_spike_adjoint(g_v, g_u, sub.margin + p.th, p.c, p.d)
        g_out = g_reset if g_out is None else g_out if g_reset is None else g_reset.add_(g_out)
    g_sh = None if g_out is None else _surrogate_adjoint(g_out, sub.margin, width)
    if g_sh is not None and need.th:
        grads.th = _acc(grads.th, -g_sh)
    if g_v is not None and need.c:
        grads.c = _acc(grads.c, g_v * torch.rsub(sub.keep, 1))
    if g_u is not None and need.d:
        grads.d = _acc(grads.d, g_u * torch.rsub(sub.keep, 1))
    g_vp = _reset_adjoint(g_v, g_sh, sub.keep)  # g_U' = g_U: the reset adds theta_d S to U'
    if g_vp is None:
        g_vp = torch.zeros_like(sub.margin)
    g_in = g_vp if h == 1.0 else g_vp * h
    grads.current = _acc(grads.current, g_in)
    to_v = to_u = None
    if g_u is not None:
        g_a, g_b, to_v, to_u = _u_update_adjoint(g_u, sub.v, sub.u, p.a, p.b, h, need.a, need.b, propagate)
        if g_a is not None:
            grads.a = _acc(grads.a, g_a)
        if g_b is not None:
            grads.b = _acc(grads.b, g_b)
    if not propagate:
        return None, None
    return _v_update_adjoint(g_vp, g_in, sub.v, h, to_v, to_u)


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
    detach_reset: bool = True,
) -> tuple[Tensor, MDNState]:
    """:func:`mdn_step` with ``spike_fn=window(width)`` as one autograd node with an explicit backward.

    ``I = sigmoid(inputs)`` when ``input_sigmoid`` (else ``inputs``); the spikes are multiplied by
    ``graded_spikes_factor``. Theta, the threshold and the factor are floats or tensors that broadcast
    against ``inputs`` (their gradients come back in their own shapes). The forward performs the
    reference's float operations in its order (bitwise the same spikes and state, with either reset); the
    backward is the adjoint of the reset, the surrogate, the ``U`` and the ``V`` updates (the kernels' own
    pieces, docs/performance.md#the-copies-of-the-step), equal to autograd's through the reference to rounding.
    The node saves the old state, the current and the margin ``V' - V_th`` (what the backward needs).
    """
    a, b, c, d = (_as_param(p, inputs) for p in theta)
    v, u = (s if s.shape == inputs.shape else s.expand_as(inputs) for s in state)
    scale = _scale_or_none(graded_spikes_factor, inputs)
    th = _as_param(threshold, inputs)
    spikes, v, u = MDNStep.apply(
        inputs, v, u, a, b, c, d, th, scale, float(dt), int(substeps), float(width), bool(input_sigmoid), bool(detach_reset)
    )
    return spikes, MDNState(v, u)


# ---- the 1st-order step as one autograd node
class FirstOrderArgs(NamedTuple):
    """:class:`FirstOrderStep`'s arguments by name (as :class:`MDNArgs`)."""

    x: object
    v: object
    decay: object
    th: object
    reset: object
    scale: object
    width: object
    sigmoid: object
    detach_reset: object


class FirstOrderSaved(NamedTuple):
    """What :class:`FirstOrderStep` saves: the membrane before the step (for the decay's gradient), the current
    (for the sigmoid's derivative), the parameters, ``V' - V_th`` and ``1 - S``."""

    v: Tensor | None
    current: Tensor | None
    decay: Tensor
    th: Tensor
    reset: Tensor
    scale: Tensor | None
    margin: Tensor
    keep: Tensor


class FirstOrderStep(torch.autograd.Function):
    """:func:`first_order_step` with the window surrogate, the input sigmoid and the graded-spikes factor as one
    node (arguments: :class:`FirstOrderArgs`; saved: :class:`FirstOrderSaved`)."""

    @staticmethod
    def forward(ctx, x, v, decay, th, reset, scale, width, sigmoid, detach_reset):
        current = torch.sigmoid(x) if sigmoid else x
        vp = decay * v
        vp += current  # first_order_map: decay * v + current
        margin = vp - th
        eager = not torch.compiler.is_compiling()
        fired = _indicator(margin, eager)
        v_new, keep = _reset(fired, reset, vp, th, eager, detach_reset)
        spikes = fired if scale is None else fired * scale
        ctx.config = (width, sigmoid, detach_reset)
        ctx.set_materialize_grads(False)
        need = FirstOrderArgs(*ctx.needs_input_grad)
        saved = FirstOrderSaved(v if need.decay else None, current if sigmoid else None, decay, th, reset, scale, margin, keep)
        ctx.save_for_backward(*saved)
        return spikes, v_new

    @staticmethod
    def backward(ctx, g_spk, g_v):
        p = FirstOrderSaved(*saved_or_stale(ctx))
        width, sigmoid, detach_reset = ctx.config
        need = FirstOrderArgs(*ctx.needs_input_grad)
        g_scale = g_th = g_reset = g_sh = g_out = None
        if g_spk is not None:
            if p.scale is not None and need.scale:
                g_scale = _reduce(g_spk * torch.rsub(p.keep, 1), p.scale)
            g_out = g_spk if p.scale is None else g_spk * p.scale
        if not detach_reset and g_v is not None:  # the undetached reset V' (1 - S) + S V_reset: g_S += g_V (V_reset - V')
            g_reset_spike = g_v * (p.reset - (p.margin + p.th))
            g_out = g_reset_spike if g_out is None else g_reset_spike.add_(g_out)
        if g_out is not None:
            g_sh = _surrogate_adjoint(g_out, p.margin, width)
            if need.th:
                g_th = _reduce(-g_sh, p.th)
        if g_v is not None and need.reset:
            g_reset = _reduce(g_v * torch.rsub(p.keep, 1), p.reset)
        g_vp = _reset_adjoint(g_v, g_sh, p.keep)
        if g_vp is None:
            g_vp = torch.zeros_like(p.margin)
        g_decay = _reduce(g_vp * p.v, p.decay) if need.decay else None  # V' = g V + I
        g_x = torch.ops.aten.sigmoid_backward(g_vp, p.current) if sigmoid else g_vp
        return g_x, (g_vp * p.decay) if need.v else None, g_decay, g_th, g_reset, g_scale, None, None, None


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
    detach_reset: bool = True,
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
        bool(detach_reset),
    )
