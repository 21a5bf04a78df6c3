"""The neuron modules: :class:`MDN` (2nd order, paper Eq. 2), :class:`FirstOrder` (Eq. 3), their
recurrent forms :class:`RMDN` and :class:`RFirstOrder`, the per-network :func:`reset` and :func:`detach`,
:func:`BPTT` (snnTorch's, for any neurons), and :func:`make_neuron`, the one name-to-neuron factory."""

from mdn_snntorch.neurons.backprop import BPTT
from mdn_snntorch.neurons.factory import lookup, make_neuron
from mdn_snntorch.neurons.first_order import FirstOrder
from mdn_snntorch.neurons.mdn import MDN
from mdn_snntorch.neurons.recurrent import RMDN, RFirstOrder
from mdn_snntorch.neurons.reset import detach, reset

__all__ = ["BPTT", "MDN", "RMDN", "FirstOrder", "RFirstOrder", "detach", "lookup", "make_neuron", "reset"]
