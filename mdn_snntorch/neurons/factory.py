"""The one place that turns a neuron's name or description into an snnTorch neuron module.

A *neuron spec* is one of

- a preset name (``"2-FS"``, ``"1st-order"``, ... see :mod:`mdn_snntorch.meta_neurons`),
- ``"learnable"``: per-neuron learnable theta from the initial values ``(0.02, 0.2, 0, 0.08)``,
- a :class:`~mdn_snntorch.meta_neurons.MetaNeuron` (for instance from a library), or its ``to_dict()``.

:func:`lookup` finds a name among ``learnable``, the presets and any libraries; :func:`make_neuron`
builds the layer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from mdn_snntorch import meta_neurons
from mdn_snntorch.meta_neurons import MetaNeuron, MetaNeuronLibrary
from mdn_snntorch.neurons.first_order import FirstOrder
from mdn_snntorch.neurons.mdn import MDN

LEARNABLE = "learnable"
NeuronSpec = str | MetaNeuron
LibraryLike = MetaNeuronLibrary | str | os.PathLike


def _library(lib: LibraryLike) -> MetaNeuronLibrary:
    return lib if isinstance(lib, MetaNeuronLibrary) else meta_neurons.load_library(lib)


def lookup(name: str, libraries: Sequence[LibraryLike] = ()) -> NeuronSpec:
    """``"learnable"`` or a preset name as is; a library neuron's name as its :class:`MetaNeuron`.

    ``ValueError`` listing every known name when ``name`` is in none of them, and when it is in
    more than one place (two libraries, or a library and the presets), naming both.
    """
    libs = [(str(lib if not isinstance(lib, MetaNeuronLibrary) else "a library"), _library(lib)) for lib in libraries]
    found = [("the presets", name)] if name == LEARNABLE or name in meta_neurons.PRESETS else []
    found += [(where, lib.get(name)) for where, lib in libs if name in lib.names]
    if len(found) > 1:
        raise ValueError(f"neuron name {name!r} is defined by more than one source: {', '.join(w for w, _ in found)}")
    if found:
        return found[0][1]
    known = [LEARNABLE, *meta_neurons.PRESETS] + [n for _, lib in libs for n in lib.names]
    raise ValueError(f"unknown neuron {name!r}; known: {', '.join(known)}")


def resolve(spec: NeuronSpec | dict[str, Any]) -> NeuronSpec:
    """A spec as :func:`make_neuron` takes it: a ``MetaNeuron.to_dict()`` dict becomes a MetaNeuron."""
    if isinstance(spec, dict):
        return MetaNeuron.from_dict(spec)
    return spec


def meta_neuron(spec: NeuronSpec | dict[str, Any]) -> MetaNeuron:
    """The :class:`MetaNeuron` of a preset name, a MetaNeuron or its dict (not ``"learnable"``)."""
    spec = resolve(spec)
    return meta_neurons.get(spec) if isinstance(spec, str) else spec


def label(spec: NeuronSpec) -> str:
    """The neuron's name."""
    return spec.name if isinstance(spec, MetaNeuron) else str(spec)


def to_json(spec: NeuronSpec) -> str | dict[str, Any]:
    """A name stays a name; a MetaNeuron (e.g. from a library) is stored whole."""
    return spec.to_dict() if isinstance(spec, MetaNeuron) else spec


def make_neuron(spec: NeuronSpec | dict[str, Any], num_neurons: int | None = None, **kwargs) -> nn.Module:
    """A layer of ``spec`` neurons: an :class:`MDN` or a :class:`FirstOrder`.

    A frozen neuron type shares one theta across the layer and takes any width; ``"learnable"``
    needs ``num_neurons`` for its per-neuron theta. ``kwargs`` go to the constructor (``dt``,
    ``substeps``, ``spike_grad``, ``dtype`` ...); the
    MDN-only ``dt`` and ``substeps`` are dropped for a 1st-order neuron.
    """
    spec = resolve(spec)
    if spec == LEARNABLE:
        return MDN(meta_neurons.get("init"), num_neurons=num_neurons, learn_theta=True, **kwargs)
    if not isinstance(spec, (str, MetaNeuron)):
        raise TypeError(f"neuron must be a preset name, {LEARNABLE!r} or a MetaNeuron, got {type(spec).__name__}")
    neuron = meta_neuron(spec)
    if neuron.order == 1:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("dt", "substeps")}
        return FirstOrder(decay=neuron.decay, **kwargs)
    return MDN(theta=neuron, **kwargs)
