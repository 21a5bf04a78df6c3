r"""``SpikeLinear``: ``nn.Linear`` for spike inputs, computed from the active inputs only.

A layer fed with spikes multiplies a mostly-zero ``[T x B, K]`` matrix: on MNIST about 13 % of the input
spikes are ones, so most of a dense product multiplies by zero. :class:`SpikeLinear` is an ``nn.Linear``
(same constructor, initialisation, parameters ``weight`` and ``bias``, state-dict keys and results) whose
forward gathers and sums the weight columns of the active inputs and whose weight gradient scatters the
output gradients into the weight columns of the active inputs (done as a gather per input: the sum of the
output gradients of the rows where that input is active; :mod:`mdn_snntorch.sparse.ops`). Results equal
``nn.Linear``'s up to the order of the summation (float64 within 1e-12, float32 within 1e-5 of the largest
output; ``docs/performance.md#the-event-driven-linear-layer``).

- Inputs may be any values: 0/1 spikes take the add-only path; other values (graded spikes, spike counts,
  any real number) are multiplied in, exactly as the dense product would; NaN and infinities propagate as
  there. What makes the layer pay is the fraction of zeros.
- ``[T, B, ..., K]`` inputs (three or more dimensions; the first is time) of 0/1 spikes are coded over time
  where that saves a quarter of the terms (``docs/performance.md#the-event-driven-linear-layer``): an input on
  at most steps of a 32-step segment (a rate-coded bright pixel) is complemented, summed once for the segment
  and taken away at the steps it is off, in the forward and in the weight gradient; else, an input that stays
  on for runs of steps may be run coded in the forward, added when it turns on and subtracted when it turns
  off, the sum carried between steps. ``time_coding=False`` sums every step directly (each output row then
  the plain sum of its active inputs' columns, in input order).
- Above ``dense_above`` (the fraction of nonzero inputs, per call) the dense product runs; the default
  :data:`DENSE_ABOVE` is the crossover measured by ``benchmarks/bench_sparse.py``.
- The event-driven kernels run on CPU float32/float64 tensors, outside autocast, when the C kernels could
  be built; everything else (CUDA, bfloat16, autocast, no compiler) runs ``torch.nn.functional.linear``.
- ``layer.explain(x)`` (or :func:`explain`) says which of these a call with ``x`` runs, and why.
- The input gradient, when the input requires one (a hidden layer's spikes do), is the dense
  ``grad_out @ W``. Second derivatives are not supported on the event-driven path.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor

#: above this fraction of nonzero inputs the dense product is faster: the lowest crossover measured by
#: benchmarks/bench_sparse.py on a quiet machine (forward + weight gradient of the paper's input layer: 0.33
#: on one thread, 0.30 on two; docs/performance.md#the-event-driven-linear-layer)
DENSE_ABOVE = 0.3


def _dense_reason(input: Tensor, weight: Tensor, bias: Tensor | None) -> str | None:
    """Why ``torch.nn.functional.linear`` runs instead of the event-driven kernels, or None when they can run."""
    if input.device.type != "cpu" or input.dtype not in (torch.float32, torch.float64) or input.dim() == 0 or not input.numel():
        return "the input is not a non-empty CPU float32 or float64 tensor"
    if weight.dtype != input.dtype or weight.dim() != 2 or input.shape[-1] != weight.shape[1] or weight.device != input.device:
        return "the weight's dtype, shape or device does not match the input"
    if bias is not None and (bias.dtype != input.dtype or bias.shape != (weight.shape[0],) or bias.device != input.device):
        return "the bias's dtype, shape or device does not match the input"
    if torch.is_autocast_enabled("cpu"):
        return "autocast is on"
    if max(input.numel() // weight.shape[1], weight.shape[1]) >= 2**31:
        return "2**31 rows or inputs or more (the kernels index them with int32)"
    from mdn_snntorch.sparse import c_kernels  # built at first use

    if not c_kernels.available():
        return "the C kernels are not built (no compiler, a failed build, or MDN_SNNTORCH_NO_CEXT=1)"
    return None


def _time_steps(input: Tensor, time_coding: bool) -> int:
    """The steps the codings read: the first dimension of a ``[T, B, ..., K]`` input, else 1 (no coding over time)."""
    return input.shape[0] if input.dim() >= 3 and time_coding else 1


def _event_driven(input: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    return _dense_reason(input, weight, bias) is None


class Route(NamedTuple):
    """What :func:`spike_linear` runs for an input: ``path`` is ``"functional"`` (``torch.nn.functional.linear``),
    ``"dense"`` (the kernels found too many nonzeros), or the event-driven sums, ``"complement"``, ``"runs"`` or
    ``"direct"``; ``reason`` says why. ``print`` it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def explain(
    input: Tensor, weight: Tensor, bias: Tensor | None = None, dense_above: float = DENSE_ABOVE, time_coding: bool = True
) -> Route:
    """The :class:`Route` ``spike_linear(input, weight, bias, dense_above, time_coding)`` takes, from one scan of
    ``input`` (and the codings' splits, which count their entries) and no product."""
    reason = _dense_reason(input, weight, bias)
    if reason is not None:
        return Route("functional", reason)
    from mdn_snntorch.sparse import c_kernels, ops

    K = weight.shape[1]
    x = input.detach().reshape(-1, K).contiguous()
    mask, _, nnz, binary = c_kernels.scan_rows(x)
    share = f"{nnz:,} nonzeros, {nnz / x.numel():.1%} of the input"
    if ops._too_dense(nnz, x, dense_above):
        return Route("dense", f"{share}, above dense_above={dense_above:g}")
    steps = _time_steps(input, time_coding)
    coding = ops.choose_coding(mask, nnz, binary, x.shape[0], K, steps)
    if coding.name == "complement":
        return Route(
            "complement", f"{share}; the complement coding over {steps} steps: {coding.entries:,} weight-gradient entries"
        )
    if coding.name == "runs":
        return Route("runs", f"{share}; the run coding over {steps} steps (at most {coding.entries:,} entries) in the forward")
    if not time_coding and input.dim() >= 3:
        why = "time_coding=False"
    elif steps == 1:
        why = "no time dimension (1 or 2 dimensions)" if input.dim() < 3 else "one step"
    elif not binary:
        why = "values other than 0 and 1"
    else:
        why = "neither coding saves a quarter of the entries"
    return Route("direct", f"{share}; every step summed directly: {why}")


