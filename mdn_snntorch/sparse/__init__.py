"""The event-driven Linear layer for spike inputs.

- :mod:`~mdn_snntorch.sparse.linear`: :class:`SpikeLinear` (a drop-in ``nn.Linear``) and the functional
  :func:`spike_linear`; light (torch only), imported with the package.
- :mod:`~mdn_snntorch.sparse.ops`: the custom ops and their backward; imported on first use.
- :mod:`~mdn_snntorch.sparse.c_kernels`: the C kernels (source in ``c/spike_linear.c`` and the headers it
  includes: the gather, the run coding, the complement coding), built on first use.
"""

from __future__ import annotations

from mdn_snntorch.sparse.linear import DENSE_ABOVE, SpikeLinear, spike_linear

__all__ = ["DENSE_ABOVE", "SpikeLinear", "spike_linear"]
