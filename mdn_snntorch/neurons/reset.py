"""Reset or detach the neuron states of one network, and only that network.

snnTorch's ``utils.reset`` finds neurons by snnTorch's own classes (``isinstance(m, snn.Leaky)`` ...)
among the net's direct children and resets every live instance of those classes, in any network
(snnTorch issue #438): it never reaches this package's neurons. These walk ``net.modules()`` instead and
work for snnTorch's neurons too.
"""

from __future__ import annotations

from snntorch import SpikingNeuron
from torch import nn


def reset(net: nn.Module) -> nn.Module:
    """Reset (and so detach) the state of every spiking neuron inside ``net``; returns ``net``.

    Call it before each batch (the equivalent of ``snntorch.utils.reset(net)``)."""
    for module in net.modules():
        if isinstance(module, SpikingNeuron) and hasattr(module, "reset_mem"):
            module.reset_mem()
    return net


def detach(net: nn.Module) -> nn.Module:
    """Cut the state of every spiking neuron inside ``net`` from the autograd graph, keeping its values
    (truncated BPTT between chunks of a sequence; the per-network ``detach_hidden``); returns ``net``."""
    for module in net.modules():
        if not isinstance(module, SpikingNeuron):
            continue
        if hasattr(module, "detach_states"):
            module.detach_states()
            continue
        for name, value in module._buffers.items():  # snnTorch's neurons keep their state in buffers
            if value is not None and value.requires_grad:
                module._buffers[name] = value.detach()
    return net
