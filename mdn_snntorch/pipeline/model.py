"""The paper's 3-layer SNN (Fig. 1): input -> Linear -> hidden neurons -> Linear -> output neurons.

Time-major throughout: input spikes ``[T, B, n_in]`` -> output spikes ``[T, B, n_out]``. The Linear
layers run on all ``T x B`` rows at once; the neurons run their multi-step path. Under a bf16
autocast only the Linear layers run in bf16: their output is cast back to the input's dtype, so the
neuron dynamics (``V^2`` and the threshold test) stay in float32.

The Linear layers that receive spikes are event-driven (:class:`~mdn_snntorch.sparse.SpikeLinear`, an
``nn.Linear`` computed from the active inputs: same parameters, state-dict keys and results to rounding):
the input layer always, the hidden-to-output layer when :data:`HIDDEN_EVENT_DRIVEN` says it pays
(measured by ``benchmarks/bench_sparse.py``). ``event_driven=False`` makes both plain ``nn.Linear``.

``theta_rows=B`` (learnable theta only) gives every row of a batch of exactly ``B`` samples its own theta,
shape ``[B, N]`` per layer, as the paper authors' published code has it
(docs/model.md#the-authors-published-code); such a network takes batches of ``B`` samples only.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from mdn_snntorch.neurons import factory
from mdn_snntorch.neurons.factory import NeuronSpec
from mdn_snntorch.neurons.reset import reset
from mdn_snntorch.sparse import SpikeLinear

#: whether the hidden-to-output layer is event-driven too: no, with the paper's 10 outputs the gather has too
#: little to do per spike, and was slower than the dense product at every hidden density from 2 % on
#: (benchmarks/bench_sparse.py, section 1; docs/performance.md#the-event-driven-linear-layer)
HIDDEN_EVENT_DRIVEN = False


class ThreeLayerSNN(nn.Module):
    """Paper Fig. 1. ``neuron`` sets the hidden layer, ``output_neuron`` the output layer (default: the same).

    ``forward(x)`` resets the neuron states, then returns output spikes ``[T, B, n_out]``,
    or ``(output spikes, hidden spikes)`` with ``return_hidden=True``. ``event_driven`` (default) makes the
    input layer ``fc1`` a :class:`~mdn_snntorch.sparse.SpikeLinear` (see the module docstring); the
    parameters and their initialisation are those of ``nn.Linear`` either way.
    """

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        neuron: NeuronSpec = "2-FS",
        output_neuron: NeuronSpec | None = None,
        event_driven: bool = True,
        theta_rows: int | None = None,
        **neuron_kwargs,
    ):
        super().__init__()
        for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if theta_rows is not None and (isinstance(theta_rows, bool) or not isinstance(theta_rows, int) or theta_rows < 1):
            raise ValueError(f"theta_rows must be a positive int or None, got {theta_rows!r}")
        neuron = factory.resolve(neuron)
        output_neuron = factory.resolve(output_neuron) if output_neuron is not None else neuron
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.neuron_spec = factory.label(neuron)
        self.output_neuron_spec = factory.label(output_neuron)
        self._spec = {
            "n_in": n_in,
            "n_hidden": n_hidden,
            "n_out": n_out,
            "neuron": factory.to_json(neuron),
            "output_neuron": factory.to_json(output_neuron),
            "neuron_kwargs": dict(neuron_kwargs),
            "event_driven": bool(event_driven),
            "theta_rows": theta_rows,
        }
        self.theta_rows = theta_rows
        self.event_driven = bool(event_driven)
        self.fc1 = (SpikeLinear if event_driven else nn.Linear)(n_in, n_hidden)
        self.hidden = self._layer(neuron, n_hidden, neuron_kwargs)
        self.fc2 = (SpikeLinear if event_driven and HIDDEN_EVENT_DRIVEN else nn.Linear)(n_hidden, n_out)
        self.output = self._layer(output_neuron, n_out, neuron_kwargs)

    def _layer(self, spec, n: int, kwargs: dict[str, Any]) -> nn.Module:
        if self.theta_rows is not None and spec == factory.LEARNABLE:  # theta [B, N]: one per row of the batch
            return factory.make_neuron(spec, None, param_shape=(self.theta_rows, n), **kwargs)
        return factory.make_neuron(spec, n, **kwargs)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        if x.dim() != 3 or x.shape[-1] != self.n_in:
            raise ValueError(f"ThreeLayerSNN expects input [T, B, {self.n_in}], got {tuple(x.shape)}")
        if self.theta_rows is not None and x.shape[1] != self.theta_rows:
            raise ValueError(f"this network has theta per batch row (theta_rows={self.theta_rows}); got a batch of {x.shape[1]}")
        reset(self)
        hidden = self.hidden.multi_step(self.fc1(x).to(x.dtype))
        out = self.output.multi_step(self.fc2(hidden).to(x.dtype))
        return (out, hidden) if return_hidden else out

    def theta_parameters(self) -> list[nn.Parameter]:
        """The learnable dynamic parameters (theta of learnable MDN layers), for their own learning rate."""
        return [p for name, p in self.named_parameters() if name.split(".")[-1].startswith("theta_")]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not a dynamic parameter (the synaptic weights and biases)."""
        theta = {id(p) for p in self.theta_parameters()}
        return [p for p in self.parameters() if id(p) not in theta]

    def spec(self) -> dict[str, Any]:
        """The constructor arguments as JSON-able data; :meth:`from_spec` rebuilds the same network."""
        try:
            json.dumps(self._spec)
        except TypeError as e:
            raise TypeError(f"ThreeLayerSNN built with non-JSON neuron arguments cannot be described by spec(): {e}") from None
        return json.loads(json.dumps(self._spec))

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ThreeLayerSNN:
        """A fresh network (new weights) from :meth:`spec`'s output; load a state dict into it for the trained one."""
        return cls(
            spec["n_in"],
            spec["n_hidden"],
            spec["n_out"],
            neuron=spec["neuron"],
            output_neuron=spec.get("output_neuron"),
            event_driven=spec.get("event_driven", True),
            theta_rows=spec.get("theta_rows"),
            **spec.get("neuron_kwargs", {}),
        )
