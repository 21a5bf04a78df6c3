r"""Triton kernels of the fused time loop, for CUDA tensors.

One program per block of ``BLOCK`` elements of ``[T, M]`` (``M`` = batch x neurons, neuron index
``e % N``); the loop over time runs inside the program, forward and backward. Same algorithm and
equations as the C kernels (:mod:`mdn_snntorch.fused.c_kernels`): the forward stores the pre-step state per
step (and ``I = sigmoid(x)`` when it applies the sigmoid), the backward recomputes each step from it and
runs the adjoint; with ``n`` sub-steps it keeps the sub-steps' pre-step states in a scratch buffer
``[2n, M]`` (each program only touches its own columns). Parameter gradients are written as per-element
sums over time ``[P, M]`` and summed over the batch by PyTorch, so the result is deterministic.

The step of each neuron and its adjoint are written once, as ``@triton.jit`` helpers (:func:`_mdn_euler`,
:func:`_mdn_adjoint`, :func:`_fo_step`, :func:`_fo_adjoint`) called by the forward and backward kernels; the MDN's
adjoint is made of the pieces every copy of it names alike (:func:`_surrogate_adjoint`, :func:`_reset_adjoint`,
:func:`_reset_spike_adjoint`, :func:`_u_update_adjoint`, :func:`_v_update_adjoint`; docs/performance.md#the-copies-of-the-step)
(equations: ``docs/model.md#discretisation``, ``#surrogate-gradient-and-reset``, ``#the-1st-order-neuron``).

Kernels are launched with ``enable_fp_fusion=False``: no fused multiply-add, so the forward rounds like
PyTorch's eager CUDA ops and the backward's recomputation is bitwise the forward's
(``docs/model.md#tolerances``).

The same code runs on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1`` set before this
module is imported), which is how the tests check the kernels' logic on machines without a GPU.
"""

from __future__ import annotations

import functools

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is missing
    triton = None

Tensor = torch.Tensor
BLOCK = 256
#: launch options of every kernel: no fused multiply-add (see above)
OPTIONS = {"enable_fp_fusion": False}


