"""The paper's 3-layer SNN (Fig. 1): input -> Linear -> hidden neurons -> Linear -> output neurons.

Time-major throughout: input spikes ``[T, B, n_in]`` -> output spikes ``[T, B, n_out]``. The Linear
layers run on all ``T x B`` rows at once; the neurons run their multi-step path.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn

from mdn_snntorch import presets
from mdn_snntorch.first_order import FirstOrder
from mdn_snntorch.mdn import MDN
from mdn_snntorch.presets import MetaNeuron
from mdn_snntorch.reset import reset

NeuronSpec = Union[str, MetaNeuron]


def make_neuron(spec: NeuronSpec, num_neurons: int, **kwargs) -> nn.Module:
    """A layer of ``num_neurons`` neurons from a preset name, a :class:`MetaNeuron`,
    ``"learnable"`` (per-neuron theta from the initial values, paper §4.2) or ``"1st-order"``.
    ``kwargs`` go to the neuron's constructor (``dt``, ``substeps``, ``spike_grad`` ...)."""
    if spec == "learnable":
        return MDN(presets.get("init"), num_neurons=num_neurons, learn_theta=True, **kwargs)
    neuron = presets.get(spec) if isinstance(spec, str) else spec
    if not isinstance(neuron, MetaNeuron):
        raise TypeError(f"neuron must be a preset name, 'learnable' or a MetaNeuron, got {type(spec).__name__}")
    if neuron.order == 1:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("dt", "substeps")}
    return neuron.build(**kwargs)


def neuron_label(spec: NeuronSpec) -> str:
    return spec.name if isinstance(spec, MetaNeuron) else str(spec)


class ThreeLayerSNN(nn.Module):
    """Paper Fig. 1. ``neuron`` sets the hidden layer, ``output_neuron`` the output layer (default: the same).

    ``forward(x)`` resets the neuron states, then returns output spikes ``[T, B, n_out]``,
    or ``(output spikes, hidden spikes)`` with ``return_hidden=True``.
    """

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        neuron: NeuronSpec = "2-FS",
        output_neuron: NeuronSpec | None = None,
        **neuron_kwargs,
    ):
        super().__init__()
        for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.neuron_spec = neuron_label(neuron)
        self.output_neuron_spec = neuron_label(output_neuron if output_neuron is not None else neuron)
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.hidden = make_neuron(neuron, n_hidden, **neuron_kwargs)
        self.fc2 = nn.Linear(n_hidden, n_out)
        self.output = make_neuron(output_neuron if output_neuron is not None else neuron, n_out, **neuron_kwargs)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        if x.dim() != 3 or x.shape[-1] != self.n_in:
            raise ValueError(f"ThreeLayerSNN expects input [T, B, {self.n_in}], got {tuple(x.shape)}")
        reset(self)
        hidden = self.hidden.multi_step(self.fc1(x))
        out = self.output.multi_step(self.fc2(hidden))
        return (out, hidden) if return_hidden else out

    def theta_parameters(self) -> list[nn.Parameter]:
        """The learnable dynamic parameters (theta of learnable MDN layers), for their own learning rate."""
        return [p for name, p in self.named_parameters() if name.split(".")[-1].startswith("theta_")]
