r"""The fused time loop written with plain PyTorch ops: runs on every device and dtype.

The same algorithm as the C kernels (see :mod:`mdn_snntorch.kernels.cpu` for the adjoint equations): the
forward keeps the state only at checkpoints every ``every`` steps; the backward recomputes each segment
from its checkpoint and runs the adjoint of Euler step, threshold, window surrogate and reset over it in
one reverse loop, with no autograd graph. Used where no compiled kernel applies (other devices,
float16/bfloat16, no C compiler). Arguments and results are those of the C wrappers: inputs ``I [T, M]``,
state ``[M]``, parameters ``[P, N]`` (``M`` a multiple of ``N``), parameter gradients ``[P, N]``.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def _per_element(params: Tensor, M: int) -> tuple[Tensor, ...]:
    """``[P, N] -> P`` tensors of length ``M``, element ``e`` holding neuron ``e % N``."""
    return params.repeat(1, M // params.shape[1]).unbind(0)


def _mdn_substep(v: Tensor, u: Tensor, I: Tensor, a, b, c, d, th, dt: float):
    """One Euler (sub-)step: ``(v_new, u_new, x = V' - V_th, spike)``, rounding as the reference loop."""
    vp = v + dt * (((v * v - v) - u) + I)
    up = u + dt * (a * (b * v - u))
    x = vp - th
    s = (x > 0).to(v.dtype)
    return torch.where(s > 0, c, vp), up + d * s, x, s


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
    """See :func:`mdn_snntorch.kernels.cpu.mdn_forward`."""
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


def mdn_backward(I, ck, params, gs, gvtr, gutr, gvT, guT, dt: float, substeps: int, width: float, sigmoid: bool, every: int):
    """See :func:`mdn_snntorch.kernels.cpu.mdn_backward` (the sums here are in ``I``'s dtype)."""
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
                    gsj = gS if substeps == 1 else torch.where(fired - s == 0, gS, 0)
                    gsh = gsj * (x.abs() < width).to(gv.dtype)
                gvp = gv * (1 - s) + gsh
                gp[0] += gu * (sdt * (b * v - u))
                gp[1] += gu * (sdt * (a * v))
                gp[2] += gv * s
                gp[3] += gu * s
                gp[4] -= gsh
                gI += gvp * sdt
                gv, gu = gvp * (1 + sdt * (2 * v - 1)) + gu * (sdt * (a * b)), gu * (1 - sdt * a) - gvp * sdt
            gx[t] = gI * (1 - I[t]) * I[t] if sigmoid else gI
    return gx, gv, gu, gp.view(6, -1, params.shape[1]).sum(1)


def first_order_forward(x: Tensor, v0: Tensor, params: Tensor, sigmoid: bool, traces: bool, every: int):
    """See :func:`mdn_snntorch.kernels.cpu.first_order_forward`."""
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    g, th, r, scale = _per_element(params, M)
    spk, ck = torch.empty_like(I), I.new_empty(-(-T // every), M)
    vtr = torch.empty_like(I) if traces else I.new_empty(0)
    v = v0
    for t in range(T):
        if t % every == 0:
            ck[t // every] = v
        vp = g * v + I[t]
        s = ((vp - th) > 0).to(I.dtype)
        v = torch.where(s > 0, r, vp)
        spk[t] = s * scale
        if traces:
            vtr[t] = v
    return spk, v.clone(), vtr, I, ck


def first_order_backward(I, ck, params, gs, gvtr, gvT, width: float, sigmoid: bool, every: int):
    """See :func:`mdn_snntorch.kernels.cpu.first_order_backward`."""
    T, M = I.shape
    g, th, r, scale = _per_element(params, M)
    gv = gvT.clone() if gvT is not None else I.new_zeros(M)
    gp = I.new_zeros(4, M)
    gx = torch.empty_like(I)
    for t0 in reversed(range(0, T, every)):
        states, v = [], ck[t0 // every]
        for t in range(t0, min(t0 + every, T)):  # recompute the segment
            states.append(v)
            vp = g * v + I[t]
            v = torch.where(((vp - th) > 0), r, vp)
        for t in reversed(range(t0, min(t0 + every, T))):
            if gvtr is not None:
                gv = gv + gvtr[t]
            v = states[t - t0]
            x = (g * v + I[t]) - th
            s = (x > 0).to(I.dtype)
            if gs is not None:
                gsh = (gs[t] * scale) * (x.abs() < width).to(I.dtype)
                gp[3] += gs[t] * s
            else:
                gsh = torch.zeros_like(gv)
            gvp = gv * (1 - s) + gsh
            gp[0] += gvp * v
            gp[1] -= gsh
            gp[2] += gv * s
            gv = gvp * g
            gx[t] = gvp * (1 - I[t]) * I[t] if sigmoid else gvp
    return gx, gv, gp.view(4, -1, params.shape[1]).sum(1)
