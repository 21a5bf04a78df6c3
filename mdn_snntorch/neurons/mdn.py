r"""The 2nd-order meta-dynamic neuron (paper Eq. 2) as an snnTorch neuron.

.. math::

    \frac{dV}{dt} = V^2 - V - U + \sigma(W x), \qquad
    \frac{dU}{dt} = \theta_a(\theta_b V - U), \qquad
    V > V_{th} \Rightarrow S = 1,\ V \leftarrow \theta_c,\ U \leftarrow U + \theta_d

A thin module around :func:`mdn_snntorch.functional.mdn_step`; ``forward`` is one time step
(``(spk, u, mem)``, membrane last, like ``snn.Synaptic``), :meth:`MDN.multi_step` a whole
``[T, B, ...]`` sequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mdn_snntorch import fused, meta_neurons
from mdn_snntorch.equations import U0, V0, V_TH
from mdn_snntorch.functional import MDNParameters, MDNState, initial_state, mdn_multistep, mdn_step
from mdn_snntorch.neurons.base import MDNFamilyNeuron

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


def _as_theta_tensor(value, dtype, device) -> torch.Tensor:
    """A float tensor copy of ``value``; python floats are converted straight to ``dtype`` (no float32 detour)."""
    if torch.is_tensor(value):
        t = value.detach().to(device=device)
        if dtype is not None or not t.is_floating_point():
            t = t.to(dtype or torch.get_default_dtype())
        return t.clone()
    return torch.tensor(float(value), dtype=dtype or torch.get_default_dtype(), device=device)


def _theta_tensors(theta: ThetaLike, num_neurons: int | None, dtype, device) -> tuple[list[torch.Tensor], int | None]:
    """Validated theta tensors, each of shape () or (num_neurons,); also returns num_neurons."""
    tensors = [_as_theta_tensor(v, dtype, device) for v in _theta_values(theta)]
    per_neuron = {t.shape[0] for t in tensors if t.dim() == 1}
    if len(per_neuron) > 1:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(THETA_NAMES, tensors))
        raise ValueError(f"theta tensors disagree on the number of neurons: {shapes}")
    if num_neurons is None and len(per_neuron) == 1:
        num_neurons = per_neuron.pop()
    for name, t in zip(THETA_NAMES, tensors):
        allowed = [()] + ([(num_neurons,)] if num_neurons is not None else [])
        if tuple(t.shape) not in allowed:
            want = (
                "() or (num_neurons,) = " + str((num_neurons,))
                if num_neurons is not None
                else "() (give num_neurons for per-neuron values)"
            )
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {want}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} is not finite: {t}")
    if num_neurons is not None:
        tensors = [t.expand(num_neurons).clone() if t.dim() == 0 else t for t in tensors]
    return tensors, num_neurons


class MDN(MDNFamilyNeuron):
    """2nd-order meta-dynamic neuron.

    Args:
        theta: a preset name (``"2-FS"``, ``"2-RS"``, ``"2-SDS"``, ``"2-WDS"``, ``"init"``), a
            :class:`~mdn_snntorch.meta_neurons.MetaNeuron`, 4 floats ``(a, b, c, d)`` or 4 per-neuron
            tensors of shape ``(num_neurons,)``.
        num_neurons: make theta per neuron (the input's last dimension must then equal it).
        learn_theta: register theta as ``nn.Parameter`` (per neuron when ``num_neurons`` is set).
        threshold: firing threshold V_th (0.5).
        dt: length of one network time step (1, paper-faithful).
        substeps: Euler sub-steps of ``dt / substeps`` per network step (input held).
        v0, u0: initial state (0, 0.08).
        input_sigmoid: apply the paper's sigmoid to the input current; ``False`` takes it as given.
        spike_grad: spike function with surrogate gradient (default :func:`~mdn_snntorch.surrogate.window`).
        check_input: raise on non-finite input (one device sync per call; turn off for speed).
        backend: how :meth:`multi_step` runs the time loop: ``"auto"`` (the fused op of
            :mod:`mdn_snntorch.fused` when it supports the configuration, else the reference loop),
            ``"fused"`` (the op, or ``ValueError``) or ``"reference"`` (the autograd loop of
            :mod:`mdn_snntorch.functional`). The single-step ``forward`` is the same for all three.
        dtype, device: of theta (``dtype=torch.float64`` keeps the presets' exact values).

    The remaining arguments (``surrogate_disable``, ``init_hidden``, ``inhibition``, ``learn_threshold``,
    ``state_quant``, ``output``, ``graded_spikes_factor``, ``learn_graded_spikes_factor``) mean what
    they mean on snnTorch's neurons.
    """

    _state_names = ("u", "mem")

    def __init__(
        self,
        theta: ThetaLike = "2-FS",
        *,
        num_neurons: int | None = None,
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
        backend: str = "auto",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        if backend not in fused.BACKENDS:
            raise ValueError(f"backend must be one of {fused.BACKENDS}, got {backend!r}")
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        if not (isinstance(substeps, int) and substeps >= 1):
            raise ValueError(f"substeps must be an int >= 1, got {substeps!r}")
        tensors, num_neurons = _theta_tensors(theta, num_neurons, dtype, device)
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
            num_neurons=num_neurons,
        )
        self.name = theta.name if isinstance(theta, meta_neurons.MetaNeuron) else theta if isinstance(theta, str) else None
        self.dt = float(dt)
        self.substeps = substeps
        self.v0, self.u0 = float(v0), float(u0)
        self.learn_theta = learn_theta
        self.backend = backend
        for name, t in zip(THETA_NAMES, tensors):
            if learn_theta:
                setattr(self, name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)

    @property
    def theta(self) -> MDNParameters:
        """The dynamic parameters as :class:`~mdn_snntorch.functional.MDNParameters`."""
        return MDNParameters(self.theta_a, self.theta_b, self.theta_c, self.theta_d)

    def _theta_as(self, dtype: torch.dtype) -> MDNParameters:
        return MDNParameters(*(t.to(dtype) for t in self.theta))

    def _initial_states(self, like):
        v, u = initial_state(like, self.v0, self.u0)
        return u, v

    def extra_repr(self) -> str:
        shape = f"num_neurons={self.num_neurons}" if self.num_neurons else "shared"
        return f"theta={self.name or 'custom'}, {shape}, learn_theta={self.learn_theta}, dt={self.dt}, substeps={self.substeps}"

    def forward(self, input_: torch.Tensor, u: torch.Tensor | None = None, mem: torch.Tensor | None = None):
        """One time step. Returns ``(spk, u, mem)`` (post-reset state), or ``spk`` with ``init_hidden=True``."""
        self._take_states(u=u, mem=mem)
        current = self._checked_current(input_)
        self._ensure_states(current)
        spk, (v_new, u_new) = mdn_step(
            current,
            MDNState(self.mem, self.u),
            self._theta_as(current.dtype),
            threshold=self.threshold,
            dt=self.dt,
            substeps=self.substeps,
            spike_fn=self._spike_fn,
        )
        if self.state_quant:
            v_new, u_new = self.state_quant(v_new), self.state_quant(u_new)
        self.mem, self.u = v_new, u_new
        spk = spk * self.graded_spikes_factor
        if self.init_hidden and not self.output:
            return spk
        return spk, self.u, self.mem

    def multi_step(self, input_seq: torch.Tensor, *, return_traces: bool = False):
        """Run a whole sequence ``[T, B, ...]`` from the current state.

        Returns spikes ``[T, B, ...]``, or ``(spikes, u, mem)`` traces (post-reset, each ``[T, B, ...]``)
        with ``return_traces=True``. The final state stays in the module. The loop runs as the fused op
        (:func:`mdn_snntorch.fused.mdn_multistep`) or the reference autograd loop
        (:func:`~mdn_snntorch.functional.mdn_multistep`) as ``backend`` says (see :func:`~mdn_snntorch.fused.use_fused`).
        """
        if self.state_quant:  # quantisation sits between steps: run the single-step path
            if self.backend == "fused":
                raise ValueError("MDN(backend='fused') cannot run state_quant (it quantises between steps)")
            spikes, us, vs = [], [], []
            for x in input_seq.unbind(0):
                out = self.forward(x)
                spikes.append(out[0] if isinstance(out, tuple) else out)
                us.append(self.u)
                vs.append(self.mem)
            spikes = torch.stack(spikes)
            return (spikes, torch.stack(us), torch.stack(vs)) if return_traces else spikes
        current = self._checked_current(input_seq)
        self._ensure_states(current[0])
        state, theta = MDNState(self.mem, self.u), self._theta_as(current.dtype)
        common = dict(threshold=self.threshold, dt=self.dt, substeps=self.substeps, return_traces=return_traces)
        if fused.use_fused(self, current, state, theta):  # the op applies the graded-spikes factor itself
            trace = fused.mdn_multistep(
                current, state, theta, width=self.spike_grad.width, graded_spikes_factor=self.graded_spikes_factor, **common
            )
            spikes = trace.spikes
        else:
            trace = mdn_multistep(current, state, theta, spike_fn=self._spike_fn, **common)
            spikes = trace.spikes * self.graded_spikes_factor
        self.mem, self.u = trace.state
        return (spikes, trace.u, trace.v) if return_traces else spikes
