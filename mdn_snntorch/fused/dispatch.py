"""Which path a neuron's ``multi_step`` takes: the fused op or the reference autograd loop.

This module is light (torch only): the neurons consult it on every call, and the custom ops and
kernels behind the fused path (:mod:`mdn_snntorch.fused.ops`) are imported only when it is taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from mdn_snntorch.surrogate import Window

Tensor = torch.Tensor

BACKENDS = ("auto", "fused", "reference")
KERNELS = ("auto", "c", "triton", "torch")
#: process-wide choices, changed only through the context managers below
config = {"reference": False, "kernel": "auto"}


@contextlib.contextmanager
def use_reference(enabled: bool = True) -> Iterator[None]:
    """Inside this block every ``MDN`` / ``FirstOrder`` with ``backend="auto"`` runs the reference
    autograd loop of :mod:`mdn_snntorch.functional` (``enabled=False`` re-enables the fused op)."""
    previous = config["reference"]
    config["reference"] = bool(enabled)
    try:
        yield
    finally:
        config["reference"] = previous


@contextlib.contextmanager
def use_kernel(name: str) -> Iterator[None]:
    """Force the kernel behind the fused ops: ``"c"`` (CPU), ``"triton"`` (CUDA), ``"torch"`` (any
    device) or ``"auto"`` (the default: C on CPU and Triton on CUDA for float32/float64, else the
    PyTorch loop, e.g. for float16/bfloat16)."""
    if name not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {name!r}")
    previous = config["kernel"]
    config["kernel"] = name
    try:
        yield
    finally:
        config["kernel"] = previous


def feature_shape(step_shape: tuple[int, ...], params) -> tuple[int, ...] | None:
    """The trailing part of one step's shape ``[B, ...]`` (``step_shape``) over which ``params`` vary: the
    kernels' neuron axis, flattened (the parameters are expanded to it). ``None`` when a parameter does not
    broadcast against the step without changing it, or varies along the batch (the first) dimension of a
    step with two or more dimensions. At least the last dimension, so ``(N,)`` for shared scalars on
    ``[B, N]``; ``()`` for a 0-dim step."""
    ndim = len(step_shape)
    k = min(ndim, 1)
    for p in params:
        shape = tuple(p.shape) if torch.is_tensor(p) else ()
        if len(shape) > ndim:
            return None
        for n, m in zip(reversed(shape), reversed(step_shape)):
            if n not in (1, m):
                return None
        lead = len(shape)
        while lead > 0 and shape[len(shape) - lead] == 1:  # leading 1s broadcast: they do not count
            lead -= 1
        k = max(k, lead)
    if ndim >= 2 and k == ndim:
        return None  # varies over the batch
    return tuple(step_shape[ndim - k :])


def unsupported(neuron, inputs: Tensor, states: tuple[Tensor, ...], params: tuple) -> str | None:
    """Why the fused op cannot run this call of ``neuron`` exactly as the reference loop would
    (``None`` if it can): spike functions other than :class:`~mdn_snntorch.surrogate.Window`
    (``surrogate_disable`` included), inhibition, mixed dtypes/devices of state and input, or
    parameters that do not broadcast against one step ``[B, ...]`` or vary along its batch dimension
    (see :func:`feature_shape`). (State quantisation never reaches here: the neurons run it step by step.)"""
    if type(neuron.spike_grad) is not Window:
        return f"spike_grad {neuron.spike_grad!r} is not the window surrogate"
    if neuron.inhibition:
        return "inhibition"
    if inputs.dim() < 1 or inputs.shape[0] < 1:
        return "an empty time axis"
    for s in states:
        if s.dtype != inputs.dtype or s.device != inputs.device or s.shape != inputs.shape[1:]:
            return "state and input differ in dtype, device or shape"
    if feature_shape(tuple(inputs.shape[1:]), (*params, neuron.threshold, neuron.graded_spikes_factor)) is None:
        return "a parameter does not broadcast against one step or varies along the batch dimension"
    return None


def use_fused(neuron, inputs: Tensor, states: tuple[Tensor, ...], params: tuple) -> bool:
    """Whether ``neuron.multi_step`` takes the fused op: ``backend="reference"`` or a
    :func:`use_reference` block never does, ``"auto"`` does whenever :func:`unsupported` finds nothing,
    ``"fused"`` must (``ValueError`` naming the reason otherwise)."""
    backend = neuron.backend
    if backend == "reference" or (backend == "auto" and config["reference"]):
        return False
    why = unsupported(neuron, inputs, states, params)
    if why is not None and backend == "fused":
        raise ValueError(f"{type(neuron).__name__}(backend='fused') cannot run this configuration: {why}")
    return why is None
