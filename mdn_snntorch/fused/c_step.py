r"""The single step on CPU as one C call forward and one backward: the fused op's C kernels with ``T = 1``.

:class:`MDNCStep` and :class:`FirstOrderCStep` are autograd nodes with the semantics of
:class:`~mdn_snntorch.functional.MDNStep` and :class:`~mdn_snntorch.functional.FirstOrderStep` (the window
surrogate, the input sigmoid, the graded-spikes factor, sub-steps, either reset; docs/model.md#discretisation):
the forward is bitwise theirs (the kernels' step performs the reference's operations in its order), the
gradients agree to rounding (the parameters' are summed in double). They run the kernels of
:mod:`~mdn_snntorch.fused.c_kernels` over the step's ``M`` elements with no checkpoints (the backward
recomputes the step from the state it started from), read each parameter where it lies (one value, or one per
neuron of the flattened feature shape: :class:`StepParams`), and ask the backward only for the parameter
gradients autograd needs. With ``check_input`` the forward also counts the non-finite values of the input and of
the membrane it starts from, in the same pass (:class:`Finite`).

The neurons take this path (``"node:c"``) where :func:`~mdn_snntorch.fused.dispatch.c_step_rejection` finds no
reason against it: eager mode, CPU float32/float64, the C kernels built, state and parameters that fit.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from mdn_snntorch.functional import saved_or_stale
from mdn_snntorch.fused import c_kernels

Tensor = torch.Tensor


class StepParams(NamedTuple):
    """The parameters of one step as the kernels read them: ``tensors`` (in the input's dtype; a parameter that is
    neither one value nor one per neuron is expanded to the feature shape), their addresses ``rows``, the number of
    neurons ``N`` (of the flattened feature shape ``shape``) and ``shared``, bit ``q`` set where parameter ``q`` is
    one value."""

    tensors: tuple[Tensor, ...]
    rows: tuple[int, ...]
    N: int
    shared: int
    shape: tuple[int, ...]


def step_params(values: Sequence[Tensor], shape: tuple[int, ...]) -> StepParams:
    """:class:`StepParams` of ``values`` (tensors in the input's dtype, detached or not) for the feature shape
    ``shape`` (:func:`~mdn_snntorch.fused.dispatch.feature_shape`)."""
    N, shared, kept, rows = math.prod(shape), 0, [], []
    for q, t in enumerate(values):
        n = t.numel()
        if n == 1:
            shared |= 1 << q
        elif n != N or not t.is_contiguous():
            t = t.detach().reshape(t.shape[max(0, t.dim() - len(shape)) :]).expand(shape).contiguous()
        kept.append(t)
        rows.append(t.data_ptr())
    return StepParams(tuple(kept), tuple(rows), N, shared, shape)


def _param_grad(row: Tensor, p: StepParams, q: int, like: Tensor) -> Tensor:
    """The gradient of parameter ``q`` (the tensor ``like``) from its per-neuron sums ``row [N]`` (float64)."""
    shape = like.shape
    if p.shared >> q & 1:
        return row.sum().reshape(shape).to(like.dtype)
    tail = shape[max(0, len(shape) - len(p.shape)) :]
    return row.view(p.shape).sum_to_size(tail).reshape(shape).to(like.dtype)


def _param_grads(gp: Tensor | None, p: StepParams, want: int, likes: tuple[Tensor, ...]) -> list[Tensor | None]:
    """The parameters' gradients, ``None`` for those not in ``want``."""
    if not want:
        return [None] * len(likes)
    return [_param_grad(gp[q], p, q, like) if want >> q & 1 else None for q, like in enumerate(likes)]


def _wanted(need: tuple[bool, ...]) -> int:
    """The bits of the parameters (``need``: their ``needs_input_grad``, in order) whose gradients are wanted."""
    return sum(1 << q for q, n in enumerate(need) if n) if any(need) else 0


def _flat(g: Tensor | None) -> Tensor | None:
    return None if g is None else g.contiguous()


_COUNTS = ctypes.c_int64 * 2


class Finite:
    """The forward's count of non-finite values: ``input`` (of the input ``x``) and ``membrane`` (of the state ``V``
    the step starts from), each counted only where asked for."""

    __slots__ = ("counts", "check_input", "check_membrane")

    def __init__(self, check_input: bool, check_membrane: bool):
        self.counts = _COUNTS()
        self.check_input, self.check_membrane = check_input, check_membrane

    @property
    def input(self) -> int:
        return self.counts[0]

    @property
    def membrane(self) -> int:
        return self.counts[1]


class MDNCStep(torch.autograd.Function):
    """One MDN step in C: arguments ``(x, v, u, a, b, c, d, th, scale, params, dt, substeps, width, sigmoid,
    detach_reset, finite)`` (``x, v, u`` contiguous of one shape; ``a .. scale`` the parameter tensors autograd
    sees, ``params`` their :class:`StepParams`; ``finite`` a :class:`Finite`); returns ``(spikes, v, u)``."""

    @staticmethod
    def forward(ctx, x, v, u, a, b, c, d, th, scale, params, dt, substeps, width, sigmoid, detach_reset, finite):
        current = torch.sigmoid(x) if sigmoid else x
        spk, v_new, u_new = c_kernels.mdn_step_forward(
            x, current, v, u, params.rows, params.N, params.shared, dt, substeps, finite.check_input, finite.check_membrane,
            finite.counts,
        )  # fmt: skip
        ctx.set_materialize_grads(False)
        ctx.params, ctx.likes, ctx.config = params, (a, b, c, d, th, scale), (dt, substeps, width, sigmoid, detach_reset)
        ctx.save_for_backward(current, v, u, *params.tensors)  # the parameters too: autograd's check of in-place changes
        return spk, v_new, u_new

    @staticmethod
    def backward(ctx, g_spk, g_v, g_u):
        current, v, u, *_ = saved_or_stale(ctx)
        p, (dt, substeps, width, sigmoid, detach_reset) = ctx.params, ctx.config
        need = ctx.needs_input_grad
        want = _wanted(need[3:9])
        gx, gv0, gu0, gp = c_kernels.mdn_step_backward(
            current, v, u, p.rows, p.N, p.shared, _flat(g_spk), _flat(g_v), _flat(g_u), dt, substeps, width, sigmoid,
            not detach_reset, want,
        )  # fmt: skip
        grads = _param_grads(gp, p, want, ctx.likes)
        return gx, gv0 if need[1] else None, gu0 if need[2] else None, *grads, *[None] * 7


class FirstOrderCStep(torch.autograd.Function):
    """One 1st-order step in C: arguments ``(x, v, decay, th, reset, scale, params, width, sigmoid, detach_reset,
    finite)`` (as :class:`MDNCStep`); returns ``(spikes, v)``."""

    @staticmethod
    def forward(ctx, x, v, decay, th, reset, scale, params, width, sigmoid, detach_reset, finite):
        current = torch.sigmoid(x) if sigmoid else x
        spk, v_new = c_kernels.first_order_step_forward(
            x, current, v, params.rows, params.N, params.shared, finite.check_input, finite.check_membrane, finite.counts
        )
        ctx.set_materialize_grads(False)
        ctx.params, ctx.likes, ctx.config = params, (decay, th, reset, scale), (width, sigmoid, detach_reset)
        ctx.save_for_backward(current, v, *params.tensors)
        return spk, v_new

    @staticmethod
    def backward(ctx, g_spk, g_v):
        current, v, *_ = saved_or_stale(ctx)
        p, (width, sigmoid, detach_reset) = ctx.params, ctx.config
        need = ctx.needs_input_grad
        want = _wanted(need[2:6])
        gx, gv0, gp = c_kernels.first_order_step_backward(
            current, v, p.rows, p.N, p.shared, _flat(g_spk), _flat(g_v), width, sigmoid, not detach_reset, want
        )
        return gx, gv0 if need[1] else None, *_param_grads(gp, p, want, ctx.likes), *[None] * 5
