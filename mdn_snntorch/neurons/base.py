"""snnTorch plumbing shared by the neurons of this package (:class:`~mdn_snntorch.MDN`,
:class:`~mdn_snntorch.FirstOrder` and their recurrent forms): constructor vocabulary, broadcastable
parameters, input checks, lazily shaped state, the single-step / whole-sequence switch (``step_mode``),
exact parameter values across dtype changes, the 2-SDS stability-horizon warning, and the class-wide
``reset_hidden`` / ``detach_hidden``.

Parameter shapes (docs/snntorch.md#parameter-shapes): each dynamic parameter (theta, decay) is a tensor
that broadcasts against one step's input ``[B, ...]`` without changing its shape, as snnTorch broadcasts
``beta``: ``()`` shared, ``(N,)`` per neuron of ``[B, N]``, ``(C, 1, 1)`` per channel of ``[B, C, H, W]``.
``num_neurons=N`` is the shorthand for ``(N,)``, the last dimension of a ``[B, N]`` input; a shape
``(N,)`` on an input with more than one feature dimension is refused (say ``param_shape=(C, 1, 1)`` or
``(1, 1, W)``), since it would silently act along the last axis.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from snntorch import SpikingNeuron
from torch import nn

from mdn_snntorch.fused import dispatch
from mdn_snntorch.surrogate import heaviside, window

STEP_MODES = ("single", "multi")
#: steps after which a neuron with theta_a < 0 (2-SDS-like) leaves its stability horizon at dt = 1
#: (docs/model.md#tolerances: the horizon of 2-SDS under the sine stimulus is step 121)
HORIZON_STEPS = 120


class CStepPlan(NamedTuple):
    """The C single step as decided for one input shape and dtype, kept by the neuron so that the next steps skip the
    decision and the packing (:meth:`MDNFamilyNeuron._known_c_step`): its ``key`` (:meth:`MDNFamilyNeuron._c_plan_key`),
    the step ``params`` and their ``packed`` form (:class:`~mdn_snntorch.fused.c_step.StepParams`), the autograd
    ``node`` and the ``finite`` counter class of :mod:`mdn_snntorch.fused.c_step`, and the C library it was decided
    with (``kernels``: :mod:`~mdn_snntorch.fused.c_kernels`, whose loaded library must still be ``lib``). ``copies``:
    the packing copied a parameter (expanded to the feature shape, or made contiguous), so it is packed again at every
    step: a copy would miss a change made through ``.data``, which no version counter sees, while the kernels read
    every other parameter where it lies."""

    key: tuple | None
    params: tuple[torch.Tensor, ...]
    packed: Any
    node: type
    finite: type
    kernels: Any
    lib: Any
    copies: bool


class StabilityHorizonWarning(RuntimeWarning):
    """A neuron with theta_a < 0 ran past its stability horizon since its state was reset (a category of its own,
    so that code that reads such responses on purpose, like the meta-neuron characterisation, can silence it)."""


def _as_tensor(value, dtype, device) -> torch.Tensor:
    """A float tensor copy of ``value``; python floats are converted straight to ``dtype`` (no float32 detour)."""
    if torch.is_tensor(value):
        t = value.detach().to(device=device)
        if dtype is not None or not t.is_floating_point():
            t = t.to(dtype or torch.get_default_dtype())
        return t.clone()
    return torch.tensor(float(value), dtype=dtype or torch.get_default_dtype(), device=device)


def _all_finite(x: torch.Tensor, also: torch.Tensor | None = None) -> bool:
    """Whether ``x`` (and ``also``) hold no NaN or inf: one fast reduction and one device sync (their sums are
    finite), or, when a sum is not (non-finite entries, or finite ones overflowing), the exact elementwise check."""
    total = x.detach().sum()
    if also is not None:
        total = total + also.detach().sum()
    if math.isfinite(total.item()):
        return True
    return bool(torch.isfinite(x).all()) and (also is None or bool(torch.isfinite(also).all()))


def finite_number(name: str, value, owner: str) -> None:
    """``ValueError`` naming ``owner``'s argument ``name`` unless ``value`` (a number or tensor) is finite."""
    try:
        finite = bool(torch.isfinite(torch.as_tensor(value, dtype=torch.float64)).all())
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}") from None
    if not finite:
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")


