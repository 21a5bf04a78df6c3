"""Meta-Dynamic Neurons (MDN) for snnTorch.

2nd-order neurons ``dV/dt = V^2 - V - U + I``, ``dU/dt = theta_a (theta_b V - U)``, reset
``V <- theta_c, U <- U + theta_d`` (paper Eq. 2), the 1st-order baseline (Eq. 3), the window
surrogate (Eq. 6) and the paper's meta-neuron presets (Table 2).
"""

from mdn_snntorch import functional, fused, presets, surrogate
from mdn_snntorch.first_order import FirstOrder
from mdn_snntorch.fused import use_reference
from mdn_snntorch.mdn import MDN
from mdn_snntorch.presets import MetaNeuron, MetaNeuronLibrary, load_library, save_library
from mdn_snntorch.reset import reset
from mdn_snntorch.surrogate import window

__version__ = "0.1.0"

__all__ = [
    "MDN",
    "FirstOrder",
    "MetaNeuron",
    "MetaNeuronLibrary",
    "functional",
    "fused",
    "load_library",
    "presets",
    "reset",
    "save_library",
    "surrogate",
    "use_reference",
    "window",
]
