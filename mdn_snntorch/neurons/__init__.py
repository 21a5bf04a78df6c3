"""The neuron modules: :class:`MDN` (2nd order, paper Eq. 2), :class:`FirstOrder` (Eq. 3), the
per-network :func:`reset`, and :func:`make_neuron`, the one name-to-neuron factory."""

from mdn_snntorch.neurons.factory import lookup, make_neuron
from mdn_snntorch.neurons.first_order import FirstOrder
from mdn_snntorch.neurons.mdn import MDN
from mdn_snntorch.neurons.reset import reset

__all__ = ["MDN", "FirstOrder", "lookup", "make_neuron", "reset"]
