r"""The fused time loop written with plain PyTorch ops: runs on every device and dtype.

The same algorithm as the C kernels (:mod:`mdn_snntorch.fused.c_kernels`): the forward keeps the state
only at checkpoints every ``every`` steps; the backward recomputes each segment from its checkpoint and
runs the adjoint of Euler step, threshold, window surrogate and reset over it in one reverse loop, with no
autograd graph. The steps call the right-hand sides of :mod:`mdn_snntorch.equations`, as the reference
loop of :mod:`mdn_snntorch.functional` does, in the same order of operations, so the forward is bitwise
the reference's (``docs/model.md#discretisation``, ``#the-1st-order-neuron``). Used where no compiled
kernel applies (other devices, float16/bfloat16, no C compiler). Arguments and results are those of the C
wrappers: inputs ``I [T, M]``, state ``[M]``, parameters ``[P, N]`` (``M`` a multiple of ``N``),
parameter gradients ``[P, N]``.
"""

from __future__ import annotations

import torch

from mdn_snntorch.equations import du_dt, dv_dt, first_order_map

Tensor = torch.Tensor


def _per_element(params: Tensor, M: int) -> tuple[Tensor, ...]:
    """``[P, N] -> P`` tensors of length ``M``, element ``e`` holding neuron ``e % N``."""
    return params.repeat(1, M // params.shape[1]).unbind(0)


def _mdn_substep(v: Tensor, u: Tensor, I: Tensor, a, b, c, d, th, dt: float):
    """One Euler (sub-)step and its reset: ``(v_new, u_new, x = V' - V_th, spike)``, the operations of
    :func:`mdn_snntorch.functional.mdn_step` in its order."""
    vp = v + dt * dv_dt(v, u, I)
    up = u + dt * du_dt(v, u, a, b)
    x = vp - th
    s = (x > 0).to(v.dtype)
    return torch.where(s > 0, c, vp), up + d * s, x, s


def _surrogate_adjoint(g: Tensor, x: Tensor, width: float) -> Tensor:
    """``g`` through the window surrogate: ``g [|x| < width]`` (``docs/model.md#surrogate-gradient-and-reset``)."""
    return g * (x.abs() < width).to(g.dtype)


def _reset_adjoint(gv, gu, gsh, s):
    """The reset ``V <- c where s``, ``U <- U' + d s`` seen from ``V'``: ``(gV' = gV (1 - s) + gsh``, theta_c's
    term ``gV s``, theta_d's ``gU s)`` (``gU' = gU``)."""
    return gv * (1 - s) + gsh, gv * s, gu * s


def _reset_spike_adjoint(gv, gu, v, u, I, c, d, dt: float) -> Tensor:
    """The undetached reset seen from the spike: ``gV (c - V') + gU d``, from the post-reset state's gradients
    (docs/model.md#surrogate-gradient-and-reset); it enters through the surrogate."""
    return gv * (c - (v + dt * dv_dt(v, u, I))) + gu * d


def _u_update_adjoint(gu, v, u, a, b, dt: float):
    """``U' = U + dt a (b V - U)`` backwards from ``gU'``: theta_a's and theta_b's terms, then the shares of ``V``
    and ``U``."""
    return gu * (dt * (b * v - u)), gu * (dt * (a * v)), gu * (dt * (a * b)), gu * (1 - dt * a)


def _v_update_adjoint(gvp, v, dt: float, to_v, to_u):
    """``V' = V + dt (V V - V - U + I)`` backwards from ``gV'``, added to the ``U`` update's shares ``to_v``,
    ``to_u``: ``(gV, gU, gI)``."""
    return gvp * (1 + dt * (2 * v - 1)) + to_v, to_u - gvp * dt, gvp * dt


def _mdn_adjoint(v, u, s, gsh, gv, gu, a, b, dt: float, gp: Tensor):
    """The adjoint of :func:`_mdn_substep` from its pre-step state ``v, u``, spike ``s`` and ``gsh`` (the
    spike's gradient through the surrogate): the reset, the ``U`` update and the ``V`` update, backwards. Takes
    the gradients ``gv, gu`` of the post-reset state to those of the pre-step state, adds the parameter
    gradients to ``gp[0:5]`` (a, b, c, d, V_th) and returns ``(gv, gu, gradient of I)``."""
    gvp, gc, gd = _reset_adjoint(gv, gu, gsh, s)
    ga, gb, to_v, to_u = _u_update_adjoint(gu, v, u, a, b, dt)
    gp[0] += ga
    gp[1] += gb
    gp[2] += gc
    gp[3] += gd
    gp[4] -= gsh
    return _v_update_adjoint(gvp, v, dt, to_v, to_u)


def _mdn_step(v, u, I, p, dt: float, substeps: int):
    """One network step: ``(v, u, spike)`` with the sub-steps' spikes OR-ed."""
    a, b, c, d, th = p
    acc = None
    for _ in range(substeps):
        v, u, _, s = _mdn_substep(v, u, I, a, b, c, d, th, dt)
        acc = s if acc is None else (acc + s) - acc * s
    return v, u, acc


def mdn_forward(
    x: Tensor, v0: Tensor, u0: Tensor, params: Tensor, dt: float, substeps: int, sigmoid: bool, traces: bool, every: int
):
    """See :func:`mdn_snntorch.fused.c_kernels.mdn_forward`."""
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    *p, scale = _per_element(params, M)
    sdt = dt / substeps
    spk, ck = torch.empty_like(I), I.new_empty(-(-T // every), 2, M)
    vtr, utr = (torch.empty_like(I), torch.empty_like(I)) if traces else (I.new_empty(0), I.new_empty(0))
    v, u = v0, u0
    for t in range(T):
        if t % every == 0:
            ck[t // every, 0], ck[t // every, 1] = v, u
        v, u, s = _mdn_step(v, u, I[t], p, sdt, substeps)
        spk[t] = s * scale
        if traces:
            vtr[t], utr[t] = v, u
    return spk, v.clone(), u.clone(), vtr, utr, I, ck


def mdn_backward(
    I,
    ck,
    params,
    gs,
    gvtr,
    gutr,
    gvT,
    guT,
    dt: float,
    substeps: int,
    width: float,
    sigmoid: bool,
    every: int,
    undetached: bool = False,
    param_grads: bool = True,
):
    """See :func:`mdn_snntorch.fused.c_kernels.mdn_backward` (the sums here are in ``I``'s dtype; without
    ``param_grads`` the loop still adds them up, and only returns ``None`` for them)."""
    T, M = I.shape
    a, b, c, d, th, scale = _per_element(params, M)
    sdt = dt / substeps
    gv = gvT.clone() if gvT is not None else I.new_zeros(M)
    gu = guT.clone() if guT is not None else I.new_zeros(M)
    gp = I.new_zeros(6, M)
    gx = torch.empty_like(I)
    for t0 in reversed(range(0, T, every)):
        states, (v, u) = [], ck[t0 // every]
        for t in range(t0, min(t0 + every, T)):  # recompute the segment
            states.append((v, u))
            v, u, _ = _mdn_step(v, u, I[t], (a, b, c, d, th), sdt, substeps)
        for t in reversed(range(t0, min(t0 + every, T))):
            if gvtr is not None:
                gv = gv + gvtr[t]
            if gutr is not None:
                gu = gu + gutr[t]
            subs, (v, u) = [], states[t - t0]
            for _ in range(substeps):
                v_next, u_next, x, s = _mdn_substep(v, u, I[t], a, b, c, d, th, sdt)
                subs.append((v, u, x, s))
                v, u = v_next, u_next
            fired = sum(s for _, _, _, s in subs)
            if gs is not None:
                gp[5] += gs[t] * (fired > 0).to(I.dtype)
                gS = gs[t] * scale
            gI = torch.zeros_like(gv)
            for v, u, x, s in reversed(subs):
                if gs is None:
                    gsh = torch.zeros_like(gv)
                else:  # the OR passes the step's spike gradient to a sub-step iff no other sub-step fired
                    gsh = _surrogate_adjoint(gS if substeps == 1 else torch.where(fired - s == 0, gS, 0), x, width)
                if undetached:
                    gsh = gsh + _surrogate_adjoint(_reset_spike_adjoint(gv, gu, v, u, I[t], c, d, sdt), x, width)
                gv, gu, g = _mdn_adjoint(v, u, s, gsh, gv, gu, a, b, sdt, gp)
                gI += g
            gx[t] = gI * (1 - I[t]) * I[t] if sigmoid else gI
    return gx, gv, gu, gp.view(6, -1, params.shape[1]).sum(1) if param_grads else None


def _fo_step(v: Tensor, I: Tensor, g, th, r):
    """One step of the 1st-order neuron and its reset: ``(v_new, x = V' - V_th, spike)``, the operations of
    :func:`mdn_snntorch.functional.first_order_step` in its order."""
    vp = first_order_map(v, I, g)
    x = vp - th
    s = (x > 0).to(I.dtype)
    return torch.where(s > 0, r, vp), x, s


def first_order_forward(x: Tensor, v0: Tensor, params: Tensor, sigmoid: bool, traces: bool, every: int):
    """See :func:`mdn_snntorch.fused.c_kernels.first_order_forward`."""
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    g, th, r, scale = _per_element(params, M)
    spk, ck = torch.empty_like(I), I.new_empty(-(-T // every), M)
    vtr = torch.empty_like(I) if traces else I.new_empty(0)
    v = v0
    for t in range(T):
        if t % every == 0:
            ck[t // every] = v
        v, _, s = _fo_step(v, I[t], g, th, r)
        spk[t] = s * scale
        if traces:
            vtr[t] = v
    return spk, v.clone(), vtr, I, ck


def first_order_backward(I, ck, params, gs, gvtr, gvT, width: float, sigmoid: bool, every: int, undetached: bool = False,
                         param_grads: bool = True):  # fmt: skip
    """See :func:`mdn_snntorch.fused.c_kernels.first_order_backward` (``param_grads``: as in :func:`mdn_backward`)."""
    T, M = I.shape
    g, th, r, scale = _per_element(params, M)
    gv = gvT.clone() if gvT is not None else I.new_zeros(M)
    gp = I.new_zeros(4, M)
    gx = torch.empty_like(I)
    for t0 in reversed(range(0, T, every)):
        states, v = [], ck[t0 // every]
        for t in range(t0, min(t0 + every, T)):  # recompute the segment
            states.append(v)
            v, _, _ = _fo_step(v, I[t], g, th, r)
        for t in reversed(range(t0, min(t0 + every, T))):
            if gvtr is not None:
                gv = gv + gvtr[t]
            v = states[t - t0]
            _, x, s = _fo_step(v, I[t], g, th, r)
            if gs is not None:
                gsh = _surrogate_adjoint(gs[t] * scale, x, width)
                gp[3] += gs[t] * s
            else:
                gsh = torch.zeros_like(gv)
            if undetached:  # the undetached reset: gV (r - V')
                gsh = gsh + _surrogate_adjoint(gv * (r - first_order_map(v, I[t], g)), x, width)
            gvp = gv * (1 - s) + gsh
            gp[0] += gvp * v
            gp[1] -= gsh
            gp[2] += gv * s
            gv = gvp * g
            gx[t] = gvp * (1 - I[t]) * I[t] if sigmoid else gvp
    return gx, gv, gp.view(4, -1, params.shape[1]).sum(1) if param_grads else None
