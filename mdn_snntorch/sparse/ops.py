r"""The event-driven Linear product as two ``torch.library`` custom ops, with an autograd formula.

``spike_linear(x [R, K], W [N, K], b [N], dense_above, steps) = x W^T + b``, computed from the nonzeros of ``x``:

- **forward**: one pass over ``x`` marks its nonzeros in a bit mask and counts them per row; above
  ``dense_above x R x K`` of them, the dense ``torch.addmm(b, x, W^T)`` (exactly ``nn.Linear``); else list
  them by row (CSR, from the mask) and gather
  ``out[r] = b + sum_{k active in r} x[r, k] W^T[k]`` from a transposed copy of ``W`` with padded rows
  (:func:`~mdn_snntorch.sparse.c_kernels.padded_rows`; the product by ``x[r, k]`` is skipped when every value
  is 0 or 1). For 0/1 rows that are ``steps`` time steps of ``R / steps`` chains, cut into segments of
  32 steps (``docs/performance.md#the-event-driven-linear-layer``): where many inputs are on at most of a
  segment's steps, the complement coding, ``A[s] = sum W^T[k]`` over the segment's complemented inputs, then
  ``out[r] = b + A[s] + sum W^T[k]`` (the other inputs on) ``- sum W^T[k]`` (the complemented ones off);
  else, where the step-to-step changes are few, the run coding: direct sums for some inputs, for the others
  their changes (+-W^T[k]) carried from step to step;
- **weight gradient** (its own op, run by the backward only when ``W`` requires it): the same density rule,
  from the forward's mask and count; sparse: the nonzeros by column (CSC, from the mask), and
  ``grad_W[:, k] = sum_{r active in k} x[r, k] grad_out[r]``, or, for complement-coded rows, per input
  ``Tot[s]`` (``grad_out`` summed over the segment) for each segment that complements it less ``grad_out[r]``
  at its off steps; dense: ``grad_out^T x``;
- **input gradient**, only when ``x`` requires it: dense, ``grad_out W``; **bias gradient**: ``grad_out.sum(0)``.

The forward returns its mask (``[R, ceil(K / 64)]`` words, 1/32 of a float32 ``x``), count and coding beside
the product, so the backward neither scans ``x`` again nor keeps lists whose length depends on the data: every
output has a shape known from the inputs, and ``torch.compile`` treats both ops as single graph nodes with
plain fake kernels. The C kernels (:mod:`mdn_snntorch.sparse.c_kernels`) run on CPU float32/float64
tensors; the caller (:func:`mdn_snntorch.sparse.spike_linear`) sends everything else to
``torch.nn.functional.linear``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mdn_snntorch.fused import eager
from mdn_snntorch.sparse import c_kernels

Tensor = torch.Tensor


def _too_dense(nnz: int, x: Tensor, dense_above: float) -> bool:
    return nnz > dense_above * x.numel()


def _complement_pays(entries: int, nnz: int) -> bool:
    """Whether the complement coding's ``entries`` save at least :data:`COMPLEMENT_MIN_SAVING` of the nonzeros."""
    return entries < nnz and entries <= (1 - COMPLEMENT_MIN_SAVING) * nnz


def _complement_fits(R: int, S: int, steps: int) -> bool:
    """Whether the complement coding's lists can index their rows (the ``R`` rows and the segments' sums) with int32."""
    return R + c_kernels.run_segments(S, steps) < 2**31


def _check_steps(x: Tensor, steps: int) -> None:
    if steps < 1 or x.shape[0] % steps:
        raise ValueError(f"spike_linear: steps must be a positive divisor of the {x.shape[0]} rows of x, got {steps}")


#: the complement coding runs when it saves at least this fraction of the entries (its split, lists and
#: segment sums cost more per entry than the direct sums)
COMPLEMENT_MIN_SAVING = 0.25
#: the run coding, tried next, when it surely saves at least this fraction (its lists and carried sums cost
#: more per entry still)
RUNS_MIN_SAVING = 0.25


