r"""The 2nd-order meta-dynamic neuron (paper Eq. 2) as an snnTorch neuron.

.. math::

    \frac{dV}{dt} = V^2 - V - U + \sigma(W x), \qquad
    \frac{dU}{dt} = \theta_a(\theta_b V - U), \qquad
    V > V_{th} \Rightarrow S = 1,\ V \leftarrow \theta_c,\ U \leftarrow U + \theta_d

A thin module around :func:`mdn_snntorch.functional.fused_mdn_step` (one autograd node per step, the
same spikes and state as the reference :func:`~mdn_snntorch.functional.mdn_step`); ``forward`` is one
time step (``(spk, u, mem)``, membrane last, like ``snn.Synaptic``), or with ``step_mode="multi"`` a
whole ``[T, B, ...]`` sequence through :meth:`MDN.multi_step` (the fused time loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mdn_snntorch import fused, meta_neurons
from mdn_snntorch.equations import U0, V0, V_TH
from mdn_snntorch.functional import MDNParameters, MDNState, MDNStep, initial_state, mdn_multistep, mdn_step
from mdn_snntorch.fused import dispatch
from mdn_snntorch.neurons.base import MDNFamilyNeuron, build_params, finite_number, stack_steps, step_like
from mdn_snntorch.surrogate import heaviside

THETA_NAMES = ("theta_a", "theta_b", "theta_c", "theta_d")
ThetaLike = str | meta_neurons.MetaNeuron | Sequence[float] | Sequence[torch.Tensor]


def _theta_values(theta: ThetaLike) -> tuple:
    """The four theta values of a preset name, MetaNeuron or 4-sequence."""
    if isinstance(theta, str):
        theta = meta_neurons.get(theta)
    if isinstance(theta, meta_neurons.MetaNeuron):
        if theta.order != 2:
            raise ValueError(f"meta neuron {theta.name!r} is order {theta.order}; use mdn_snntorch.FirstOrder for it")
        return theta.theta
    if torch.is_tensor(theta) or not isinstance(theta, Sequence) or len(theta) != 4:
        raise TypeError(
            "theta must be a preset name, a MetaNeuron, 4 floats (a, b, c, d) "
            f"or 4 per-neuron tensors; got {type(theta).__name__}"
        )
    return tuple(theta)


class MDN(MDNFamilyNeuron):
    """2nd-order meta-dynamic neuron.

    Args:
        theta: a preset name (``"2-FS"``, ``"2-RS"``, ``"2-SDS"``, ``"2-WDS"``, ``"init"``), a
            :class:`~mdn_snntorch.meta_neurons.MetaNeuron`, 4 floats ``(a, b, c, d)`` or 4 tensors whose
            shapes broadcast together (and against one step of the input, like snnTorch's ``beta``).
        num_neurons: one theta per neuron of a ``[B, N]`` input: the shorthand for ``param_shape=(N,)``.
        param_shape: the shape of theta, broadcast against one step of the input without changing it:
            ``(C, 1, 1)`` per channel of ``[B, C, H, W]``, ``(C, H, W)`` per pixel, ``(N,)`` per neuron of
            ``[B, N]``. A shape ``(N,)`` is refused on inputs with more than one feature dimension.
        learn_theta: register theta as ``nn.Parameter`` (of the shape above; gradients of that shape). A theta
            tensor that requires grad is refused without it, and with it is registered as given when it is an
            ``nn.Parameter`` of that shape, dtype and device (else refused: a copy would never see its gradient).
        threshold: firing threshold V_th (0.5).
        dt: length of one network time step (1, paper-faithful).
        substeps: Euler sub-steps of ``dt / substeps`` per network step (input held).
        v0, u0: initial state (0, 0.08).
        input_sigmoid: apply the paper's sigmoid to the input current; ``False`` takes it as given.
            (With the sigmoid a zero input is a current of 0.5: 2-FS fires at rate 0.5 on silence.)
        spike_grad: spike function with surrogate gradient (default :func:`~mdn_snntorch.surrogate.window`).
        check_input: raise on non-finite input, and warn once when the membrane becomes non-finite (one device
            sync per step, two per :meth:`multi_step` call; a single step in C counts them in its own pass; turn
            off for speed).
        detach_reset: reset with the detached spike (``True``, as snnTorch); ``False`` lets the spike's
            surrogate gradient flow through the reset, as the paper authors' code does (the single step and
            the reference loop; docs/model.md#the-authors-published-code).
        step_mode: ``"single"`` (``forward`` is one time step, snnTorch's convention) or ``"multi"``
            (``forward`` takes a whole ``[T, B, ...]`` sequence and runs :meth:`multi_step`, for
            ``nn.Sequential`` nets built with :class:`~mdn_snntorch.TimeDistributed`).
        backend: how :meth:`multi_step` runs the time loop: ``"auto"`` (the fused op of
            :mod:`mdn_snntorch.fused` when it supports the configuration, else the reference loop),
            ``"fused"`` (the op, or ``ValueError``) or ``"reference"`` (the autograd loop of
            :mod:`mdn_snntorch.functional`). The single step is the same for all three.
        dtype, device: of theta and the threshold (``dtype=torch.float64`` keeps the presets' exact
            values; so do ``.double()`` and ``.to(torch.float64)`` for theta that is not learnable).

    The remaining arguments (``surrogate_disable``, ``init_hidden``, ``inhibition``, ``learn_threshold``,
    ``state_quant``, ``output``, ``graded_spikes_factor``, ``learn_graded_spikes_factor``) mean what
    they mean on snnTorch's neurons.
    """

    _state_names = ("u", "mem")
    _path_state_names = ("mem", "u")
    _param_names = THETA_NAMES
    _c_node = "MDNCStep"
    _step_param_names = ("theta_a", "theta_b", "theta_c", "theta_d", "threshold", "graded_spikes_factor")

    def __init__(
        self,
        theta: ThetaLike = "2-FS",
        *,
        num_neurons: int | None = None,
        param_shape: Sequence[int] | None = None,
        learn_theta: bool = False,
        threshold: float = V_TH,
        dt: float = 1.0,
        substeps: int = 1,
        v0: float = V0,
        u0: float = U0,
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
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        if not (isinstance(substeps, int) and substeps >= 1):
            raise ValueError(f"substeps must be an int >= 1, got {substeps!r}")
        finite_number("v0", v0, "MDN")
        finite_number("u0", u0, "MDN")
        tensors, exact, shape = build_params(
            THETA_NAMES, _theta_values(theta), num_neurons=num_neurons, param_shape=param_shape, dtype=dtype, device=device,
            learn=learn_theta,
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
        self.name = theta.name if isinstance(theta, meta_neurons.MetaNeuron) else theta if isinstance(theta, str) else None
        self.dt = float(dt)
        self.substeps = substeps
        self.v0, self.u0 = float(v0), float(u0)
        self.learn_theta = learn_theta
        self.backend = backend
        self._horizon = self._horizon_for(self.dt, substeps)
        self._register_params(tensors, exact, learn_theta)

    @property
    def theta(self) -> MDNParameters:
        """The dynamic parameters as :class:`~mdn_snntorch.functional.MDNParameters`."""
        return MDNParameters(self.theta_a, self.theta_b, self.theta_c, self.theta_d)

    def _theta_as(self, dtype: torch.dtype) -> MDNParameters:
        return MDNParameters(*(self._param_as(n, dtype) for n in THETA_NAMES))

    _path_params = _theta_as

    def _initial_states(self, like):
        v, u = initial_state(like, self.v0, self.u0)
        return u, v

    def init_mdn(self):
        """Initial ``(u, mem)`` to pass to :meth:`forward` (snnTorch's ``init_synaptic``); lazily shaped."""
        return self.reset_mem()

    def extra_repr(self) -> str:
        shape = f"param_shape={self.param_shape}" if self.param_shape else "shared"
        mode = ", step_mode='multi'" if self.step_mode == "multi" else ""
        return (
            f"theta={self.name or 'custom'}, {shape}, learn_theta={self.learn_theta}, dt={self.dt}, "
            f"substeps={self.substeps}{mode}"
        )

    def _step_params(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        p = self._param_as
        return (
            p("theta_a", dtype),
            p("theta_b", dtype),
            p("theta_c", dtype),
            p("theta_d", dtype),
            p("threshold", dtype),
            p("graded_spikes_factor", dtype),
        )

    def _node_config(self) -> tuple:
        """The settings both single-step nodes take after the parameters: ``(dt, substeps, width, sigmoid, detach_reset)``."""
        return (self.dt, self.substeps, self.spike_grad.width, self.input_sigmoid, self.detach_reset)

    def _step(self, input_: torch.Tensor, compiling: bool = False, check: bool = False) -> torch.Tensor:
        """One step from the module's state; updates the state, returns the spikes. ``check``: the input's and
        the membrane's finiteness are still to be checked (:meth:`_check_finite`)."""
        dtype = input_.dtype
        buffers = self._buffers
        state = MDNState(buffers["mem"], buffers["u"])
        params, path, plan = self._decide_step(input_, state, compiling)
        if check and path != "c":  # the C step counts the non-finite values in its own pass
            self._check_finite(input_)
        if path == "c":
            spk, v_new, u_new = self._c_step(input_, state, params, self._node_config(), check, plan)
        elif path == "node":  # functional.fused_mdn_step, its tensors prepared here
            spk, v_new, u_new = MDNStep.apply(
                input_, *state, *params[:5], self._scale_arg(dtype, compiling), *self._node_config()
            )
        else:
            current = torch.sigmoid(input_) if self.input_sigmoid else input_
            spk, (v_new, u_new) = mdn_step(
                current,
                state,
                MDNParameters(*params[:4]),
                threshold=params[4],
                dt=self.dt,
                substeps=self.substeps,
                spike_fn=self._spike_fn,
                detach_reset=self.detach_reset,
            )
            spk = spk * params[5]
        if self.state_quant:
            v_new, u_new = self.state_quant(v_new), self.state_quant(u_new)
        buffers["u"], buffers["mem"] = u_new, v_new  # not self.u = ...: nn.Module.__setattr__ costs microseconds
        self._advance(1, compiling)
        return spk

    def forward(self, input_: torch.Tensor, u: torch.Tensor | None = None, mem: torch.Tensor | None = None):
        """One time step: ``(spk, u, mem)`` (post-reset state), or ``spk`` with ``init_hidden=True``.

        With ``step_mode="multi"``, ``input_`` is a whole sequence ``[T, B, ...]`` and the result is
        time-stacked: ``spk [T, ...]``, or ``(spk, u, mem)`` traces ``[T, ...]`` (``u`` and ``mem`` given
        here are then the initial state)."""
        self._take_states(u=u, mem=mem)
        if self.step_mode == "multi":
            traces = not (self.init_hidden and not self.output)
            return self.multi_step(input_, return_traces=traces)
        compiling = torch.compiler.is_compiling()
        x = self._checked_input(input_, compiling=compiling, finite=False)
        self._ensure_states(x)
        spk = self._step(x, compiling, check=self.check_input and not compiling)
        buffers = self._buffers
        return self._returns(spk, (buffers["u"], buffers["mem"]))

    def multi_step(self, input_seq: torch.Tensor, *, return_traces: bool = False):
        """Run a whole sequence ``[T, B, ...]`` from the current state.

        Returns spikes ``[T, B, ...]``, or ``(spikes, u, mem)`` traces (post-reset, each ``[T, B, ...]``)
        with ``return_traces=True``. The final state stays in the module. The loop runs as the fused op
        (:func:`mdn_snntorch.fused.mdn_multistep`), the reference autograd loop
        (:func:`~mdn_snntorch.functional.mdn_multistep`) or step by step, as
        :func:`~mdn_snntorch.fused.dispatch.sequence_path` decides (:meth:`explain` says which and why).
        ``T = 0`` gives empty results and leaves the state as it is.
        """
        x = self._checked_input(input_seq, sequence=True)
        self._ensure_states(step_like(x))
        (v0, u0), theta = self._sequence_operands(x)
        state, dtype, before = MDNState(v0, u0), x.dtype, self._steps
        path = dispatch.sequence_path(self, x, state, theta)
        if path == "per-step":  # state quantisation sits between steps
            spikes, us, vs = [], [], []
            for x_t in x.unbind(0):
                spikes.append(self._step(x_t))
                us.append(self.u)
                vs.append(self.mem)
            spikes, us, vs = stack_steps(spikes, x), stack_steps(us, x), stack_steps(vs, x)
            self._watch_membrane(before, lambda: vs)
            return (spikes, us, vs) if return_traces else spikes
        threshold = self._param_as("threshold", dtype)
        common = dict(threshold=threshold, dt=self.dt, substeps=self.substeps, return_traces=return_traces)
        current, in_op = self._loop_input(x, path)
        if path == "fused":  # the op applies the graded-spikes factor itself (and the sigmoid, when in_op)
            scale = self._param_as("graded_spikes_factor", dtype)
            trace = fused.mdn_multistep(
                current, state, theta, width=self.spike_grad.width, graded_spikes_factor=scale, detach_reset=self.detach_reset,
                input_sigmoid=in_op, **common,
            )  # fmt: skip
            spikes = trace.spikes
        else:
            trace = mdn_multistep(current, state, theta, spike_fn=self._spike_fn, detach_reset=self.detach_reset, **common)
            spikes = trace.spikes * self._param_as("graded_spikes_factor", current.dtype)
        self._keep_states(mem=trace.state.v, u=trace.state.u)
        self._advance(x.shape[0], torch.compiler.is_compiling())
        self._watch_membrane(
            before, lambda: trace.v if return_traces else self._v_trace(self._current(x), state, theta, threshold)
        )
        return (spikes, trace.u, trace.v) if return_traces else spikes

    def _v_trace(self, current: torch.Tensor, state: MDNState, theta: MDNParameters, threshold) -> torch.Tensor:
        """The post-reset membrane trace of ``current`` from ``state`` (the reference loop without gradients)."""
        detached = MDNParameters(*(torch.as_tensor(t).detach() for t in theta))
        start = MDNState(state.v.detach(), state.u.detach())
        kwargs = dict(threshold=torch.as_tensor(threshold).detach(), dt=self.dt, substeps=self.substeps)
        return mdn_multistep(current.detach(), start, detached, spike_fn=heaviside, return_traces=True, **kwargs).v
