"""Reset the neuron states of one network, and only that network.

snnTorch's ``utils.reset`` walks a global instance registry: it misses neuron classes it
does not know and resets neurons of other networks too (snnTorch issue #438). This walks
``net.modules()`` instead.
"""

from __future__ import annotations

from snntorch import SpikingNeuron
from torch import nn


def reset(net: nn.Module) -> nn.Module:
    """Reset (and so detach) the state of every spiking neuron inside ``net``; returns ``net``."""
    for module in net.modules():
        if isinstance(module, SpikingNeuron) and hasattr(module, "reset_mem"):
            module.reset_mem()
    return net
