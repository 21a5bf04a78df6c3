"""Which path a neuron's call takes, decided in one place, with the reason every other path was passed over.

A single step (``forward`` of a ``step_mode="single"`` neuron) runs as

- ``"node:c"``: one autograd node that runs the fused op's C kernels with ``T = 1``, one call forward and one
  backward (:mod:`mdn_snntorch.fused.c_step`), where :func:`c_step_rejection` finds no reason against it,
- ``"node"``: one autograd node composing torch ops, with an explicit backward
  (:class:`~mdn_snntorch.functional.MDNStep`, :class:`~mdn_snntorch.functional.FirstOrderStep`; also the one
  ``torch.compile`` traces), or
- ``"step"``: the reference step, a composition of torch ops (:func:`~mdn_snntorch.functional.mdn_step`).

A sequence ``[T, B, ...]`` (``multi_step``, or ``forward`` of a ``step_mode="multi"`` neuron) runs as

- ``"fused:c"``, ``"fused:triton"`` or ``"fused:torch"``: the fused op (:mod:`mdn_snntorch.fused.ops`) with its
  C (CPU), Triton (CUDA) or PyTorch-loop (anywhere) kernel,
- ``"reference"``: the reference autograd loop (:func:`~mdn_snntorch.functional.mdn_multistep`), or
- ``"per-step:node:c"``, ``"per-step:node"`` / ``"per-step:step"``: one single step at a time (``state_quant`` and the recurrent
  neurons, whose every step needs the previous one's result).

:func:`route` gives the whole decision for a layer and an input, as a :class:`Route` (``neuron.explain(x)``
prints it). The neurons ask its parts on every call: :func:`step_rejections` and :func:`c_step_rejection` per
single step (a few attribute reads and comparisons) and :func:`sequence_path` per sequence; the fused op asks
:func:`kernel_route` (through ``ops.resolve_kernel``, decided once per graph under ``torch.compile``). The
first time the C kernels cannot run where they would (no compiler, a failed build, ``MDN_SNNTORCH_NO_CEXT``)
or triton is missing on a GPU, one warning names the reason and the cost.

This module is light (torch only at import): the kernels, their builder and the self-check are imported when
a kernel is chosen.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import torch

from mdn_snntorch.surrogate import Window

Tensor = torch.Tensor

BACKENDS = ("auto", "fused", "reference")
KERNELS = ("auto", "c", "triton", "torch")
#: the module of each kernel (the fused op imports the one it runs)
KERNEL_MODULES = {
    "c": "mdn_snntorch.fused.c_kernels",
    "triton": "mdn_snntorch.fused.triton_kernels",
    "torch": "mdn_snntorch.fused.torch_loop",
}
#: the dtypes the C and Triton kernels are built for (the PyTorch loop takes any)
KERNEL_DTYPES = (torch.float32, torch.float64)
#: process-wide choices, changed only through the context managers below
config = {"reference": False, "kernel": "auto"}
#: the cost named when the C kernels are missing: docs/performance.md#measured-figures, section 1
C_KERNEL_GAIN = "about 2x slower per training step at the paper's shape (docs/performance.md#measured-figures)"
_warned: set[str] = set()


class Route(NamedTuple):
    """The path a call takes (:data:`path`, one of the names in the module docstring), the paths passed
    over with the reason for each (``rejected``, in the order considered) and the call (``call``)."""

    path: str
    rejected: tuple[tuple[str, str], ...]
    call: str

    def __str__(self) -> str:
        lines = [f"{self.call}: {self.path} ({_DESCRIPTIONS[self.path]})"]
        lines += [f"  not {path}: {reason}" for path, reason in self.rejected]
        return "\n".join(lines)


_DESCRIPTIONS = {
    "node:c": "the single step as one autograd node, one C call forward and one backward",
    "node": "the single step as one autograd node",
    "step": "the reference single step, a composition of torch ops",
    "fused:c": "the fused op, C kernel",
    "fused:triton": "the fused op, Triton kernel",
    "fused:torch": "the fused op, PyTorch-loop kernel",
    "reference": "the reference autograd loop",
    "per-step:node:c": "one step at a time, each as one autograd node in C",
    "per-step:node": "one step at a time, each as one autograd node",
    "per-step:step": "one step at a time, each the reference step",
}


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


# ---------------------------------------------------------------------------------------------
# the single step
# ---------------------------------------------------------------------------------------------
def step_rejections(neuron) -> list[str]:
    """Why the single step of ``neuron`` cannot run as one autograd node (empty: it can). The node computes
    the window surrogate (``mdn.window``, any width) with either reset; anything else runs the reference step."""
    reasons = []
    if type(neuron.spike_grad) is not Window:
        reasons.append(_spike_fn_reason(neuron))
    if neuron.inhibition:
        reasons.append("inhibition=True (winner-take-all along dim 1)")
    return reasons


def _spike_fn_reason(neuron) -> str:
    if getattr(neuron, "surrogate_disable", False):
        return "surrogate_disable=True (no surrogate gradient)"
    return f"spike_grad={neuron.spike_grad!r} is not the window surrogate (mdn.window)"


def c_step_rejection(neuron, x: Tensor, states: tuple[Tensor, ...], params: tuple[Tensor, ...]) -> str | None:
    """Why a single step of ``neuron`` that runs as a node (:func:`step_rejections` empty) on ``x`` from ``states``,
    with its step parameters ``params`` in ``x``'s dtype, does not run in C (``None``: it does, ``"node:c"``). It
    needs eager mode, a CPU float32/float64 input, the C kernels built, the state in the input's shape, dtype and
    device, and parameters that broadcast against the input without varying along its batch dimension. Under
    ``use_kernel("c")`` a step the C kernels cannot run at all (another device or dtype, no kernels built) raises
    ``RuntimeError``, as the fused ops do."""
    if torch.compiler.is_compiling():
        return "under torch.compile (the compiler traces the PyTorch node)"
    kernel = config["kernel"]
    if kernel not in ("auto", "c"):
        return f"use_kernel({kernel!r})"
    why = _c_unavailable(x.device.type, x.dtype)
    if why is not None:
        if kernel == "c":  # forced, as for the fused ops (kernel_route)
            raise RuntimeError(f"use_kernel('c') cannot run a single step of {x.dtype} on {x.device.type}: {why}")
        return why
    if x.numel() == 0:
        return "an empty input"
    shape, dtype, device = x.shape, x.dtype, x.device
    for s in states:
        if s.shape != shape or s.dtype != dtype or s.device != device:
            return "the state differs from the input in dtype, device or shape"
    if step_feature_shape(shape, params) is None:
        return "a parameter does not broadcast against the input or varies along its batch dimension"
    return None


def step_feature_shape(step_shape: tuple[int, ...], params) -> tuple[int, ...] | None:
    """:func:`feature_shape` of tensors ``params``, remembered by the shapes."""
    return _feature_shape_of(tuple(step_shape), tuple([p.shape for p in params]))


def _step_route(neuron, call: str, x: Tensor, prefix: str = "") -> Route:
    reasons = step_rejections(neuron)
    if reasons:
        joined = "; ".join(reasons)
        return Route(prefix + "step", ((prefix + "node:c", joined), (prefix + "node", joined)), call)
    same = (prefix + "step", "the node computes this configuration (the same values)")
    why = c_step_rejection(neuron, x, *neuron._step_operands(x))
    if why is not None:
        return Route(prefix + "node", ((prefix + "node:c", why), same), call)
    fallback = (prefix + "node", "the C kernels run this step (the PyTorch node is the fallback)")
    return Route(prefix + "node:c", (fallback, same), call)


# ---------------------------------------------------------------------------------------------
# a sequence
# ---------------------------------------------------------------------------------------------
def feature_shape(step_shape: tuple[int, ...], params) -> tuple[int, ...] | None:
    """The trailing part of one step's shape ``[B, ...]`` (``step_shape``) over which ``params`` vary: the
    kernels' neuron axis, flattened (the parameters are expanded to it). ``None`` when a parameter does not
    broadcast against the step without changing it, or varies along the batch (the first) dimension of a
    step with two or more dimensions. At least the last dimension, so ``(N,)`` for shared scalars on
    ``[B, N]``; ``()`` for a 0-dim step."""
    return _feature_shape_of(tuple(step_shape), tuple(tuple(p.shape) if torch.is_tensor(p) else () for p in params))


@functools.lru_cache(maxsize=256)
def _feature_shape_of(step_shape: tuple[int, ...], shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """:func:`feature_shape` of parameters of these ``shapes``."""
    ndim = len(step_shape)
    k = min(ndim, 1)
    for shape in shapes:
        shape = tuple(shape)
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


def fused_rejections(neuron, inputs: Tensor, states: tuple[Tensor, ...], params: tuple) -> list[str]:
    """Why the fused op cannot run this call of ``neuron`` exactly as the reference loop would (empty: it
    can): a spike function other than :class:`~mdn_snntorch.surrogate.Window` (``surrogate_disable``
    included), inhibition, a state of another dtype, device or shape than the input's
    steps, or parameters that do not broadcast against one step ``[B, ...]`` or vary along its batch
    dimension (:func:`feature_shape`). (``state_quant`` is a reason to run per step: :func:`sequence_path`.)"""
    reasons = []
    if type(neuron.spike_grad) is not Window:
        reasons.append(_spike_fn_reason(neuron))
    if neuron.inhibition:
        reasons.append("inhibition=True (winner-take-all along dim 1)")
    step_shape = inputs.shape[1:]
    if any(s.dtype != inputs.dtype or s.device != inputs.device or s.shape != step_shape for s in states):
        reasons.append("the state differs from the input's steps in dtype, device or shape")
    if feature_shape(tuple(step_shape), (*params, neuron.threshold, neuron.graded_spikes_factor)) is None:
        reasons.append("a parameter does not broadcast against one step or varies along the batch dimension")
    return reasons


def _per_step_reason(neuron) -> str | None:
    """Why a sequence of ``neuron`` runs one single step at a time (``None``: it runs in one call)."""
    if getattr(neuron, "recurrent", None) is not None:
        return "a recurrent neuron: every step needs the previous step's spikes"
    if neuron.state_quant:
        return "state_quant quantises the state between steps"
    return None


def _backend_reason(neuron) -> str | None:
    """Why the backend setting itself excludes the fused op (``None``: it does not)."""
    if neuron.backend == "reference":
        return "backend='reference'"
    if neuron.backend == "auto" and config["reference"]:
        return "inside mdn.use_reference()"
    return None


def sequence_path(neuron, inputs: Tensor, states: tuple[Tensor, ...], params: tuple) -> str:
    """How ``neuron.multi_step`` runs ``inputs [T, B, ...]`` from ``states`` with its dynamic ``params`` (in the
    inputs' dtype): ``"per-step"``, ``"fused"`` (the op then picks its kernel, :func:`kernel_route`) or
    ``"reference"``. ``backend="fused"`` raises ``ValueError`` naming every reason the op cannot run it."""
    per_step = _per_step_reason(neuron)
    backend = _backend_reason(neuron)
    if per_step is None and backend is not None:
        return "reference"
    reasons = [per_step] if per_step is not None else fused_rejections(neuron, inputs, states, params)
    if reasons and neuron.backend == "fused":
        raise ValueError(f"{type(neuron).__name__}(backend='fused') cannot run this configuration: {'; '.join(reasons)}")
    return "per-step" if per_step is not None else "reference" if reasons else "fused"


# ---------------------------------------------------------------------------------------------
# the fused op's kernel
# ---------------------------------------------------------------------------------------------
def _c_unavailable(device_type: str, dtype: torch.dtype) -> str | None:
    """Why the C kernels cannot run tensors of this device type and dtype here (``None``: they can)."""
    if device_type != "cpu":
        return "not a CPU tensor"
    if dtype not in KERNEL_DTYPES:
        return f"{dtype} (the C kernels take float32 and float64)"
    from mdn_snntorch.fused import c_kernels

    if c_kernels.library() is not None:
        return None
    if os.environ.get("MDN_SNNTORCH_NO_CEXT", "") not in ("", "0"):
        return "the C kernels are not available: MDN_SNNTORCH_NO_CEXT is set"
    if c_kernels._compiler() is None:
        return "the C kernels are not available: no C compiler was found ($CC, cc, gcc, clang)"
    return _BUILD_FAILED


#: the C kernels' builder warns about a failed build or load itself, with the compiler's words and the cost
_BUILD_FAILED = "the C kernels are not available: building or loading them failed (the warning before says why)"


def _triton_unavailable(device_type: str, dtype: torch.dtype) -> str | None:
    """Why the Triton kernels cannot run tensors of this device type and dtype here (``None``: they can)."""
    if device_type != "cuda":
        return "not a CUDA tensor"
    if dtype not in KERNEL_DTYPES:
        return f"{dtype} (the Triton kernels take float32 and float64)"
    if not importlib.import_module(KERNEL_MODULES["triton"]).available():
        return "triton is not installed (pip install triton)"
    return None


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"mdn_snntorch: {message} This warning is shown once.", RuntimeWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package and torch: the user's line."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith((package, os.path.dirname(torch.__file__))):
        frame, level = frame.f_back, level + 1
    return level


def kernel_route(
    device_type: str, dtype: torch.dtype, neuron: str | None = None, *, warn: bool = True
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The kernel that runs the fused ops for tensors of this device type and dtype under the current
    :func:`use_kernel` choice, and the kernels passed over with the reason for each.

    Under ``"auto"``: C on CPU and Triton on CUDA for float32/float64, else the PyTorch loop; a kernel of
    :data:`selfcheck.CHECKED <mdn_snntorch.fused.selfcheck.CHECKED>` (Triton) only once it has matched the exact
    PyTorch loop on a fixed problem (``neuron``: ``"mdn"`` or ``"first_order"``; ``None``: both;
    :mod:`~mdn_snntorch.fused.selfcheck`). A forced kernel that cannot run raises ``RuntimeError``. ``warn``:
    warn once when the C (or Triton) kernels would run but are not available."""
    choice = config["kernel"]
    why = {"c": _c_unavailable(device_type, dtype), "triton": _triton_unavailable(device_type, dtype), "torch": None}
    if choice != "auto":
        if why[choice] is not None:
            raise RuntimeError(f"use_kernel({choice!r}) cannot run {dtype} tensors on {device_type}: {why[choice]}")
        return choice, tuple((k, f"use_kernel({choice!r})") for k in ("c", "triton", "torch") if k != choice)
    if warn:
        _warn_unavailable(why, device_type, dtype)
    rejected = [(k, why[k]) for k in ("c", "triton") if why[k] is not None]
    kernel = "c" if why["c"] is None else "triton" if why["triton"] is None else "torch"
    if kernel != "torch":
        from mdn_snntorch.fused import selfcheck

        if not selfcheck.passed(kernel, dtype, device_type, neuron, KERNEL_MODULES[kernel]):
            rejected.append((kernel, "it did not match the exact PyTorch loop in its first-use self-check (see the warning)"))
            kernel = "torch"
    if kernel != "torch":
        name = {"c": "C", "triton": "Triton"}[kernel]
        rejected.append(("torch", f"the {name} kernel runs this call (the PyTorch loop is the fallback)"))
        rejected.sort(key=lambda r: ("c", "triton", "torch").index(r[0]))
    return kernel, tuple(rejected)


def _warn_unavailable(why: dict[str, str | None], device_type: str, dtype: torch.dtype) -> None:
    """The one-time warning when the compiled kernels would run these tensors but are not available."""
    if device_type == "cpu" and dtype in KERNEL_DTYPES and why["c"] not in (None, _BUILD_FAILED):
        _warn_once("c", f"{why['c']}; the fused op runs the PyTorch-loop kernel instead: the same results, {C_KERNEL_GAIN}.")
    if device_type == "cuda" and dtype in KERNEL_DTYPES and why["triton"] is not None:
        _warn_once(
            "triton", f"{why['triton']}; the fused op runs the PyTorch-loop kernel on the GPU instead: the same results, slower."
        )


# ---------------------------------------------------------------------------------------------
# the whole decision
# ---------------------------------------------------------------------------------------------
def route(neuron, x: Tensor, *, sequence: bool | None = None) -> Route:
    """The path ``neuron`` takes for input ``x`` and the reason for every path it passes over (see the module
    docstring). ``sequence``: whether ``x`` is a whole ``[T, B, ...]`` sequence (``multi_step``); by default
    what ``forward`` does with it (``step_mode``). Runs nothing but the kernel self-check, when one is due."""
    sequence = neuron.step_mode == "multi" if sequence is None else bool(sequence)
    what = f"{type(neuron).__name__}({neuron.extra_repr()}) on {'a sequence' if sequence else 'one step'} "
    call = what + f"{list(x.shape)} of {str(x.dtype).removeprefix('torch.')} on {x.device.type}"
    if not sequence:
        return _step_route(neuron, call, x)
    states, params = neuron._sequence_operands(x)
    per_step = _per_step_reason(neuron)
    if per_step is not None:
        step = _step_route(neuron, call, x[0] if x.shape[0] else x.new_zeros(x.shape[1:]), "per-step:")
        others = tuple((p, per_step) for p in ("fused:c", "fused:triton", "fused:torch", "reference"))
        return Route(step.path, step.rejected + others, call)
    one_call = ("per-step", "no state_quant, not recurrent: the whole sequence runs in one call")
    backend = _backend_reason(neuron)
    reasons = fused_rejections(neuron, x, states, params) if backend is None else [backend]
    if reasons and neuron.backend == "fused":
        raise ValueError(f"{type(neuron).__name__}(backend='fused') cannot run this configuration: {'; '.join(reasons)}")
    if reasons:
        fused = tuple((p, "; ".join(reasons)) for p in ("fused:c", "fused:triton", "fused:torch"))
        return Route("reference", (*fused, one_call), call)
    kernel, kernels = kernel_route(x.device.type, x.dtype, warn=False)
    rejected = tuple((f"fused:{k}", reason) for k, reason in kernels)
    by = "backend='fused'" if neuron.backend == "fused" else "backend='auto' takes the fused op where it applies"
    return Route(f"fused:{kernel}", (*rejected, ("reference", by), one_call), call)