def spike_linear(
    input: Tensor, weight: Tensor, bias: Tensor | None = None, dense_above: float = DENSE_ABOVE, time_coding: bool = True
) -> Tensor:
    """``torch.nn.functional.linear(input, weight, bias)`` computed from the nonzero inputs (see the module
    docstring); ``dense_above``: the fraction of nonzero inputs above which the dense product runs;
    ``time_coding``: let the complement and run codings read the first dimension of a ``[T, B, ..., K]`` input
    as time."""
    if not _event_driven(input, weight, bias):
        return F.linear(input, weight, bias)
    from mdn_snntorch.sparse import ops  # the custom ops, registered at first use

    K, N = weight.shape[1], weight.shape[0]
    steps = _time_steps(input, time_coding)
    out = ops.spike_linear_product(input.reshape(-1, K).contiguous(), weight, bias, float(dense_above), steps)
    return out.view(*input.shape[:-1], N)


class SpikeLinear(nn.Linear):
    """A drop-in ``nn.Linear`` for spike inputs (see the module docstring): same arguments, plus
    ``dense_above``, the fraction of nonzero inputs above which a call runs the dense product (default
    :data:`DENSE_ABOVE`), and ``time_coding`` (default ``True``), whether ``[T, B, ..., K]`` inputs may be coded
    over their first dimension. ``SpikeLinear.from_linear(linear)`` wraps an existing layer's parameters."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        dense_above: float = DENSE_ABOVE,
        time_coding: bool = True,
    ):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.dense_above = float(dense_above)
        self.time_coding = bool(time_coding)

    def forward(self, input: Tensor) -> Tensor:
        return spike_linear(input, self.weight, self.bias, self.dense_above, self.time_coding)

    def explain(self, input: Tensor) -> Route:
        """The :class:`Route` a call with ``input`` takes, and why (:func:`explain`)."""
        return explain(input, self.weight, self.bias, self.dense_above, self.time_coding)

    def extra_repr(self) -> str:
        coding = "" if self.time_coding else ", time_coding=False"
        return f"{super().extra_repr()}, dense_above={self.dense_above:g}{coding}"

    @classmethod
    def from_linear(cls, linear: nn.Linear, dense_above: float = DENSE_ABOVE, time_coding: bool = True) -> SpikeLinear:
        """A ``SpikeLinear`` sharing ``linear``'s parameters (no copy)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        layer.weight, layer.bias = linear.weight, linear.bias
        layer.dense_above, layer.time_coding = float(dense_above), bool(time_coding)
        return layer
