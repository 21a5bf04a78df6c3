"""Fused multi-step neurons: the whole ``[T, ...]`` time loop as one ``torch.library`` custom op.

- :mod:`~mdn_snntorch.fused.dispatch`: which path a neuron takes and why (:func:`route`, ``backend``,
  :func:`use_reference`, :func:`use_kernel`); light, imported with the neurons.
- :mod:`~mdn_snntorch.fused.ops`: the custom ops with their explicit backward; imported on first use.
- the kernels behind the ops, all with the same arguments and results:
  :mod:`~mdn_snntorch.fused.c_kernels` (C for CPUs, source in ``c/mdn_kernels.c`` and ``c/mdn_kernels_impl.h``),
  :mod:`~mdn_snntorch.fused.triton_kernels` (CUDA) and :mod:`~mdn_snntorch.fused.torch_loop`
  (any device).
"""

from __future__ import annotations

import importlib
from typing import Any

from mdn_snntorch.fused.dispatch import BACKENDS, KERNELS, Route, route, use_kernel, use_reference

#: names served lazily from the ops module, so that importing the neurons stays light
_FROM_OPS = ("mdn_multistep", "first_order_multistep", "resolve_kernel")

__all__ = ["BACKENDS", "KERNELS", "Route", "route", "use_kernel", "use_reference", *_FROM_OPS]


def __getattr__(name: str) -> Any:
    if name in _FROM_OPS:
        return getattr(importlib.import_module("mdn_snntorch.fused.ops"), name)
    raise AttributeError(f"module 'mdn_snntorch.fused' has no attribute {name!r}")
