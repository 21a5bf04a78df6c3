r"""The 1st-order baseline neuron (paper Eq. 3) as an snnTorch neuron.

.. math::

    V(t+1) = g\,V(t) + \sigma(W x(t)), \qquad V > V_{th} \Rightarrow S = 1,\ V \leftarrow V_{reset}

with g = 0.8, V_th = 0.5, V_reset = 0 (paper §3.4). ``forward`` returns ``(spk, mem)`` like ``snn.Leaky``.
"""

from __future__ import annotations

import torch
from torch import nn

from mdn_snntorch import fused
from mdn_snntorch.equations import V_TH
from mdn_snntorch.functional import first_order_multistep, first_order_step
from mdn_snntorch.neurons.base import MDNFamilyNeuron


class FirstOrder(MDNFamilyNeuron):
    """1st-order (LIF-like) neuron of the paper.

    Args:
        decay: per-step decay factor g (0.8); a float or a per-neuron tensor ``(num_neurons,)``.
        threshold: V_th (0.5). reset: V_reset (0).
        learn_decay: register ``decay`` as an ``nn.Parameter``.
        input_sigmoid: apply the paper's sigmoid to the input current.
        backend: ``"auto"`` | ``"fused"`` | ``"reference"``: how :meth:`multi_step` runs (as on :class:`~mdn_snntorch.MDN`).
        dtype, device: of ``decay`` and ``reset_value``.

    Other arguments as on :class:`~mdn_snntorch.MDN` and snnTorch's neurons.
    """

    _state_names = ("mem",)

    def __init__(
        self,
        decay: float | torch.Tensor = 0.8,
        threshold: float = V_TH,
        reset: float = 0.0,
        *,
        num_neurons: int | None = None,
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
        backend: str = "auto",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        if backend not in fused.BACKENDS:
            raise ValueError(f"backend must be one of {fused.BACKENDS}, got {backend!r}")
        dtype = dtype or torch.get_default_dtype()
        decay_t = (
            decay.detach().to(dtype=dtype, device=device).clone()
            if torch.is_tensor(decay)
            else torch.tensor(float(decay), dtype=dtype, device=device)
        )
        if num_neurons is None and decay_t.dim() == 1:
            num_neurons = decay_t.shape[0]
        if tuple(decay_t.shape) not in [()] + ([(num_neurons,)] if num_neurons else []):
            raise ValueError(f"decay has shape {tuple(decay_t.shape)}; expected () or (num_neurons,) = ({num_neurons},)")
        if not bool(torch.isfinite(decay_t).all()):
            raise ValueError(f"decay is not finite: {decay_t}")
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
        if num_neurons is not None and decay_t.dim() == 0:
            decay_t = decay_t.expand(num_neurons).clone()
        self.name = "1st-order"
        self.learn_decay = learn_decay
        self.backend = backend
        if learn_decay:
            self.decay = nn.Parameter(decay_t)
        else:
            self.register_buffer("decay", decay_t)
        self.register_buffer("reset_value", torch.tensor(float(reset), dtype=dtype, device=device))

    def _initial_states(self, like):
        return (torch.zeros_like(like),)

    def extra_repr(self) -> str:
        return f"num_neurons={self.num_neurons}, learn_decay={self.learn_decay}"

    def _step_kwargs(self, dtype):
        return dict(
            decay=self.decay.to(dtype), threshold=self.threshold, reset=self.reset_value.to(dtype), spike_fn=self._spike_fn
        )

    def forward(self, input_: torch.Tensor, mem: torch.Tensor | None = None):
        """One time step. Returns ``(spk, mem)`` (post-reset), or ``spk`` with ``init_hidden=True``."""
        self._take_states(mem=mem)
        current = self._checked_current(input_)
        self._ensure_states(current)
        spk, v = first_order_step(current, self.mem, **self._step_kwargs(current.dtype))
        self.mem = self.state_quant(v) if self.state_quant else v
        spk = spk * self.graded_spikes_factor
        if self.init_hidden and not self.output:
            return spk
        return spk, self.mem

    def multi_step(self, input_seq: torch.Tensor, *, return_traces: bool = False):
        """Run ``[T, B, ...]`` from the current state: spikes, or ``(spikes, mem)`` traces. The loop runs as
        the fused op or the reference autograd loop as ``backend`` says (as on :class:`~mdn_snntorch.MDN`)."""
        if self.state_quant:  # quantisation sits between steps: run the single-step path
            if self.backend == "fused":
                raise ValueError("FirstOrder(backend='fused') cannot run state_quant (it quantises between steps)")
            spikes, vs = [], []
            for x in input_seq.unbind(0):
                out = self.forward(x)
                spikes.append(out[0] if isinstance(out, tuple) else out)
                vs.append(self.mem)
            spikes = torch.stack(spikes)
            return (spikes, torch.stack(vs)) if return_traces else spikes
        current = self._checked_current(input_seq)
        self._ensure_states(current[0])
        kwargs = self._step_kwargs(current.dtype)
        decay, reset = kwargs["decay"], kwargs["reset"]
        if fused.use_fused(self, current, (self.mem,), (decay, reset)):  # the op applies the graded-spikes factor
            trace = fused.first_order_multistep(
                current,
                self.mem,
                decay=decay,
                threshold=self.threshold,
                reset=reset,
                width=self.spike_grad.width,
                graded_spikes_factor=self.graded_spikes_factor,
                return_traces=return_traces,
            )
            spikes = trace.spikes
        else:
            trace = first_order_multistep(current, self.mem, return_traces=return_traces, **kwargs)
            spikes = trace.spikes * self.graded_spikes_factor
        self.mem = trace.state
        return (spikes, trace.v) if return_traces else spikes