class Coding(NamedTuple):
    """The forward's sums for 0/1 rows of ``steps`` steps: ``name`` is ``"complement"`` (with its split ``comp``
    and its weight gradient's ``entries``), ``"runs"`` (``entries``: the run coding's bound, every input run
    coded) or ``"direct"`` (``entries``: the nonzeros)."""

    name: str
    entries: int
    comp: Tensor | None = None


def choose_coding(mask: Tensor, nnz: int, binary: bool, R: int, K: int, steps: int) -> Coding:
    """The complement coding where it saves :data:`COMPLEMENT_MIN_SAVING` of the ``nnz`` entries, else the run
    coding where it surely saves :data:`RUNS_MIN_SAVING`, else the direct sums (every input of ``x [R, K]``, as
    marked in ``mask``); codings only for 0/1 rows of more than one step."""
    S = R // steps
    if binary and steps > 1 and _complement_fits(R, S, steps):
        comp, entries = c_kernels.complement_split(mask, K, S, steps)
        if _complement_pays(entries, nnz):
            return Coding("complement", entries, comp)
    if binary and steps > 1:
        changes = c_kernels.runs_changes(mask, K, S, steps)
        if changes <= (1 - RUNS_MIN_SAVING) * nnz:
            return Coding("runs", changes)
    return Coding("direct", nnz)


