r"""The 1st-order baseline neuron (paper Eq. 3) as an snnTorch neuron.

.. math::

    V(t+1) = g\,V(t) + \sigma(W x(t)), \qquad V > V_{th} \Rightarrow S = 1,\ V \leftarrow V_{reset}

with g = 0.8, V_th = 0.5, V_reset = 0 (paper §3.4). A thin module around
:func:`mdn_snntorch.functional.fused_first_order_step`; ``forward`` returns ``(spk, mem)`` like
``snn.Leaky`` (or runs a whole ``[T, B, ...]`` sequence with ``step_mode="multi"``).
With ``input_sigmoid=False`` it fires exactly like ``snn.Leaky(beta=g, threshold=0.5,
reset_mechanism="zero")`` (docs/snntorch.md#firstorder-and-snnleaky).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mdn_snntorch import fused, meta_neurons
from mdn_snntorch.equations import V_TH
from mdn_snntorch.functional import FirstOrderStep, first_order_multistep, first_order_step
from mdn_snntorch.fused import dispatch
from mdn_snntorch.neurons.base import MDNFamilyNeuron, build_params, finite_number, stack_steps, step_like
from mdn_snntorch.surrogate import heaviside


def _decay_value(decay):
    """The decay of a float, a tensor, the ``"1st-order"`` preset or a 1st-order MetaNeuron; a 2nd-order
    neuron's name or MetaNeuron is refused naming :class:`~mdn_snntorch.MDN`."""
    if isinstance(decay, str):
        if decay not in meta_neurons.PRESETS:
            raise ValueError(f"FirstOrder: unknown neuron {decay!r}; presets: {', '.join(meta_neurons.PRESETS)}")
        decay = meta_neurons.get(decay)
    if isinstance(decay, meta_neurons.MetaNeuron):
        if decay.order != 1:
            raise ValueError(
                f"FirstOrder: {decay.name!r} is a 2nd-order meta neuron; use mdn_snntorch.MDN({decay.name!r}) "
                f"(or mdn_snntorch.make_neuron({decay.name!r}), which picks the class)"
            )
        return decay.decay
    return decay


