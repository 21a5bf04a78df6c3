"""The transfer step of the paper: a network whose MDN layers run one frozen meta neuron.

:func:`freeze` copies the model and, in every MDN layer (:class:`~mdn_snntorch.MDN`,
:class:`~mdn_snntorch.RMDN`; or in the named ones), replaces theta by the meta neuron's values as buffers:
no theta parameter is left to train. Theta keeps the layer's shape (``param_shape``), filled with the
neuron's four values, so the layer's input checks stay as they were (a layer with theta per batch row
still takes batches of that many rows). Everything else is the model's: weights, the recurrent
connections, snnTorch options (``threshold``, ``spike_grad``, ``init_hidden``, ``output``, ...),
``step_mode``, ``dt``, ``substeps``, ``detach_reset``; the copy's neuron states start from their initial
values. Python floats of the neuron are kept, so ``.double()`` gives its exact float64 values, as a hand-built
``mdn.MDN(neuron, dtype=torch.float64)`` has them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from snntorch import SpikingNeuron
from torch import nn

from mdn_snntorch.discovery.theta import theta_layers, unwrap
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.neurons import factory
from mdn_snntorch.neurons.base import build_params
from mdn_snntorch.neurons.mdn import MDN, THETA_NAMES
from mdn_snntorch.neurons.reset import reset


def _copy(net: nn.Module) -> nn.Module:
    """A deep copy; neuron states that are part of an autograd graph (deepcopy refuses those) go as detached copies."""
    memo = {}
    for module in net.modules():
        if isinstance(module, SpikingNeuron):
            for t in module._buffers.values():
                if t is not None and t.grad_fn is not None:
                    memo[id(t)] = t.detach().clone()
    return copy.deepcopy(net, memo)


def _freeze_layer(layer: MDN, neuron: MetaNeuron) -> None:
    """Theta of ``layer`` becomes ``neuron``'s, as buffers of the layer's shape, dtype and device."""
    like = layer.theta_a
    tensors, exact, _ = build_params(
        THETA_NAMES, neuron.theta, num_neurons=None, param_shape=layer.param_shape, dtype=like.dtype, device=like.device
    )
    for name in THETA_NAMES:
        layer._parameters.pop(name, None)
        layer._buffers.pop(name, None)
        layer._exact.pop(name, None)
    layer._register_params(tensors, exact, learn=False)
    layer.learn_theta = False
    layer.name = neuron.name
    layer._horizon_warned = False


def freeze(model: nn.Module, neuron: str | MetaNeuron | dict, layers: Sequence[str] | None = None) -> nn.Module:
    """A copy of ``model`` in which every MDN layer (or the ``layers`` named, as in ``named_modules()``) runs
    ``neuron`` with frozen theta; the model itself is not changed.

    ``neuron``: a preset name (``"2-FS"``), a 2nd-order :class:`~mdn_snntorch.meta_neurons.MetaNeuron` (from
    a library) or its ``to_dict()``. A ``DistributedDataParallel`` / ``DataParallel`` wrapper is looked
    through and the frozen copy comes back unwrapped (wrap it again to train it in parallel). Build the
    optimiser after freezing: the copy has its own parameters. ``ValueError`` when the model has no MDN layer,
    a named layer is not one, or the neuron is 1st order (it has no theta; use ``mdn.FirstOrder`` layers)."""
    if neuron == factory.LEARNABLE:
        raise ValueError("freeze takes a meta neuron to freeze, not 'learnable'")
    try:
        meta = factory.meta_neuron(neuron)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    if meta.order != 2:
        raise ValueError(f"freeze runs a 2nd-order meta neuron in MDN layers; {meta.name!r} is order {meta.order} (no theta)")
    names = list(theta_layers(model, layers, learnable=False))
    frozen = _copy(unwrap(model))
    modules = dict(frozen.named_modules())
    with torch.no_grad():
        for name in names:
            _freeze_layer(modules[name], meta)
    return reset(frozen)