def step_like(x: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like one step of the sequence ``x [T, ...]`` (``x[0]``, or zeros when ``T = 0``)."""
    return x[0] if x.shape[0] else x.new_zeros(x.shape[1:])


def stack_steps(steps: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """``torch.stack(steps)``, or an empty ``[0, ...]`` tensor like ``like`` (a sequence) when there are none."""
    return torch.stack(steps) if steps else like.new_zeros(like.shape)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts against ``target`` without changing it."""
    try:
        return tuple(torch.broadcast_shapes(shape, target)) == target
    except RuntimeError:
        return False


def build_params(
    names: Sequence[str],
    values: Sequence,
    *,
    num_neurons: int | None,
    param_shape: Sequence[int] | None,
    dtype,
    device,
    what: str = "theta",
    learn: bool = False,
    learn_name: str = "learn_theta",
) -> tuple[list[torch.Tensor], dict[str, float], tuple[int, ...] | None]:
    """Validated parameter tensors of one common shape, the python floats they came from (by name) and that shape.

    The shape is ``param_shape``, else ``(num_neurons,)``, else the broadcast of the given tensors' shapes
    (``None``: all shared scalars). Every value must broadcast to it; scalars are expanded to it.

    A tensor that requires grad is trained as given or refused (a frozen copy would silently never see its
    gradient): with ``learn`` an ``nn.Parameter`` already of that shape, dtype and device is returned itself
    (the layer registers that very tensor); any other one is a ``ValueError`` naming ``learn_name``.
    """
    if num_neurons is not None and (isinstance(num_neurons, bool) or not isinstance(num_neurons, int) or num_neurons < 1):
        raise ValueError(f"num_neurons must be a positive int or None, got {num_neurons!r}")
    if param_shape is not None:
        param_shape = tuple(int(n) for n in param_shape)
        if any(n < 1 for n in param_shape):
            raise ValueError(f"param_shape must be positive sizes, got {param_shape}")
        if num_neurons is not None and param_shape != (num_neurons,):
            raise ValueError(f"num_neurons={num_neurons} and param_shape={param_shape} disagree; give one of them")
    tensors = [_as_tensor(v, dtype, device) for v in values]
    exact = {n: float(v) for n, v in zip(names, values) if not torch.is_tensor(v)}
    target = param_shape if param_shape is not None else (num_neurons,) if num_neurons is not None else None
    if target is None:
        try:
            common = tuple(torch.broadcast_shapes(*(t.shape for t in tensors)))
        except RuntimeError:
            shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors))
            raise ValueError(
                f"{what} tensors disagree on the number of neurons: {shapes} (their shapes must broadcast together)"
            ) from None
        target = common or None
    for name, t in zip(names, tensors):
        if target is not None and not _broadcasts_to(tuple(t.shape), target):
            want = (
                f"() or (num_neurons,) = {target}"
                if param_shape is None and num_neurons is not None
                else f"a shape that broadcasts to {target}"
            )
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {want}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} is not finite: {t}")
    if target is not None:
        tensors = [t if tuple(t.shape) == target else t.expand(target).clone() for t in tensors]
    for i, (name, value) in enumerate(zip(names, values)):
        if torch.is_tensor(value) and value.requires_grad:
            tensors[i] = _as_given(name, value, tensors[i], learn, learn_name)
    return tensors, exact, target


def _as_given(name: str, value: torch.Tensor, copy: torch.Tensor, learn: bool, learn_name: str) -> torch.Tensor:
    """``value`` itself when it can be registered as the layer's parameter (see :func:`build_params`), else ``ValueError``."""
    if not learn:
        raise ValueError(
            f"{name} requires grad, but with {learn_name}=False it is copied into a frozen buffer that never receives a "
            f"gradient: pass {learn_name}=True to train it, or {name}.detach() to use its values frozen"
        )
    if isinstance(value, nn.Parameter) and (value.shape, value.dtype, value.device) == (copy.shape, copy.dtype, copy.device):
        return value
    raise ValueError(
        f"{name} requires grad but cannot be registered as given: the layer trains an nn.Parameter of shape "
        f"{tuple(copy.shape)}, {copy.dtype} on {copy.device}, and this is a {type(value).__name__} of shape "
        f"{tuple(value.shape)}, {value.dtype} on {value.device}; pass it in that form to train it in place, or "
        f"{name}.detach() to start the layer's own parameter from its values"
    )


