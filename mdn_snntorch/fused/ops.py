r"""Fused multi-step MDN and 1st-order neurons: the whole ``[T, ...]`` loop as one ``torch.library`` op.

Semantics are those of :func:`mdn_snntorch.functional.mdn_multistep` and
:func:`~mdn_snntorch.functional.first_order_multistep` with the window surrogate (paper Eq. 6)::

    V' = V + dt (V^2 - V - U + I),  U' = U + dt theta_a (theta_b V - U),  S = H(V' - V_th)
    V <- theta_c,  U <- U' + theta_d   where S = 1            (n Euler sub-steps of dt / n per step)

(``docs/model.md#discretisation``; the surrogate, the reset and their gradients:
``docs/model.md#surrogate-gradient-and-reset``; the 1st-order neuron: ``docs/model.md#the-1st-order-neuron``.)

The forward op runs the recurrence and keeps only the current ``I`` and the state ``(V, U)`` at
checkpoints every ``every`` steps (every step on GPU, every 32 on CPU); the backward op recomputes each
segment from its checkpoint (bitwise: same code, no fused multiply-adds) and runs BPTT through ``V``,
``U``, the window surrogate and the reset in one reverse loop, giving the gradients of the input, the
initial state, theta_a..d, the threshold and the graded-spikes factor. Both are
``torch.library.custom_op``\ s with fake kernels, so ``torch.compile`` treats them as single graph nodes.

Kernels behind the ops (chosen per call by :func:`~mdn_snntorch.fused.dispatch.kernel_route`, the one place
that decides every path, and forced by :func:`~mdn_snntorch.fused.dispatch.use_kernel`): plain C on CPU
(:mod:`~mdn_snntorch.fused.c_kernels`), Triton on CUDA (:mod:`~mdn_snntorch.fused.triton_kernels`), and a
PyTorch loop (:mod:`~mdn_snntorch.fused.torch_loop`) everywhere else or when neither can be built.
The forward records which one ran; the backward uses the same.

The neurons pick their path with ``backend="auto" | "fused" | "reference"``; :func:`use_reference`
forces the reference loop everywhere inside a ``with`` block.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import torch

from mdn_snntorch.equations import V_TH
from mdn_snntorch.functional import FirstOrderTrace, MDNParameters, MDNState, MDNTrace, saved_or_stale
from mdn_snntorch.fused import c_kernels, dispatch, eager, memory, selfcheck
from mdn_snntorch.fused.dispatch import feature_shape

Tensor = torch.Tensor

_MODULES = dispatch.KERNEL_MODULES


@torch.compiler.assume_constant_result
def resolve_kernel(device_type: str, dtype: torch.dtype, neuron: str | None = None) -> str:
    """The kernel that runs the ops for tensors of this device type and dtype: the choice of
    :func:`~mdn_snntorch.fused.dispatch.kernel_route` (the self-check of a checked kernel included). Under
    ``torch.compile`` it is decided once, when the graph is traced."""
    if device_type == "cpu" and dispatch.config["kernel"] == "auto" and dtype in dispatch.KERNEL_DTYPES:
        if c_kernels.loaded() is not None and "c" not in selfcheck.CHECKED:  # the route's answer, without its reasons
            return "c"
    return dispatch.kernel_route(device_type, dtype, neuron)[0]


def _every(kernel: str, T: int) -> int:
    """Steps between the forward's state checkpoints: every step for Triton (it reads them back), else
    segments of :data:`~mdn_snntorch.fused.c_kernels.SEGMENT` steps recomputed by the backward."""
    return 1 if kernel == "triton" else min(T, c_kernels.SEGMENT)


def _module(kernel: str) -> ModuleType:
    return importlib.import_module(_MODULES[kernel])


def _flat(x: Tensor) -> Tensor:
    """``[T, ...] -> [T, M]``, contiguous."""
    return x.reshape(x.shape[0], -1).contiguous()


def _state(x: Tensor | None) -> Tensor | None:
    """``[...] -> [M]``, contiguous (``None`` stays ``None``)."""
    return None if x is None else x.reshape(-1).contiguous()


def _like(t: Tensor, shape: torch.Size) -> Tensor:
    """A kernel's ``[T, M]`` result back in ``shape``; an empty placeholder stays empty."""
    return t.view(shape) if t.numel() else t


