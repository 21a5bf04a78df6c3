"""The custom ops in eager mode (mdn_snntorch.fused.eager): the neurons' fused op and the event-driven layer run
their implementation and autograd formula as a plain autograd Function, with the same results as through the
dispatcher, bit for bit; a mode, tracer or transform that must see the op gets the op."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mdn_snntorch as mdn
from mdn_snntorch.fused import eager
from mdn_snntorch.pipeline.model import ThreeLayerSNN

OPS = {"mdn_snntorch.mdn_forward.default", "mdn_snntorch.first_order_forward.default", "mdn_snntorch.spike_linear.default"}


class OpNames(TorchDispatchMode):
    """Records the name of every op dispatched while it is active."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def training_pass(model, x, y):
    """Outputs, and the gradients of every parameter and of the input, of one forward and backward."""
    out = model(x)
    loss = ((out.mean(0) - y) ** 2).sum()
    leaves = [x, *model.parameters()]
    return out.detach(), torch.autograd.grad(loss, leaves)


def models_and_input(neuron: str):
    torch.manual_seed(0)
    model = ThreeLayerSNN(40, 30, 5, neuron, check_input=False)
    x = (torch.rand(25, 4, 40) < 0.3).float().requires_grad_()
    y = torch.rand(4, 5)
    return model, x, y


@pytest.mark.parametrize("neuron", ["2-FS", "1st-order", "learnable"])
def test_the_direct_path_gives_the_dispatchers_results_bit_for_bit(monkeypatch, neuron):
    model, x, y = models_and_input(neuron)
    direct = training_pass(model, x, y)
    assert type(model(x).grad_fn).__name__.startswith(("MdnForward", "FirstOrderForward"))
    monkeypatch.setattr(eager, "direct", lambda *tensors: False)
    assert "Generated" in type(model(x).grad_fn).__name__  # the op's own autograd node
    dispatched = training_pass(model, x, y)
    assert torch.equal(direct[0], dispatched[0])
    assert len(direct[1]) == len(dispatched[1]) and all(torch.equal(a, b) for a, b in zip(direct[1], dispatched[1]))


def test_a_dispatch_mode_sees_the_ops_themselves():
    """Under a dispatch mode (as FakeTensorMode or FlopCounterMode are) the layers call the registered ops; outside
    one they do not pass through the dispatcher at all."""
    model, x, y = models_and_input("2-FS")
    with OpNames() as mode:
        model(x)
    assert OPS - {"mdn_snntorch.first_order_forward.default"} <= set(mode.names)
    assert eager.direct(x) and not eager.direct(x, torch.nn.Parameter(x.detach()).as_subclass(_Sub))
    with OpNames():
        assert not eager.direct(x)
    with torch.device("cpu"):  # a function mode
        assert not eager.direct(x)


class _Sub(torch.Tensor):
    """A tensor subclass: the op is called as registered for it."""


def test_the_neurons_sequence_runs_the_direct_function_in_eager_mode():
    neuron = mdn.MDN("2-FS")
    spikes = neuron.multi_step(torch.randn(6, 3, 4, requires_grad=True))
    assert type(spikes.grad_fn).__name__.startswith("MdnForward")


def test_a_profile_of_the_direct_path_names_the_ops():
    """The direct path records each op's implementation under the op's name while the profiler runs, so a profile
    reads as one through the dispatcher."""
    model, x, y = models_and_input("2-FS")
    with torch.profiler.profile() as prof:
        training_pass(model, x, y)
    names = {e.name for e in prof.events()}
    assert {"mdn_snntorch::mdn_forward", "mdn_snntorch::mdn_backward", "mdn_snntorch::spike_linear"} <= names
    assert "mdn_snntorch::spike_linear_weight_grad" in names