class FirstOrder(MDNFamilyNeuron):
    """1st-order (LIF-like) neuron of the paper.

    Args:
        decay: per-step decay factor g (0.8); a float or a tensor that broadcasts against one step of the
            input (like snnTorch's ``beta``), or the ``"1st-order"`` preset (a 2nd-order preset is refused,
            naming :class:`~mdn_snntorch.MDN`). A tensor that requires grad: as theta on ``MDN`` with ``learn_decay``.
        threshold: V_th (0.5). reset: V_reset (0).
        num_neurons, param_shape: the shape of ``decay``, as on :class:`~mdn_snntorch.MDN`.
        learn_decay: register ``decay`` as an ``nn.Parameter``.
        input_sigmoid: apply the paper's sigmoid to the input current (a zero input is then a current
            of 0.5, and the neuron fires at rate 0.5 on silence).
        step_mode, backend: as on :class:`~mdn_snntorch.MDN`.
        detach_reset: as on :class:`~mdn_snntorch.MDN`.
        dtype, device: of ``decay``, ``reset`` and the threshold.

    Other arguments as on :class:`~mdn_snntorch.MDN` and snnTorch's neurons.
    """

    _state_names = ("mem",)
    _path_state_names = ("mem",)
    _param_names = ("decay",)
    _c_node = "FirstOrderCStep"
    _step_param_names = ("decay", "threshold", "reset_value", "graded_spikes_factor")

    def __init__(
        self,
        decay: float | torch.Tensor = 0.8,
        threshold: float = V_TH,
        reset: float = 0.0,
        *,
        num_neurons: int | None = None,
        param_shape: Sequence[int] | None = None,
        learn_decay: bool = False,
        input_sigmoid: bool = True,
        spike_grad=None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_threshold: bool = False,
        state_quant=False,
        output: bool = False,
        graded_spikes_factor: float = 1.0,
        learn_graded_spikes_factor: bool = False,
        check_input: bool = True,
        step_mode: str = "single",
        backend: str = "auto",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        detach_reset: bool = True,
    ):
        if backend not in fused.BACKENDS:
            raise ValueError(f"backend must be one of {fused.BACKENDS}, got {backend!r}")
        finite_number("reset", reset, "FirstOrder")
        (decay_t,), exact, shape = build_params(
            ("decay",), (_decay_value(decay),), num_neurons=num_neurons, param_shape=param_shape, dtype=dtype, device=device,
            what="decay", learn=learn_decay, learn_name="learn_decay",
        )  # fmt: skip
        super().__init__(
            threshold=threshold,
            spike_grad=spike_grad,
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_threshold=learn_threshold,
            state_quant=state_quant,
            output=output,
            graded_spikes_factor=graded_spikes_factor,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
            input_sigmoid=input_sigmoid,
            check_input=check_input,
            num_neurons=shape[0] if shape is not None and len(shape) == 1 else None,
            step_mode=step_mode,
            dtype=dtype,
            device=device,
            detach_reset=detach_reset,
        )
        self.param_shape = shape
        self.name = "1st-order"
        self.learn_decay = learn_decay
        self.backend = backend
        self._register_params([decay_t], exact, learn_decay)
        self.register_buffer("reset_value", torch.tensor(float(reset), dtype=dtype or torch.get_default_dtype(), device=device))
        self._exact["reset_value"] = float(reset)

    def _initial_states(self, like):
        return (torch.zeros_like(like),)

    def init_first_order(self):
        """Initial ``mem`` to pass to :meth:`forward` (snnTorch's ``init_leaky``); lazily shaped."""
        return self.reset_mem()

    def extra_repr(self) -> str:
        shape = f"param_shape={self.param_shape}" if self.param_shape else "shared"
        mode = ", step_mode='multi'" if self.step_mode == "multi" else ""
        return f"{shape}, learn_decay={self.learn_decay}{mode}"

    def _step_kwargs(self, dtype):
        return dict(
            decay=self._param_as("decay", dtype),
            threshold=self._param_as("threshold", dtype),
            reset=self._param_as("reset_value", dtype),
        )

    def _path_params(self, dtype: torch.dtype) -> tuple:
        kwargs = self._step_kwargs(dtype)
        return kwargs["decay"], kwargs["reset"]

    def _step_params(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        kwargs = self._step_kwargs(dtype)
        return kwargs["decay"], kwargs["threshold"], kwargs["reset"], self._param_as("graded_spikes_factor", dtype)

    def _node_config(self) -> tuple:
        """The settings both single-step nodes take after the parameters: ``(width, sigmoid, detach_reset)``."""
        return (self.spike_grad.width, self.input_sigmoid, self.detach_reset)

    def _step(self, input_: torch.Tensor, compiling: bool = False, check: bool = False) -> torch.Tensor:
        """One step from the module's state; updates the state, returns the spikes (``check``: as on
        :meth:`MDN._step <mdn_snntorch.MDN._step>`)."""
        dtype = input_.dtype
        mem = self._buffers["mem"]
        params, path, plan = self._decide_step(input_, (mem,), compiling)
        if check and path != "c":  # the C step counts the non-finite values in its own pass
            self._check_finite(input_)
        if path == "c":
            spk, v = self._c_step(input_, (mem,), params, self._node_config(), check, plan)
        elif path == "node":  # functional.fused_first_order_step, its tensors prepared here
            spk, v = FirstOrderStep.apply(input_, mem, *params[:3], self._scale_arg(dtype, compiling), *self._node_config())
        else:
            decay, threshold, reset, scale = params
            current = torch.sigmoid(input_) if self.input_sigmoid else input_
            spk, v = first_order_step(
                current,
                mem,
                decay=decay,
                threshold=threshold,
                reset=reset,
                spike_fn=self._spike_fn,
                detach_reset=self.detach_reset,
            )
            spk = spk * scale
        self._buffers["mem"] = self.state_quant(v) if self.state_quant else v  # not self.mem = ...: see MDN._step
        self._advance(1, compiling)
        return spk

    def forward(self, input_: torch.Tensor, mem: torch.Tensor | None = None):
        """One time step: ``(spk, mem)`` (post-reset), or ``spk`` with ``init_hidden=True``; with
        ``step_mode="multi"`` a whole sequence ``[T, B, ...]`` with time-stacked results (see :meth:`MDN.forward`)."""
        self._take_states(mem=mem)
        if self.step_mode == "multi":
            return self.multi_step(input_, return_traces=not (self.init_hidden and not self.output))
        compiling = torch.compiler.is_compiling()
        x = self._checked_input(input_, compiling=compiling, finite=False)
        self._ensure_states(x)
        spk = self._step(x, compiling, check=self.check_input and not compiling)
        return self._returns(spk, (self._buffers["mem"],))

    def multi_step(self, input_seq: torch.Tensor, *, return_traces: bool = False):
        """Run ``[T, B, ...]`` from the current state: spikes, or ``(spikes, mem)`` traces. The loop runs as
        the fused op, the reference autograd loop or step by step, as on :class:`~mdn_snntorch.MDN`."""
        x = self._checked_input(input_seq, sequence=True)
        self._ensure_states(step_like(x))
        before = self._steps
        (v0,), params = self._sequence_operands(x)
        path = dispatch.sequence_path(self, x, (v0,), params)
        if path == "per-step":  # state quantisation sits between steps
            spikes, vs = [], []
            for x_t in x.unbind(0):
                spikes.append(self._step(x_t))
                vs.append(self.mem)
            spikes, vs = stack_steps(spikes, x), stack_steps(vs, x)
            self._watch_membrane(before, lambda: vs)
            return (spikes, vs) if return_traces else spikes
        current, in_op = self._loop_input(x, path)
        kwargs = self._step_kwargs(current.dtype)
        if path == "fused":  # the op applies the factor (and the sigmoid, when in_op)
            trace = fused.first_order_multistep(
                current,
                v0,
                width=self.spike_grad.width,
                graded_spikes_factor=self._param_as("graded_spikes_factor", current.dtype),
                input_sigmoid=in_op,
                return_traces=return_traces,
                detach_reset=self.detach_reset,
                **kwargs,
            )
            spikes = trace.spikes
        else:
            trace = first_order_multistep(
                current, v0, return_traces=return_traces, spike_fn=self._spike_fn, detach_reset=self.detach_reset, **kwargs
            )
            spikes = trace.spikes * self._param_as("graded_spikes_factor", current.dtype)
        self._keep_states(mem=trace.state)
        self._advance(x.shape[0], torch.compiler.is_compiling())
        self._watch_membrane(before, lambda: trace.v if return_traces else self._v_trace(self._current(x), v0, kwargs))
        return (spikes, trace.v) if return_traces else spikes

    @staticmethod
    def _v_trace(current: torch.Tensor, v0: torch.Tensor, kwargs: dict) -> torch.Tensor:
        """The post-reset membrane trace of ``current`` from ``v0`` (the reference loop without gradients)."""
        frozen = {k: torch.as_tensor(v).detach() for k, v in kwargs.items()}
        return first_order_multistep(current.detach(), v0.detach(), spike_fn=heaviside, return_traces=True, **frozen).v