def _new(x: Tensor, shape, wanted: bool = True) -> Tensor:
    """Fake-kernel output: ``shape`` like ``x``, or an empty placeholder."""
    return x.new_empty(shape) if wanted else x.new_empty(0)


def _checkpoints(T: int, every: int) -> int:
    return -(-T // every)


# ---------------------------------------------------------------------------------------------
# 2nd-order MDN
# ---------------------------------------------------------------------------------------------
def _mdn_forward_impl(
    x: Tensor,
    v0: Tensor,
    u0: Tensor,
    params: Tensor,
    dt: float,
    substeps: int,
    width: float,
    sigmoid: bool,
    traces: bool,
    kernel: str,
    every: int,
    undetached: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Forward over ``x [T, ...]`` from ``(v0, u0)`` (shape ``x[0]``) with ``params = (a, b, c, d, V_th, scale) [6, N]``.

    Returns ``(spikes * scale, v_T, u_T, v_trace, u_trace, I, checkpoints)``: spikes and traces
    ``[T, ...]`` (traces empty unless ``traces``), the final post-reset state, then what the backward
    needs: ``I = sigmoid(x)`` (empty unless ``sigmoid``) and ``(V, U)`` before every ``every``-th step,
    ``[ceil(T / every), 2, ...]``. ``width`` (the window surrogate's) and ``undetached`` (the spike's gradient
    through the reset) are for the backward; ``kernel`` is one of ``"c"``, ``"triton"``, ``"torch"``.
    """
    shape = x.shape
    if kernel == "c":  # in the op's body, which torch.compile does not trace: no graph break
        memory.ensure_default()  # the whole-sequence buffers reused, not faulted in afresh (fused/memory.py)
    spk, vT, uT, vtr, utr, I, ck = _module(kernel).mdn_forward(
        _flat(x), _state(v0), _state(u0), params.contiguous(), dt, substeps, sigmoid, traces, every
    )
    I = _like(I, shape) if sigmoid else x.new_empty(0)  # without the sigmoid, I is x itself: not returned
    return (
        _like(spk, shape),
        vT.view(shape[1:]),
        uT.view(shape[1:]),
        _like(vtr, shape),
        _like(utr, shape),
        I,
        ck.view(-1, 2, *shape[1:]),
    )


mdn_forward_op = torch.library.custom_op("mdn_snntorch::mdn_forward", mutates_args=())(_mdn_forward_impl)


@mdn_forward_op.register_fake
def _(x, v0, u0, params, dt, substeps, width, sigmoid, traces, kernel, every, undetached=False):
    T, S = x.shape, x.shape[1:]
    C = (_checkpoints(x.shape[0], every), 2, *S)
    return _new(x, T), _new(x, S), _new(x, S), _new(x, T, traces), _new(x, T, traces), _new(x, T, sigmoid), _new(x, C)


def _mdn_backward_impl(
    I: Tensor,
    checkpoints: Tensor,
    params: Tensor,
    grad_spikes: Tensor | None,
    grad_v_trace: Tensor | None,
    grad_u_trace: Tensor | None,
    grad_v_final: Tensor | None,
    grad_u_final: Tensor | None,
    dt: float,
    substeps: int,
    width: float,
    sigmoid: bool,
    kernel: str,
    every: int,
    undetached: bool = False,
    param_grads: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """BPTT of :func:`mdn_forward_op`: ``(grad_x, grad_v0, grad_u0, grad_params [6, N])``.

    ``I`` is the current (``sigmoid(x)`` when ``sigmoid``, then ``grad_x`` includes the sigmoid's
    derivative); missing gradients are ``None``. Without ``param_grads`` (no parameter needs a gradient: the
    neurons' parameters are fixed) ``grad_params`` is empty and the C kernel skips the parameters' sums.
    """
    shape = I.shape
    opt = lambda g: None if g is None else _flat(g)  # noqa: E731
    gx, gv0, gu0, gp = _module(kernel).mdn_backward(
        _flat(I),
        checkpoints.reshape(checkpoints.shape[0], 2, -1).contiguous(),
        params.contiguous(),
        opt(grad_spikes),
        opt(grad_v_trace),
        opt(grad_u_trace),
        _state(grad_v_final),
        _state(grad_u_final),
        dt,
        substeps,
        width,
        sigmoid,
        every,
        undetached,
        param_grads,
    )
    gp = gp.to(params.dtype) if param_grads else params.new_empty(0)
    return gx.view(shape), gv0.view(shape[1:]), gu0.view(shape[1:]), gp


mdn_backward_op = torch.library.custom_op("mdn_snntorch::mdn_backward", mutates_args=())(_mdn_backward_impl)


@mdn_backward_op.register_fake
def _(
    I,
    checkpoints,
    params,
    grad_spikes,
    grad_v_trace,
    grad_u_trace,
    grad_v_final,
    grad_u_final,
    dt,
    substeps,
    width,
    sigmoid,
    kernel,
    every,
    undetached=False,
    param_grads=True,
):
    return _new(I, I.shape), _new(I, I.shape[1:]), _new(I, I.shape[1:]), _new(params, params.shape, param_grads)


def _mdn_setup_context(ctx, inputs, output):
    x, v0, u0, params, dt, substeps, width, sigmoid, traces, kernel, every, undetached = inputs
    spk, vT, uT, vtr, utr, I, ck = output
    ctx.mark_non_differentiable(I, ck)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(I if sigmoid else x, ck, params)
    ctx.config = (dt, substeps, width, sigmoid, traces, kernel, every, undetached)


def _mdn_backward(ctx, g_spk, g_vT, g_uT, g_vtr, g_utr, _g_I, _g_ck):
    I, ck, params = saved_or_stale(ctx)  # StaleStateError names mdn.reset(net) when the graph was freed
    dt, substeps, width, sigmoid, traces, kernel, every, undetached = ctx.config
    if not traces:  # the empty placeholders' gradients (None, or empty under AOT tracing)
        g_vtr = g_utr = None
    param_grads = ctx.needs_input_grad[3]
    backward = _mdn_backward_direct if getattr(ctx, "direct", False) else mdn_backward_op  # (fused/eager.py)
    gx, gv0, gu0, gp = backward(
        I, ck, params, g_spk, g_vtr, g_utr, g_vT, g_uT, dt, substeps, width, sigmoid, kernel, every, undetached, param_grads
    )
    return gx, gv0, gu0, gp if param_grads else None, None, None, None, None, None, None, None, None


mdn_forward_op.register_autograd(_mdn_backward, setup_context=_mdn_setup_context)
#: the same in eager mode, without the dispatcher (mdn_snntorch/fused/eager.py)
_MDNForward = eager.function("mdn_snntorch::mdn_forward", _mdn_forward_impl, _mdn_setup_context, _mdn_backward)
_mdn_backward_direct = eager.named("mdn_snntorch::mdn_backward", _mdn_backward_impl)


def _per_neuron(values, inputs: Tensor) -> Tensor:
    """Stack the parameters into ``[len(values), N]`` in ``inputs``' dtype (differentiably): each is expanded
    to the per-sample feature shape of one step of ``inputs [T, B, ...]`` (:func:`~mdn_snntorch.fused.dispatch.feature_shape`)
    and flattened, so element ``e`` of a flattened step is neuron ``e % N``. Autograd sums the parameters'
    gradients back over the expanded dimensions."""
    if _one_or_per_neuron(values, inputs):  # [T, B, N] with each value () or (N,): what the general path gives
        N = inputs.shape[2]
        return torch.stack([v.expand(N) for v in values])
    shape = feature_shape(tuple(inputs.shape[1:]), values)
    if shape is None:
        raise ValueError(
            "the fused op needs parameters that broadcast against one step of the input without changing it "
            f"and do not vary along the batch dimension; got shapes {[tuple(getattr(v, 'shape', ())) for v in values]} "
            f"for steps of shape {tuple(inputs.shape[1:])}"
        )
    N = math.prod(shape)

    def flat(v) -> Tensor:
        t = torch.as_tensor(v, dtype=inputs.dtype, device=inputs.device)
        if t.dim() > len(shape):  # leading dimensions of size 1
            t = t.reshape(t.shape[t.dim() - len(shape) :])
        return t.expand(shape).reshape(N)

    return torch.stack([flat(v) for v in values])


def _one_or_per_neuron(values, inputs: Tensor) -> bool:
    """Whether ``inputs`` is ``[T, B, N]`` and every value a tensor of its dtype and device holding one value or one
    per neuron (shape ``()``, ``(1,)`` or ``(N,)``): the neurons' usual case, stacked without the general path's
    shape analysis."""
    if inputs.dim() != 3:
        return False
    N, dtype, device = inputs.shape[2], inputs.dtype, inputs.device
    for v in values:
        if type(v) is not torch.Tensor and not isinstance(v, torch.nn.Parameter):
            return False
        if v.dim() > 1 or (v.dim() == 1 and v.shape[0] not in (1, N)) or v.dtype != dtype or v.device != device:
            return False
    return True


def mdn_multistep(
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
    return_traces: bool = False,
    detach_reset: bool = True,
) -> MDNTrace:
    """The fused equivalent of ``functional.mdn_multistep(I, state, theta, spike_fn=window(width), ...)``
    with ``I = sigmoid(inputs)`` when ``input_sigmoid`` (else ``I = inputs``) and the spikes multiplied by
    ``graded_spikes_factor``. Same return value.

    Theta, the threshold and the factor may each be a float or a tensor that broadcasts against one step
    of ``inputs [T, B, ...]`` without changing it and does not vary along the batch: ``()``, ``(N,)`` for
    ``[T, B, N]``, ``(C, 1, 1)`` for ``[T, B, C, H, W]``...; all get gradients (of their own shapes) when they
    require them. ``detach_reset=False``: the undetached reset (the same spikes and state, the gradient of
    the spike through the reset as well; :func:`mdn_snntorch.functional.mdn_step`). An empty ``inputs``
    (``T = 0`` or an empty batch) gives empty spikes and traces and leaves the state as it is, like the
    reference loop.
    """
    params = _per_neuron((*theta, threshold, graded_spikes_factor), inputs)
    kernel = resolve_kernel(inputs.device.type, inputs.dtype)
    if inputs.numel() == 0:  # T = 0 or an empty batch: nothing to run, the state stays as it is
        empty = inputs.new_zeros(inputs.shape)
        return MDNTrace(empty, MDNState(state.v, state.u), empty, empty) if return_traces else MDNTrace(empty, state)
    every = _every(kernel, inputs.shape[0])
    args = (inputs, state.v, state.u, params, float(dt), int(substeps), float(width), bool(input_sigmoid), bool(return_traces),
            kernel, every, not detach_reset)  # fmt: skip
    op = _MDNForward.apply if eager.direct(inputs, state.v, state.u, params) else mdn_forward_op
    spk, vT, uT, vtr, utr, *_ = op(*args)
    if return_traces:
        return MDNTrace(spk, MDNState(vT, uT), utr, vtr)
    return MDNTrace(spk, MDNState(vT, uT))


# ---------------------------------------------------------------------------------------------
# 1st-order neuron
# ---------------------------------------------------------------------------------------------
def _first_order_forward_impl(
    x: Tensor,
    v0: Tensor,
    params: Tensor,
    width: float,
    sigmoid: bool,
    traces: bool,
    kernel: str,
    every: int,
    undetached: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Forward of ``V' = g V + I`` with ``params = (g, V_th, V_reset, scale) [4, N]``: ``(spikes * scale,
    v_T, v_trace, I, checkpoints [ceil(T / every), ...])`` (trace empty unless ``traces``, ``I`` unless ``sigmoid``)."""
    shape = x.shape
    if kernel == "c":
        memory.ensure_default()
    spk, vT, vtr, I, ck = _module(kernel).first_order_forward(_flat(x), _state(v0), params.contiguous(), sigmoid, traces, every)
    I = _like(I, shape) if sigmoid else x.new_empty(0)
    return _like(spk, shape), vT.view(shape[1:]), _like(vtr, shape), I, ck.view(-1, *shape[1:])


first_order_forward_op = torch.library.custom_op("mdn_snntorch::first_order_forward", mutates_args=())(_first_order_forward_impl)


@first_order_forward_op.register_fake
def _(x, v0, params, width, sigmoid, traces, kernel, every, undetached=False):
    T, S = x.shape, x.shape[1:]
    return _new(x, T), _new(x, S), _new(x, T, traces), _new(x, T, sigmoid), _new(x, (_checkpoints(x.shape[0], every), *S))


def _first_order_backward_impl(
    I: Tensor,
    checkpoints: Tensor,
    params: Tensor,
    grad_spikes: Tensor | None,
    grad_v_trace: Tensor | None,
    grad_v_final: Tensor | None,
    width: float,
    sigmoid: bool,
    kernel: str,
    every: int,
    undetached: bool = False,
    param_grads: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """BPTT of :func:`first_order_forward_op`: ``(grad_x, grad_v0, grad_params [4, N])`` (``param_grads``: as for
    :func:`mdn_backward_op`)."""
    shape = I.shape
    gx, gv0, gp = _module(kernel).first_order_backward(
        _flat(I),
        _flat(checkpoints),
        params.contiguous(),
        None if grad_spikes is None else _flat(grad_spikes),
        None if grad_v_trace is None else _flat(grad_v_trace),
        _state(grad_v_final),
        width,
        sigmoid,
        every,
        undetached,
        param_grads,
    )
    return gx.view(shape), gv0.view(shape[1:]), gp.to(params.dtype) if param_grads else params.new_empty(0)


first_order_backward_op = torch.library.custom_op("mdn_snntorch::first_order_backward", mutates_args=())(
    _first_order_backward_impl
)


@first_order_backward_op.register_fake
def _(I, checkpoints, params, grad_spikes, grad_v_trace, grad_v_final, width, sigmoid, kernel, every, undetached=False,
      param_grads=True):  # fmt: skip
    return _new(I, I.shape), _new(I, I.shape[1:]), _new(params, params.shape, param_grads)


def _first_order_setup_context(ctx, inputs, output):
    x, v0, params, width, sigmoid, traces, kernel, every, undetached = inputs
    spk, vT, vtr, I, ck = output
    ctx.mark_non_differentiable(I, ck)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(I if sigmoid else x, ck, params)
    ctx.config = (width, sigmoid, traces, kernel, every, undetached)


def _first_order_backward(ctx, g_spk, g_vT, g_vtr, _g_I, _g_ck):
    I, ck, params = saved_or_stale(ctx)
    width, sigmoid, traces, kernel, every, undetached = ctx.config
    if not traces:
        g_vtr = None
    param_grads = ctx.needs_input_grad[2]
    backward = _first_order_backward_direct if getattr(ctx, "direct", False) else first_order_backward_op
    gx, gv0, gp = backward(I, ck, params, g_spk, g_vtr, g_vT, width, sigmoid, kernel, every, undetached, param_grads)
    return gx, gv0, gp if param_grads else None, None, None, None, None, None, None


first_order_forward_op.register_autograd(_first_order_backward, setup_context=_first_order_setup_context)
_FirstOrderForward = eager.function(
    "mdn_snntorch::first_order_forward", _first_order_forward_impl, _first_order_setup_context, _first_order_backward
)
_first_order_backward_direct = eager.named("mdn_snntorch::first_order_backward", _first_order_backward_impl)


def first_order_multistep(
    inputs: Tensor,
    v: Tensor,
    *,
    decay: Tensor | float = 0.8,
    threshold: Tensor | float = V_TH,
    reset: Tensor | float = 0.0,
    width: float = 0.5,
    graded_spikes_factor: Tensor | float = 1.0,
    input_sigmoid: bool = False,
    return_traces: bool = False,
    detach_reset: bool = True,
) -> FirstOrderTrace:
    """The fused equivalent of ``functional.first_order_multistep(I, v, spike_fn=window(width), ...)``
    with ``I = sigmoid(inputs)`` when ``input_sigmoid`` and the spikes times ``graded_spikes_factor``.
    Same return value; the parameters' shapes as for :func:`mdn_multistep`."""
    params = _per_neuron((decay, threshold, reset, graded_spikes_factor), inputs)
    kernel = resolve_kernel(inputs.device.type, inputs.dtype)
    if inputs.numel() == 0:  # as in mdn_multistep
        empty = inputs.new_zeros(inputs.shape)
        return FirstOrderTrace(empty, v, empty if return_traces else None)
    every = _every(kernel, inputs.shape[0])
    args = (inputs, v, params, float(width), bool(input_sigmoid), bool(return_traces), kernel, every, not detach_reset)
    op = _FirstOrderForward.apply if eager.direct(inputs, v, params) else first_order_forward_op
    spk, vT, vtr, *_ = op(*args)
    return FirstOrderTrace(spk, vT, vtr if return_traces else None)