class MDNFamilyNeuron(SpikingNeuron):
    """Base of the neurons in this package; not used directly.

    Subclasses name their state buffers in ``_state_names`` (the first one has the input's shape), their
    broadcastable dynamic parameters in ``_param_names``, and implement ``_initial_states``.
    """

    _state_names: tuple[str, ...] = ()
    _param_names: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        threshold: float,
        spike_grad,
        surrogate_disable: bool,
        init_hidden: bool,
        inhibition: bool,
        learn_threshold: bool,
        state_quant,
        output: bool,
        graded_spikes_factor: float,
        learn_graded_spikes_factor: bool,
        input_sigmoid: bool,
        check_input: bool,
        num_neurons: int | None,
        step_mode: str = "single",
        dtype: torch.dtype | None = None,
        device=None,
        detach_reset: bool = True,
    ):
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
        for name, value in (("threshold", threshold), ("graded_spikes_factor", graded_spikes_factor)):
            finite_number(name, value.detach() if torch.is_tensor(value) else value, type(self).__name__)
        super().__init__(
            threshold,
            spike_grad if spike_grad is not None else window(),
            surrogate_disable,
            init_hidden,
            inhibition,
            learn_threshold,
            "zero",  # both neuron orders reset to a value (theta_c or V_reset), never by subtraction
            state_quant,
            output,
            graded_spikes_factor,
            learn_graded_spikes_factor,
        )
        if surrogate_disable:
            self.spike_grad = heaviside  # snnTorch's bypass casts to float32; this keeps the dtype
        self.num_neurons = num_neurons
        self.input_sigmoid = bool(input_sigmoid)
        self.check_input = bool(check_input)
        self.step_mode = step_mode
        self.detach_reset = bool(detach_reset)
        #: python floats of the non-learnable parameters, re-derived in the new dtype by .double() / .to()
        self._exact: dict[str, float] = {}
        for name, value, learn in (
            ("threshold", threshold, learn_threshold),
            ("graded_spikes_factor", graded_spikes_factor, learn_graded_spikes_factor),
        ):
            if not torch.is_tensor(value):
                t = torch.tensor(float(value), dtype=dtype or torch.get_default_dtype(), device=device)
                if learn:
                    setattr(self, name, nn.Parameter(t))
                else:
                    self._buffers[name] = t
                    self._exact[name] = float(value)
        self._checked_shape: tuple[int, ...] | None = None
        self._unit_scale: tuple | None = None
        self._c_plan: CStepPlan | None = None
        self._steps = 0
        self._horizon_warned = False
        self._nonfinite_warned = False
        for name in self._state_names:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    # ---- parameters --------------------------------------------------------------------
    def _register_params(self, tensors, exact: dict[str, float], learn: bool) -> None:
        for name, t in zip(self._param_names, tensors):
            if learn:
                setattr(self, name, t if isinstance(t, nn.Parameter) else nn.Parameter(t))
            else:
                self.register_buffer(name, t)
                if name in exact:
                    self._exact[name] = exact[name]

    def _tensor(self, name: str) -> torch.Tensor:
        """Buffer or parameter ``name`` (dict lookups: ``nn.Module.__getattr__`` costs a microsecond a call)."""
        t = self._buffers.get(name)
        return self._parameters[name] if t is None else t

    def _param_as(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """Parameter ``name`` in ``dtype``; a value built from a python float is re-derived from it (exact)."""
        t = self._tensor(name)
        if t.dtype == dtype:
            return t
        if name in self._exact and not isinstance(t, nn.Parameter):
            return torch.full(t.shape, self._exact[name], dtype=dtype, device=t.device)
        return t.to(dtype)

    def __getstate__(self) -> dict:
        """The module's state for pickling and ``copy.deepcopy``, without the remembered C step (it holds the loaded
        library; a copy decides its own on its first step)."""
        state = super().__getstate__()
        state["_c_plan"] = None
        return state

    def _apply(self, fn, recurse=True):
        """``.double()``, ``.to(dtype)``, ``.cuda()`` ...: parameters that came from python floats (presets,
        floats) and are not learnable are re-derived from those floats in the new dtype, as ``dtype=`` does."""
        super()._apply(fn, recurse)
        for name, value in self._exact.items():
            t = self._buffers.get(name)
            if t is not None and t.is_floating_point():
                self._buffers[name] = torch.full_like(t, value)
        self._unit_scale = None
        self._c_plan = None
        return self

    def _scale_arg(self, dtype: torch.dtype, compiling: bool) -> torch.Tensor | None:
        """The graded-spikes factor for the fast steps in ``dtype``: ``None`` when it is a fixed 1 (one
        multiplication less), else the tensor. On the CPU its value is read at every call (a change through ``.data``
        moves no version counter); on a GPU, where reading it waits for the device, the answer is kept while the
        buffer's identity, version counter and memory stay the same."""
        g = self._tensor("graded_spikes_factor")
        if g.requires_grad or compiling:
            return self._param_as("graded_spikes_factor", dtype)
        if g.is_cpu:
            return None if g.numel() == 1 and float(g) == 1.0 else self._param_as("graded_spikes_factor", dtype)
        key = (id(g), g._version, g.data_ptr())
        cached = self.__dict__["_unit_scale"]
        if cached is None or cached[0] != key:
            cached = self.__dict__["_unit_scale"] = (key, g.numel() == 1 and float(g) == 1.0)
        return None if cached[1] else self._param_as("graded_spikes_factor", dtype)

    def _fast_step_ok(self) -> bool:
        """Whether the single step runs as one autograd node (:func:`mdn_snntorch.fused.dispatch.step_rejections`)."""
        return not dispatch.step_rejections(self)

    def _step_path(
        self, x: torch.Tensor, states: tuple[torch.Tensor, ...], params: tuple[torch.Tensor, ...], compiling: bool
    ) -> str:
        """Which single step runs on ``x`` from ``states`` with ``params``: ``"c"`` (the C node), ``"node"`` (the
        PyTorch node) or ``"step"`` (the reference step); the decision :func:`~mdn_snntorch.fused.dispatch.route`
        explains."""
        if not self._fast_step_ok():
            return "step"
        return "node" if compiling or dispatch.c_step_rejection(self, x, states, params) is not None else "c"

    def _decide_step(self, x: torch.Tensor, states: tuple[torch.Tensor, ...], compiling: bool):
        """``(params, path, plan)`` of a single step on ``x`` from ``states``: the remembered C step where it still holds
        (:meth:`_known_c_step`, path ``"c"``), else the step parameters and the path decided afresh (plan ``None``)."""
        plan = self._known_c_step(x, states, compiling)
        if plan is not None:
            return plan.params, "c", plan
        params = self._step_params(x.dtype)
        return params, self._step_path(x, states, params, compiling), None

    def _step_params(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """Every parameter of one step in ``dtype``, in the kernels' order (the graded-spikes factor last)."""
        raise NotImplementedError

    def _step_operands(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """The state a single step on ``x`` starts from (in the kernels' order, ``V`` first) and its parameters."""
        return self._sequence_operands(x.unsqueeze(0))[0], self._step_params(x.dtype)

    #: the node of :mod:`mdn_snntorch.fused.c_step` that runs this neuron's single step in C
    _c_node: str = ""
    #: the single step's parameters by name, in the order of :meth:`_step_params` (each as ``_param_as`` returns it)
    _step_param_names: tuple[str, ...] = ()

    def _c_plan_key(self, x: torch.Tensor) -> tuple | None:
        """What the C step's path and packed parameters for ``x`` depend on besides the state: the input's shape and
        dtype, the forced kernel, the surrogate's type and the inhibition (:func:`~mdn_snntorch.fused.dispatch.
        step_rejections`), and each stored parameter's identity and version. ``None`` where a parameter is not in
        ``x``'s dtype (its step value is then a new tensor every call) or ``x`` is not on the CPU."""
        if not x.is_cpu:
            return None
        key = [x.shape, x.dtype, dispatch.config["kernel"], type(self.spike_grad), self.inhibition]
        for name in self._step_param_names:
            t = self._tensor(name)
            if t.dtype != x.dtype:
                return None
            key += (id(t), t._version, t.data_ptr())  # (``p.data = other`` keeps the version, not the memory)
        return tuple(key)

    def _known_c_step(self, x: torch.Tensor, states: tuple[torch.Tensor, ...], compiling: bool) -> CStepPlan | None:
        """The remembered C step for ``x`` from ``states`` (:class:`CStepPlan`), or ``None``: decide again (the first
        call, a change of input shape or dtype, of a parameter or of a setting the decision reads)."""
        plan = self.__dict__.get("_c_plan")  # (absent from a neuron pickled before it existed)
        if plan is None or compiling or plan.kernels._state.get("lib") is not plan.lib or plan.key != self._c_plan_key(x):
            return None
        shape, dtype = x.shape, x.dtype
        for s in states:
            if s.shape != shape or s.dtype != dtype or not s.is_cpu:
                return None
        return plan

    def _c_step(self, x: torch.Tensor, states, params, config: tuple, check: bool, plan: CStepPlan | None = None):
        """The C single step (:attr:`_c_node`) on ``x`` from ``states`` with ``params``; ``check``: the kernel counts
        non-finite input (``ValueError``) and membrane (the one-time warning) values as it runs. ``plan``: the
        remembered packing of ``params`` (:meth:`_known_c_step`); without, they are packed and remembered."""
        if plan is None:
            from mdn_snntorch.fused import c_kernels, c_step  # with the kernels, on first use

            packed = c_step.step_params(params, dispatch.step_feature_shape(x.shape, params))
            node, copies = getattr(c_step, self._c_node), any(k is not p for k, p in zip(packed.tensors, params))
            plan = CStepPlan(self._c_plan_key(x), params, packed, node, c_step.Finite, c_kernels, c_kernels.library(), copies)
            self._c_plan = plan if plan.key is not None else None
        elif plan.copies:
            from mdn_snntorch.fused import c_step

            plan = plan._replace(packed=c_step.step_params(plan.params, plan.packed.shape))
        finite = plan.finite(check, check and not self.__dict__["_nonfinite_warned"])
        out = plan.node.apply(x.contiguous(), *[s.contiguous() for s in states], *plan.params, plan.packed, *config, finite)
        if finite.input:
            raise self._nonfinite_input()
        if finite.membrane:
            self._warn_nonfinite(self._steps)
        return out

    def explain(self, x: torch.Tensor, *, sequence: bool | None = None) -> dispatch.Route:
        """The path a call with input ``x`` takes and why every other path is passed over
        (:func:`mdn_snntorch.fused.dispatch.route`; ``print`` it). ``sequence``: ``x`` is a whole ``[T, B, ...]``
        sequence for :meth:`multi_step` (default: what ``forward`` does with it, by ``step_mode``)."""
        sequence = self.step_mode == "multi" if sequence is None else sequence
        self._checked_input(x, sequence=sequence, compiling=True)  # dtype and shape only
        return dispatch.route(self, x, sequence=sequence)

    def _sequence_operands(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple]:
        """The state a sequence ``x`` starts from (created as :meth:`_ensure_states` would) and the dynamic
        parameters in ``x``'s dtype, as the path decision sees them."""
        like = step_like(x)
        states = [getattr(self, n) for n in self._path_state_names]
        if states[0].shape != like.shape:
            fresh = dict(zip(self._state_names, self._initial_states(like)))
            states = [fresh[n] for n in self._path_state_names]
        return tuple(states), self._path_params(x.dtype)

    _path_state_names: tuple[str, ...] = ()

    def _path_params(self, dtype: torch.dtype) -> tuple:
        raise NotImplementedError

    # ---- input -------------------------------------------------------------------------
    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """Every dynamic parameter must broadcast against one step's input (shape ``shape``) without changing it."""
        if shape == self.__dict__["_checked_shape"]:
            return
        name = type(self).__name__
        for pname in self._param_names:
            ps = tuple(getattr(self, pname).shape)
            if len(ps) == 1 and ps[0] > 1 and len(shape) > 2:
                raise ValueError(
                    f"{name} has per-neuron parameters of shape {ps} (num_neurons={ps[0]}), which act on the last "
                    f"dimension, but one step of its input has shape {shape}, with more than one feature dimension. "
                    "Give param_shape with one entry per feature dimension instead: e.g. param_shape=(C, 1, 1) for one "
                    "value per channel of [B, C, H, W], (1, 1, W) for one per column, (C, H, W) for one per pixel."
                )
            if not _broadcasts_to(ps, shape):
                if len(ps) == 1:
                    raise ValueError(
                        f"{name} has per-neuron parameters for num_neurons={ps[0]}, but its input has shape "
                        f"{shape} (last dimension must be {ps[0]})"
                    )
                raise ValueError(
                    f"{name}.{pname} has shape {ps}, which does not broadcast against one step of its input "
                    f"(shape {shape}) without changing it"
                )
        if not torch.compiler.is_compiling():
            self.__dict__["_checked_shape"] = shape

    def _checked_input(
        self, input_: torch.Tensor, sequence: bool = False, compiling: bool | None = None, finite: bool = True
    ) -> torch.Tensor:
        """The input after checking dtype, shape against the parameters, and (``finite``) finiteness (no sigmoid)."""
        if not torch.is_tensor(input_) or not input_.is_floating_point():
            name = type(self).__name__
            raise TypeError(f"{name} input must be a floating-point tensor, got {getattr(input_, 'dtype', type(input_))}")
        if sequence and input_.dim() < 1:
            raise ValueError(f"{type(self).__name__} needs a sequence [T, ...] here, got a 0-dim tensor")
        shape = input_.shape[1:] if sequence else input_.shape
        if shape != self.__dict__["_checked_shape"]:
            self._check_shape(tuple(shape))
        if not finite or not self.check_input:
            return input_
        if not (torch.compiler.is_compiling() if compiling is None else compiling):
            self._check_finite(input_, sequence)
        return input_

    def _check_finite(self, input_: torch.Tensor, sequence: bool = False) -> None:
        """``ValueError`` if the input holds NaN or inf; the one-time warning if the membrane the step starts from
        does (one device sync for both)."""
        mem = None if sequence or self._nonfinite_warned else self._buffers.get("mem")
        shape = input_.shape[1:] if sequence else input_.shape
        mem = mem if mem is not None and mem.shape == shape else None
        if not _all_finite(input_, mem):
            if not _all_finite(input_):
                raise self._nonfinite_input()
            self._warn_nonfinite(self._steps)

    def _nonfinite_input(self) -> ValueError:
        return ValueError(f"{type(self).__name__} input contains NaN or inf (pass check_input=False to skip this check)")

    def _checked_current(self, input_: torch.Tensor, sequence: bool = False) -> torch.Tensor:
        """I = sigmoid(input) (or the input itself), after :meth:`_checked_input`."""
        return self._current(self._checked_input(input_, sequence))

    def _current(self, input_: torch.Tensor) -> torch.Tensor:
        """I = sigmoid(input) with ``input_sigmoid``, else the input itself."""
        return torch.sigmoid(input_) if self.input_sigmoid else input_

    def _loop_input(self, x: torch.Tensor, path: str) -> tuple[torch.Tensor, bool]:
        """``(what the sequence loop runs on, whether the fused op applies the sigmoid to it)``. On CPU the op
        applies it: its kernels run ``torch.sigmoid`` (the same bits as outside) and fold the derivative into
        their backward, one pass over the sequence fewer. The Triton kernels' sigmoid is only within a few
        ulps of ``torch.sigmoid``, so on a GPU it stays outside."""
        in_op = self.input_sigmoid and path == "fused" and x.device.type == "cpu"
        return (x if in_op else self._current(x)), in_op

    def _spike_fn(self, x: torch.Tensor) -> torch.Tensor:
        """The spike function handed to the functional step (winner-take-all along dim 1 with inhibition)."""
        spikes = self.spike_grad(x)
        if self.inhibition:
            winner = torch.zeros_like(spikes).scatter_(1, x.argmax(dim=1, keepdim=True), 1.0)
            spikes = spikes * winner
        return spikes

    # ---- state -------------------------------------------------------------------------
    def _initial_states(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _ensure_states(self, like: torch.Tensor) -> None:
        """(Re)create the state with ``like``'s shape, dtype and device when its shape differs."""
        if self._buffers[self._state_names[0]].shape != like.shape:
            for name, value in zip(self._state_names, self._initial_states(like)):
                setattr(self, name, value)
            self._steps = 0

    def _take_states(self, **given) -> None:
        """The states passed to a call (``None``: not passed), kept as the ones it starts from."""
        if self.init_hidden and any(value is not None for value in given.values()):
            names = ", ".join(f"`{k}`" for k in given)
            raise TypeError(f"{names} should not be passed as an argument while `init_hidden=True`")
        self._keep_states(**given)

    def _keep_states(self, **states: torch.Tensor | None) -> None:
        """Keep these states (``None``: left as it is): ``self.<name> = tensor`` for these buffers, without the
        microseconds of ``nn.Module.__setattr__``."""
        buffers = self._buffers
        for name, value in states.items():
            if value is None:
                continue
            if type(value) is torch.Tensor and name in buffers:
                buffers[name] = value
            else:
                setattr(self, name, value)

    def _returns(self, spikes: torch.Tensor, states: tuple[torch.Tensor, ...]):
        """snnTorch's return convention: spikes alone for a hidden ``init_hidden`` layer, else spikes and states."""
        if self.init_hidden and not self.output:
            return spikes
        return (spikes, *states)

    def reset_mem(self):
        """Put this neuron back to its initial state (keeps the shape); returns the state(s)."""
        like = getattr(self, self._state_names[0])
        for name, value in zip(self._state_names, self._initial_states(like)):
            setattr(self, name, value)
        self._steps = 0
        states = tuple(getattr(self, n) for n in self._state_names)
        return states[0] if len(states) == 1 else states

    def detach_states(self) -> None:
        """Cut the state from the autograd graph (truncated BPTT)."""
        for name in self._state_names:
            setattr(self, name, getattr(self, name).detach())

    # ---- a non-finite membrane ---------------------------------------------------------
    def _watch_membrane(self, steps_before: int, v_trace: Callable[[], torch.Tensor]) -> None:
        """After a sequence that started ``steps_before`` steps after the reset: if the final membrane is not
        finite, warn once naming the first step whose (post-reset) membrane was not, from ``v_trace()`` ``[T, ...]``.
        One reduction and one sync per call (only with ``check_input``)."""
        if not self.check_input or self._nonfinite_warned or torch.compiler.is_compiling():
            return
        if _all_finite(self._buffers["mem"]):
            return
        with torch.no_grad():
            trace = v_trace()
            bad = (~torch.isfinite(trace.reshape(trace.shape[0], -1))).any(1).nonzero()
        self._warn_nonfinite(steps_before + (int(bad[0]) + 1 if len(bad) else trace.shape[0]))

    def _warn_nonfinite(self, step: int) -> None:
        self.__dict__["_nonfinite_warned"] = True
        when = f"after step {step} since its state was reset" if step else "in the state it starts from (given or carried over)"
        warnings.warn(
            f"{type(self).__name__}({self.extra_repr()}): the membrane potential is not finite (NaN or inf) {when}; "
            "the spikes and gradients from there on are meaningless. Usual causes: theta far from the presets (a large "
            "|theta_a| or theta_b), a large dt (try substeps), or inputs of extreme size. (Checked with the input while "
            "check_input=True: before every single step, and at the end of every multi_step call.) This warning is "
            "shown once per layer.",
            RuntimeWarning,
            stacklevel=4,
        )

    # ---- the 2-SDS horizon -------------------------------------------------------------
    #: network steps after which theta_a < 0 makes this neuron's Euler map unstable (None: never warn)
    _horizon: int | None = None

    def _advance(self, steps: int, compiling: bool = False) -> None:
        """Count the steps since the last reset; warn once when a neuron with theta_a < 0 passes its horizon."""
        if compiling:
            return
        attrs = self.__dict__
        before = attrs["_steps"]
        attrs["_steps"] = before + steps
        horizon = None if attrs["_horizon_warned"] else self._horizon
        if horizon is None or not (before <= horizon < before + steps):
            return
        if bool((self.theta_a.detach() < 0).any()):
            attrs["_horizon_warned"] = True
            warnings.warn(
                f"{type(self).__name__} with theta_a < 0 (2-SDS-like: U grows without bound) has run {self._steps} "
                f"steps since its state was reset, past its stability horizon of about {horizon} steps at dt = 1: "
                "later spikes are largely discretisation artefacts (docs/model.md#tolerances). Use substeps, a "
                "shorter sequence, or reset the state between samples (mdn.reset(net)). This warning is shown once.",
                StabilityHorizonWarning,
                stacklevel=3,
            )

    @staticmethod
    def _horizon_for(dt: float, substeps: int) -> int | None:
        return math.ceil(HORIZON_STEPS / dt) if dt / substeps >= 1.0 else None

    # ---- class-wide, snnTorch style ----------------------------------------------------
    @classmethod
    def _instances(cls):
        return [n for n in SpikingNeuron.instances if isinstance(n, cls)]

    @classmethod
    def reset_hidden(cls):
        """Reset every live instance of this class (snnTorch's convention; prefer :func:`mdn_snntorch.reset`)."""
        for n in cls._instances():
            n.reset_mem()

    @classmethod
    def detach_hidden(cls):
        """Detach the state of every live instance of this class from the graph."""
        for n in cls._instances():
            n.detach_states()
