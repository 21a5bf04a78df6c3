"""Meta-Dynamic Neurons (MDN) for snnTorch.

2nd-order neurons ``dV/dt = V^2 - V - U + I``, ``dU/dt = theta_a (theta_b V - U)``, reset
``V <- theta_c, U <- U + theta_d`` (paper Eq. 2), the 1st-order baseline (Eq. 3), the window
surrogate (Eq. 6) and the paper's meta-neuron presets (Table 2).

This package needs only torch, snntorch and numpy. The experiment pipeline
(:mod:`mdn_snntorch.pipeline`), the spike files (:mod:`mdn_snntorch.spikefile`) and the command line
are extras; the fused kernels load on first use.
"""

from importlib.metadata import PackageNotFoundError, version

from mdn_snntorch import functional, meta_neurons, surrogate
from mdn_snntorch.functional import StaleStateError
from mdn_snntorch.fused import use_reference
from mdn_snntorch.layers import TimeDistributed
from mdn_snntorch.meta_neurons import MetaNeuron, MetaNeuronLibrary, load_library, save_library
from mdn_snntorch.neurons import BPTT, MDN, RMDN, FirstOrder, RFirstOrder, detach, make_neuron, reset
from mdn_snntorch.neurons.base import StabilityHorizonWarning
from mdn_snntorch.sparse import SpikeLinear, spike_linear
from mdn_snntorch.surrogate import window

try:
    __version__ = version("mdn-snntorch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BPTT",
    "MDN",
    "RMDN",
    "FirstOrder",
    "RFirstOrder",
    "StabilityHorizonWarning",
    "StaleStateError",
    "TimeDistributed",
    "detach",
    "MetaNeuron",
    "MetaNeuronLibrary",
    "functional",
    "load_library",
    "make_neuron",
    "meta_neurons",
    "reset",
    "save_library",
    "spike_linear",
    "SpikeLinear",
    "surrogate",
    "use_reference",
    "window",
]