@functools.cache
def available() -> bool:
    """Whether triton imports (the caller checks that the tensors are on a CUDA device)."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _surrogate_adjoint(g, x, w):
        """``g`` through the window surrogate: ``g [|x| < w]`` (docs/model.md#surrogate-gradient-and-reset)."""
        return g * ((x < w) & (-x < w)).to(x.dtype)

    @triton.jit
    def _mdn_vprime(v, u, cur, dt):
        """V' = V + dt (((V V - V) - U) + I): the membrane update of :func:`_mdn_euler`, once."""
        return v + dt * (((v * v - v) - u) + cur)

    @triton.jit
    def _mdn_euler(v, u, cur, dt, a, b, c, d, th):
        """One Euler (sub-)step of the MDN (docs/model.md#discretisation), V and U both from the old state,
        then the reset: ``(V, U after the reset, x = V' - V_th, spike [x > 0])``."""
        vp = _mdn_vprime(v, u, cur, dt)
        up = u + dt * (a * (b * v - u))
        x = vp - th
        s = (x > 0).to(v.dtype)
        return tl.where(s > 0, c, vp), up + d * s, x, s

    @triton.jit
    def _reset_adjoint(gv, gu, gsh, s):
        """The reset ``V <- c where s``, ``U <- U' + d s`` seen from ``V'``: ``(gV' = gV (1 - s) + gsh``, theta_c's
        term ``gV s``, theta_d's ``gU s)`` (``gU' = gU``)."""
        return gv * (1 - s) + gsh, gv * s, gu * s

    @triton.jit
    def _reset_spike_adjoint(gv, gu, v, u, cur, dt, c, d):
        """The undetached reset seen from the spike: ``gV (c - V') + gU d``, from the post-reset state's gradients
        (docs/model.md#surrogate-gradient-and-reset); it enters through the surrogate."""
        return gv * (c - _mdn_vprime(v, u, cur, dt)) + gu * d

    @triton.jit
    def _u_update_adjoint(gu, v, u, dt, a, b):
        """``U' = U + dt a (b V - U)`` backwards from ``gU'``: theta_a's and theta_b's terms, then the shares of
        ``V`` and ``U``."""
        return gu * (dt * (b * v - u)), gu * (dt * (a * v)), gu * (dt * (a * b)), gu * (1 - dt * a)

    @triton.jit
    def _v_update_adjoint(gvp, v, dt, to_v, to_u):
        """``V' = V + dt (V V - V - U + I)`` backwards from ``gV'``, added to the ``U`` update's shares ``to_v``,
        ``to_u``: ``(gV, gU, gI)``."""
        return gvp * (1 + dt * (2 * v - 1)) + to_v, to_u - gvp * dt, gvp * dt

    @triton.jit
    def _mdn_adjoint(v, u, s, gsh, gv, gu, dt, a, b):
        """The adjoint of :func:`_mdn_euler` from its pre-step state ``v, u``, spike ``s`` and ``gsh`` (the
        spike's gradient through the surrogate); ``gv, gu`` are the post-reset state's gradients: the reset,
        the ``U`` update and the ``V`` update, backwards. Returns the pre-step state's gradients, the current's
        and the terms of theta_a..d's: ``(gv, gu, gI, ga, gb, gc, gd)`` (V_th's is ``-gsh``)."""
        gvp, gc, gd = _reset_adjoint(gv, gu, gsh, s)
        ga, gb, to_v, to_u = _u_update_adjoint(gu, v, u, dt, a, b)
        gv_prev, gu_prev, g_in = _v_update_adjoint(gvp, v, dt, to_v, to_u)
        return gv_prev, gu_prev, g_in, ga, gb, gc, gd

    @triton.jit
    def _fo_step(v, cur, g, th, r):
        """One step of the 1st-order neuron (docs/model.md#the-1st-order-neuron), then the reset:
        ``(V after the reset, x = V' - V_th, spike [x > 0])``."""
        vp = g * v + cur
        x = vp - th
        s = (x > 0).to(v.dtype)
        return tl.where(s > 0, r, vp), x, s

    @triton.jit
    def _fo_adjoint(v, s, gsh, gv, g):
        """The adjoint of :func:`_fo_step` from its pre-step ``v``, spike ``s`` and ``gsh``; ``gv`` is the
        post-reset V's gradient. Returns ``(gv of the pre-step V, gI, g_decay term, g_reset term)``."""
        gvp = gv * (1 - s) + gsh
        return gvp * g, gvp, gvp * v, gv * s

    @triton.jit
    def _mdn_fwd_kernel(
        X,
        V0,
        U0,
        P,
        SCAL,
        SPK,
        VT,
        UT,
        VTR,
        UTR,
        IOUT,
        CK,
        T,
        M,
        N,
        SUBSTEPS: tl.constexpr,
        SIGMOID: tl.constexpr,
        TRACES: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < M
        n = offs % N
        a = tl.load(P + n, mask=mask, other=0.0)
        b = tl.load(P + N + n, mask=mask, other=0.0)
        c = tl.load(P + 2 * N + n, mask=mask, other=0.0)
        d = tl.load(P + 3 * N + n, mask=mask, other=0.0)
        th = tl.load(P + 4 * N + n, mask=mask, other=0.0)
        sc = tl.load(P + 5 * N + n, mask=mask, other=0.0)
        dt = tl.load(SCAL)
        v = tl.load(V0 + offs, mask=mask, other=0.0)
        u = tl.load(U0 + offs, mask=mask, other=0.0)
        o = offs.to(tl.int64)  # element offset in row t of [T, M], advanced by M per step (int64)
        oc = offs.to(tl.int64)  # the same in [T, 2, M] (the checkpoints), advanced by 2 M
        for _t in range(T):
            x = tl.load(X + o, mask=mask, other=0.0)
            if SIGMOID:
                cur = tl.sigmoid(x)
                tl.store(IOUT + o, cur, mask=mask)
            else:
                cur = x
            tl.store(CK + oc, v, mask=mask)
            tl.store(CK + oc + M, u, mask=mask)
            acc = tl.zeros_like(v)
            for _j in tl.static_range(SUBSTEPS):
                v, u, _x, s = _mdn_euler(v, u, cur, dt, a, b, c, d, th)
                acc = (acc + s) - acc * s
            tl.store(SPK + o, acc * sc, mask=mask)
            if TRACES:
                tl.store(VTR + o, v, mask=mask)
                tl.store(UTR + o, u, mask=mask)
            o += M
            oc += 2 * M
        tl.store(VT + offs, v, mask=mask)
        tl.store(UT + offs, u, mask=mask)

    @triton.jit
    def _mdn_bwd_kernel(
        CUR,
        CK,
        P,
        SCAL,
        GS,
        GVTR,
        GUTR,
        GVT,
        GUT,
        GX,
        GV0,
        GU0,
        GP,
        SCR,
        T,
        M,
        N,
        LAST,
        SUBSTEPS: tl.constexpr,
        SIGMOID: tl.constexpr,
        UNDETACHED: tl.constexpr,
        HAS_GS: tl.constexpr,
        HAS_GVTR: tl.constexpr,
        HAS_GUTR: tl.constexpr,
        HAS_GVT: tl.constexpr,
        HAS_GUT: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < M
        n = offs % N
        a = tl.load(P + n, mask=mask, other=0.0)
        b = tl.load(P + N + n, mask=mask, other=0.0)
        c = tl.load(P + 2 * N + n, mask=mask, other=0.0)
        d = tl.load(P + 3 * N + n, mask=mask, other=0.0)
        th = tl.load(P + 4 * N + n, mask=mask, other=0.0)
        sc = tl.load(P + 5 * N + n, mask=mask, other=0.0)
        dt = tl.load(SCAL)
        w = tl.load(SCAL + 1)
        zero = tl.zeros_like(a)
        gv = zero
        gu = zero
        if HAS_GVT:
            gv = tl.load(GVT + offs, mask=mask, other=0.0)
        if HAS_GUT:
            gu = tl.load(GUT + offs, mask=mask, other=0.0)
        ga = zero
        gb = zero
        gc = zero
        gd = zero
        gth = zero
        gsc = zero
        offs64 = offs.to(tl.int64)
        o = offs64 + LAST  # row T - 1 of [T, M]; walks back by M per step
        oc = offs64 + 2 * LAST  # row T - 1 of the checkpoints [T, 2, M]
        for _t in range(T):
            if HAS_GVTR:
                gv += tl.load(GVTR + o, mask=mask, other=0.0)
            if HAS_GUTR:
                gu += tl.load(GUTR + o, mask=mask, other=0.0)
            cur = tl.load(CUR + o, mask=mask, other=0.0)
            v = tl.load(CK + oc, mask=mask, other=0.0)
            u = tl.load(CK + oc + M, mask=mask, other=0.0)
            gs = zero
            if HAS_GS:
                gs = tl.load(GS + o, mask=mask, other=0.0)
            gI = zero
            if SUBSTEPS == 1:
                _v, _u, x, s = _mdn_euler(v, u, cur, dt, a, b, c, d, th)
                gsh = _surrogate_adjoint(gs * sc, x, w)
                if UNDETACHED:
                    gsh += _surrogate_adjoint(_reset_spike_adjoint(gv, gu, v, u, cur, dt, c, d), x, w)
                gsc += gs * s
                gv, gu, gI, dga, dgb, dgc, dgd = _mdn_adjoint(v, u, s, gsh, gv, gu, dt, a, b)
                ga += dga
                gb += dgb
                gc += dgc
                gd += dgd
                gth -= gsh
            else:
                cnt = zero
                for j in tl.static_range(SUBSTEPS):  # recompute the sub-steps, keep their pre-step state
                    tl.store(SCR + (2 * j) * M + offs64, v, mask=mask)
                    tl.store(SCR + (2 * j + 1) * M + offs64, u, mask=mask)
                    v, u, _x, s = _mdn_euler(v, u, cur, dt, a, b, c, d, th)
                    cnt += s
                gS = gs * sc
                gsc += gs * (cnt > 0).to(v.dtype)
                for jj in tl.static_range(SUBSTEPS):
                    j = SUBSTEPS - 1 - jj
                    v = tl.load(SCR + (2 * j) * M + offs64, mask=mask, other=0.0)
                    u = tl.load(SCR + (2 * j + 1) * M + offs64, mask=mask, other=0.0)
                    _v, _u, x, s = _mdn_euler(v, u, cur, dt, a, b, c, d, th)
                    # the OR passes the step's spike gradient to sub-step j iff no other sub-step fired
                    gsh = _surrogate_adjoint(tl.where(cnt - s == 0, gS, zero), x, w)
                    if UNDETACHED:
                        gsh += _surrogate_adjoint(_reset_spike_adjoint(gv, gu, v, u, cur, dt, c, d), x, w)
                    gv, gu, dgI, dga, dgb, dgc, dgd = _mdn_adjoint(v, u, s, gsh, gv, gu, dt, a, b)
                    gI += dgI
                    ga += dga
                    gb += dgb
                    gc += dgc
                    gd += dgd
                    gth -= gsh
            if SIGMOID:
                gI = (gI * (1 - cur)) * cur
            tl.store(GX + o, gI, mask=mask)
            o -= M
            oc -= 2 * M
        tl.store(GV0 + offs, gv, mask=mask)
        tl.store(GU0 + offs, gu, mask=mask)
        tl.store(GP + offs64, ga, mask=mask)
        tl.store(GP + M + offs64, gb, mask=mask)
        tl.store(GP + 2 * M + offs64, gc, mask=mask)
        tl.store(GP + 3 * M + offs64, gd, mask=mask)
        tl.store(GP + 4 * M + offs64, gth, mask=mask)
        tl.store(GP + 5 * M + offs64, gsc, mask=mask)

    @triton.jit
    def _fo_fwd_kernel(
        X,
        V0,
        P,
        SPK,
        VT,
        VTR,
        IOUT,
        CK,
        T,
        M,
        N,
        SIGMOID: tl.constexpr,
        TRACES: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < M
        n = offs % N
        g = tl.load(P + n, mask=mask, other=0.0)
        th = tl.load(P + N + n, mask=mask, other=0.0)
        r = tl.load(P + 2 * N + n, mask=mask, other=0.0)
        sc = tl.load(P + 3 * N + n, mask=mask, other=0.0)
        v = tl.load(V0 + offs, mask=mask, other=0.0)
        o = offs.to(tl.int64)  # element offset of row t, advanced by M per step (int64: no overflow)
        for _t in range(T):
            x = tl.load(X + o, mask=mask, other=0.0)
            if SIGMOID:
                cur = tl.sigmoid(x)
                tl.store(IOUT + o, cur, mask=mask)
            else:
                cur = x
            tl.store(CK + o, v, mask=mask)
            v, _x, s = _fo_step(v, cur, g, th, r)
            tl.store(SPK + o, s * sc, mask=mask)
            if TRACES:
                tl.store(VTR + o, v, mask=mask)
            o += M
        tl.store(VT + offs, v, mask=mask)

    @triton.jit
    def _fo_bwd_kernel(
        CUR,
        CK,
        P,
        SCAL,
        GS,
        GVTR,
        GVT,
        GX,
        GV0,
        GP,
        T,
        M,
        N,
        LAST,
        SIGMOID: tl.constexpr,
        UNDETACHED: tl.constexpr,
        HAS_GS: tl.constexpr,
        HAS_GVTR: tl.constexpr,
        HAS_GVT: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < M
        n = offs % N
        g = tl.load(P + n, mask=mask, other=0.0)
        th = tl.load(P + N + n, mask=mask, other=0.0)
        r = tl.load(P + 2 * N + n, mask=mask, other=0.0)
        sc = tl.load(P + 3 * N + n, mask=mask, other=0.0)
        w = tl.load(SCAL + 1)
        zero = tl.zeros_like(g)
        gv = zero
        if HAS_GVT:
            gv = tl.load(GVT + offs, mask=mask, other=0.0)
        gg = zero
        gth = zero
        gr = zero
        gsc = zero
        offs64 = offs.to(tl.int64)
        o = offs64 + LAST  # row T - 1; walks back by M per step
        for _t in range(T):
            if HAS_GVTR:
                gv += tl.load(GVTR + o, mask=mask, other=0.0)
            cur = tl.load(CUR + o, mask=mask, other=0.0)
            v = tl.load(CK + o, mask=mask, other=0.0)
            gs = zero
            if HAS_GS:
                gs = tl.load(GS + o, mask=mask, other=0.0)
            _v, x, s = _fo_step(v, cur, g, th, r)
            gsh = _surrogate_adjoint(gs * sc, x, w)
            if UNDETACHED:  # the undetached reset: gV (r - V')
                gsh += _surrogate_adjoint(gv * (r - (g * v + cur)), x, w)
            gsc += gs * s
            gv, gvp, dgg, dgr = _fo_adjoint(v, s, gsh, gv, g)
            gg += dgg
            gr += dgr
            gth -= gsh
            if SIGMOID:
                gvp = (gvp * (1 - cur)) * cur
            tl.store(GX + o, gvp, mask=mask)
            o -= M
        tl.store(GV0 + offs, gv, mask=mask)
        tl.store(GP + offs64, gg, mask=mask)
        tl.store(GP + M + offs64, gth, mask=mask)
        tl.store(GP + 2 * M + offs64, gr, mask=mask)
        tl.store(GP + 3 * M + offs64, gsc, mask=mask)


def _grid(M: int) -> tuple[int]:
    return (triton.cdiv(M, BLOCK),)


def _scalars(like: Tensor, *values: float) -> Tensor:
    """Scalars passed in ``like``'s dtype (a Python float argument would reach the kernel as float32)."""
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _sum_rows(gp: Tensor, N: int) -> Tensor:
    """``[P, M]`` per-element sums -> ``[P, N]`` per-neuron sums, accumulated in float64."""
    return gp.view(gp.shape[0], -1, N).sum(1, dtype=torch.float64)


def mdn_forward(
    x: Tensor, v0: Tensor, u0: Tensor, params: Tensor, dt: float, substeps: int, sigmoid: bool, traces: bool, every: int
):
    """See :func:`mdn_snntorch.fused.c_kernels.mdn_forward` (here ``every`` must be 1); the sigmoid runs in the kernel."""
    if every != 1:
        raise ValueError(f"the Triton kernels checkpoint every step, got every={every}")
    T, M = x.shape
    spk, ck = torch.empty_like(x), x.new_empty(T, 2, M)
    vT, uT = torch.empty_like(v0), torch.empty_like(u0)
    vtr, utr = (torch.empty_like(x), torch.empty_like(x)) if traces else (x.new_empty(0), x.new_empty(0))
    cur = torch.empty_like(x) if sigmoid else x
    _mdn_fwd_kernel[_grid(M)](
        x,
        v0,
        u0,
        params,
        _scalars(x, dt / substeps),
        spk,
        vT,
        uT,
        vtr,
        utr,
        cur,
        ck,
        T,
        M,
        params.shape[1],
        SUBSTEPS=substeps,
        SIGMOID=sigmoid,
        TRACES=traces,
        BLOCK=BLOCK,
        **OPTIONS,
    )
    return spk, vT, uT, vtr, utr, cur, ck


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
    """See :func:`mdn_snntorch.fused.c_kernels.mdn_backward` (without ``param_grads`` the kernel still writes the
    per-element sums; only their reduction per neuron is skipped)."""
    T, M = I.shape
    N = params.shape[1]
    gx, gv0, gu0 = torch.empty_like(I), I.new_empty(M), I.new_empty(M)
    gp = I.new_empty(6, M)
    scratch = I.new_empty(2 * substeps, M) if substeps > 1 else I
    _mdn_bwd_kernel[_grid(M)](
        I,
        ck,
        params,
        _scalars(I, dt / substeps, width),
        I if gs is None else gs,
        I if gvtr is None else gvtr,
        I if gutr is None else gutr,
        I if gvT is None else gvT,
        I if guT is None else guT,
        gx,
        gv0,
        gu0,
        gp,
        scratch,
        T,
        M,
        N,
        (T - 1) * M,
        SUBSTEPS=substeps,
        SIGMOID=sigmoid,
        UNDETACHED=undetached,
        HAS_GS=gs is not None,
        HAS_GVTR=gvtr is not None,
        HAS_GUTR=gutr is not None,
        HAS_GVT=gvT is not None,
        HAS_GUT=guT is not None,
        BLOCK=BLOCK,
        **OPTIONS,
    )
    return gx, gv0, gu0, _sum_rows(gp, N) if param_grads else None


def first_order_forward(x: Tensor, v0: Tensor, params: Tensor, sigmoid: bool, traces: bool, every: int):
    """See :func:`mdn_snntorch.fused.c_kernels.first_order_forward` (``every`` must be 1); the sigmoid runs in the kernel."""
    if every != 1:
        raise ValueError(f"the Triton kernels checkpoint every step, got every={every}")
    T, M = x.shape
    spk, ck, vT = torch.empty_like(x), torch.empty_like(x), torch.empty_like(v0)
    vtr = torch.empty_like(x) if traces else x.new_empty(0)
    cur = torch.empty_like(x) if sigmoid else x
    _fo_fwd_kernel[_grid(M)](
        x,
        v0,
        params,
        spk,
        vT,
        vtr,
        cur,
        ck,
        T,
        M,
        params.shape[1],
        SIGMOID=sigmoid,
        TRACES=traces,
        BLOCK=BLOCK,
        **OPTIONS,
    )
    return spk, vT, vtr, cur, ck


def first_order_backward(I, ck, params, gs, gvtr, gvT, width: float, sigmoid: bool, every: int, undetached: bool = False,
                         param_grads: bool = True):  # fmt: skip
    """See :func:`mdn_snntorch.fused.c_kernels.first_order_backward` (``param_grads``: as in :func:`mdn_backward`)."""
    T, M = I.shape
    N = params.shape[1]
    gx, gv0, gp = torch.empty_like(I), I.new_empty(M), I.new_empty(4, M)
    _fo_bwd_kernel[_grid(M)](
        I,
        ck,
        params,
        _scalars(I, 0.0, width),
        I if gs is None else gs,
        I if gvtr is None else gvtr,
        I if gvT is None else gvT,
        gx,
        gv0,
        gp,
        T,
        M,
        N,
        (T - 1) * M,
        SIGMOID=sigmoid,
        UNDETACHED=undetached,
        HAS_GS=gs is not None,
        HAS_GVTR=gvtr is not None,
        HAS_GVT=gvT is not None,
        BLOCK=BLOCK,
        **OPTIONS,
    )
    return gx, gv0, _sum_rows(gp, N) if param_grads else None