def _spike_linear_impl(
    x: Tensor, weight: Tensor, bias: Tensor | None, dense_above: float, steps: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """``(x [R, K] W^T + b, mask, info)`` for a contiguous CPU ``x`` of W's dtype (see the module docstring): the
    product, the bit mask of the nonzeros of ``x`` (:func:`~mdn_snntorch.sparse.c_kernels.scan_rows`) and
    ``info = (number of nonzeros, 1 if every value is 0 or 1, 1 if the complement coding pays)`` (int64), which
    the weight gradient reads.
    ``steps``: the rows are ``steps`` consecutive slices of ``R / steps`` rows (time steps; see the complement
    and run codings)."""
    _check_steps(x, steps)
    mask, ptr, nnz, binary = c_kernels.scan_rows(x)
    info = torch.tensor([nnz, int(binary), 0], dtype=torch.int64)
    if _too_dense(nnz, x, dense_above):
        out = torch.addmm(bias, x, weight.t()) if bias is not None else x.mm(weight.t())
        return out, mask, info
    N, K = weight.shape
    out = x.new_empty(x.shape[0], N)
    init = None if bias is None else bias.contiguous()
    S = x.shape[0] // steps
    coding = choose_coding(mask, nnz, binary, x.shape[0], K, steps)
    if coding.name == "complement":
        info[2] = 1
        rptr, ridx, rval, aptr, aidx = c_kernels.complement_rows(mask, coding.comp, x.dtype, K, S, steps)
        D = c_kernels.padded_rows(weight.t(), coding.comp.shape[0])  # [W^T; A]: A[s], W^T summed over s's complemented inputs
        c_kernels.gather(aptr, aidx, None, D[:K], None, D[K:], D.stride(0), 1)
        c_kernels.gather(rptr, ridx, rval, D, init, out, N, 1)
        return out, mask, info
    wt = c_kernels.padded_rows(weight.t())
    if coding.name == "runs":
        carried = c_kernels.runs_split(mask, K, S, steps)
        dptr, didx, rptr, ridx, rval = c_kernels.runs_rows(mask, carried, x.dtype, K, S, steps)
        c_kernels.gather(dptr, didx, None, wt, init, out, N, 1)
        c_kernels.runs_add(rptr, ridx, rval, wt, out, S, steps)
        return out, mask, info
    idx, val = c_kernels.fill_rows(mask, x, ptr, nnz, binary)
    c_kernels.gather(ptr, idx, val, wt, init, out, N, 1)
    return out, mask, info


spike_linear_op = torch.library.custom_op("mdn_snntorch::spike_linear", mutates_args=())(_spike_linear_impl)


@spike_linear_op.register_fake
def _(x, weight, bias, dense_above, steps=1):
    mask = x.new_empty(x.shape[0], -(-x.shape[1] // 64), dtype=torch.int64)
    return x.new_empty(x.shape[0], weight.shape[0]), mask, x.new_empty(3, dtype=torch.int64)


def _weight_grad_impl(x: Tensor, grad_out: Tensor, mask: Tensor, info: Tensor, dense_above: float, steps: int = 1) -> Tensor:
    """``grad_out^T x``: ``[N, K]`` from ``x [R, K]``, a contiguous ``grad_out [R, N]`` and the ``mask`` and
    ``info`` of :func:`spike_linear_op` (``steps`` as there: the complement coding, where the forward found that
    it pays)."""
    _check_steps(x, steps)
    nnz, binary, complemented = info.tolist()
    if _too_dense(nnz, x, dense_above):
        return grad_out.t().mm(x)
    K = x.shape[1]
    grad = x.new_empty(grad_out.shape[1], K)
    S = x.shape[0] // steps
    if complemented and steps > 1:
        comp, entries = c_kernels.complement_split(mask, K, S, steps)
        cptr, cidx, cval = c_kernels.complement_columns(mask, comp, entries, x.dtype, K, S, steps)
        c_kernels.gather(cptr, cidx, cval, c_kernels.complement_grad_rows(grad_out, S, steps), None, grad, 1, K)
        return grad
    cptr, cidx, cval = c_kernels.columns(mask, x, nnz, bool(binary))
    c_kernels.gather(cptr, cidx, cval, c_kernels.padded_rows(grad_out), None, grad, 1, K)
    return grad


weight_grad_op = torch.library.custom_op("mdn_snntorch::spike_linear_weight_grad", mutates_args=())(_weight_grad_impl)


@weight_grad_op.register_fake
def _(x, grad_out, mask, info, dense_above, steps=1):
    return x.new_empty(grad_out.shape[1], x.shape[1])


def _setup_context(ctx, inputs, output):
    x, weight, bias, dense_above, steps = inputs
    _, mask, info = output
    ctx.mark_non_differentiable(mask, info)
    ctx.save_for_backward(x, weight, mask, info)
    ctx.dense_above, ctx.steps = dense_above, steps
    ctx.has_bias = bias is not None


def _backward(ctx, grad_out, *_):
    x, weight, mask, info = ctx.saved_tensors
    grad_out = grad_out.contiguous()
    gx = grad_out.mm(weight) if ctx.needs_input_grad[0] else None
    weight_grad = _weight_grad_direct if getattr(ctx, "direct", False) else weight_grad_op  # (fused/eager.py)
    gw = weight_grad(x, grad_out, mask, info, ctx.dense_above, ctx.steps) if ctx.needs_input_grad[1] else None
    gb = grad_out.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return gx, gw, gb, None, None


spike_linear_op.register_autograd(_backward, setup_context=_setup_context)
_SpikeLinear = eager.function("mdn_snntorch::spike_linear", _spike_linear_impl, _setup_context, _backward)
_weight_grad_direct = eager.named("mdn_snntorch::spike_linear_weight_grad", _weight_grad_impl)


def spike_linear_product(x: Tensor, weight: Tensor, bias: Tensor | None, dense_above: float, steps: int = 1) -> Tensor:
    """The product of :func:`spike_linear_op` (all its arguments given), through the op or, in eager mode, as its
    plain autograd Function (:mod:`mdn_snntorch.fused.eager`): the same results."""
    args = (x, weight, bias, dense_above, steps)
    return (_SpikeLinear.apply(*args) if eager.direct(x, weight, bias) else spike_linear_op(*args))[0]
