r"""Recurrent MDN and 1st-order neurons, with snnTorch's ``RLeaky`` / ``RSynaptic`` vocabulary.

.. math::

    I(t) = \sigma\big(x(t) + R(S(t-1))\big), \quad \text{then one step of } :class:`~mdn_snntorch.MDN`
    \text{ (or } :class:`~mdn_snntorch.FirstOrder`\text{)}

The recurrent current ``R(S(t-1))`` of the previous step's spikes enters *before* the paper's sigmoid,
added to the feed-forward input. ``R`` is an ``nn.Linear(F, F)`` (``linear_features=F``), an
``nn.Conv2d(C, C, k, padding=k // 2)`` (``conv2d_channels=C``, ``kernel_size=k``) or, with
``all_to_all=False``, one weight ``V`` per neuron (``S * V``; a float or a broadcastable tensor), as in
snnTorch. ``learn_recurrent`` makes them trainable. The spikes ``S`` are part of the state
(``spk``, reset to zeros by :func:`mdn_snntorch.reset`).

``forward(input_, spk, u, mem)`` returns ``(spk, u, mem)`` like ``snn.RSynaptic`` (``RFirstOrder``:
``forward(input_, spk, mem)`` returns ``(spk, mem)`` like ``snn.RLeaky``). A whole sequence
(:meth:`RMDN.multi_step`, or ``step_mode="multi"``) runs the single step ``T`` times, since every step
needs the previous spikes: each step is one recurrent layer call and one fused step node
(:func:`~mdn_snntorch.functional.fused_mdn_step`); the fused time loop does not apply.
"""

from __future__ import annotations

import torch
from torch import nn

from mdn_snntorch.neurons.base import stack_steps, step_like
from mdn_snntorch.neurons.first_order import FirstOrder
from mdn_snntorch.neurons.mdn import MDN


class OneToOne(nn.Module):
    """One recurrent weight per neuron: ``spk * V`` (snnTorch's ``RecurrentOneToOne``)."""

    def __init__(self, V, learn: bool, dtype=None, device=None):
        super().__init__()
        V = torch.as_tensor(V, dtype=dtype or torch.get_default_dtype(), device=device).clone()
        if learn:
            self.V = nn.Parameter(V)
        else:
            self.register_buffer("V", V)

    def forward(self, spk: torch.Tensor) -> torch.Tensor:
        return spk * self.V


def _recurrent_layer(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn, dtype, device) -> nn.Module:
    """The recurrent connection, with snnTorch's ``RLeaky`` rules for which arguments go together."""
    conv = conv2d_channels is not None or kernel_size is not None
    if all_to_all:
        if linear_features is not None and conv:
            raise TypeError("give linear_features or (conv2d_channels and kernel_size), not both")
        if linear_features is not None:
            layer = nn.Linear(linear_features, linear_features, dtype=dtype, device=device)
        elif conv2d_channels is not None and kernel_size is not None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            layer = nn.Conv2d(conv2d_channels, conv2d_channels, k, padding=(k[0] // 2, k[1] // 2), dtype=dtype, device=device)
        elif conv:
            raise TypeError("conv2d_channels and kernel_size must both be given for a recurrent Conv2d")
        else:
            raise TypeError(
                "all_to_all=True needs linear_features (a recurrent Linear) or conv2d_channels and kernel_size "
                "(a recurrent Conv2d); use all_to_all=False for one weight V per neuron"
            )
    else:
        if linear_features is not None or conv:
            raise TypeError("all_to_all=False takes the one-to-one weight V, not linear_features, conv2d_channels, kernel_size")
        layer = OneToOne(V, learn, dtype, device)
    if not learn:
        for p in layer.parameters():
            p.requires_grad_(False)
    return layer


class _Recurrent:
    """What RMDN and RFirstOrder add to their neuron: the recurrent layer, the spike state, the step loop."""

    recurrent: nn.Module

    def _init_recurrent(self, V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent, kwargs):
        dtype, device = kwargs.get("dtype"), kwargs.get("device")
        self.all_to_all = bool(all_to_all)
        self.linear_features = linear_features
        self.conv2d_channels = conv2d_channels
        self.kernel_size = kernel_size
        self.learn_recurrent = bool(learn_recurrent)
        self.recurrent = _recurrent_layer(
            V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent, dtype, device
        )

    def _zero_spikes(self, like: torch.Tensor) -> torch.Tensor:
        """The initial spike state (zeros), remembered so that the first step can skip the recurrent layer."""
        spk = torch.zeros_like(like)
        self.__dict__["_initial_spk"] = spk
        return spk

    def _recurrent_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x + R(S(t-1))``. Right after a reset ``S`` is the known zero state and ``R(0)`` is the layer's bias
        (exactly: ``0 @ W + b = b`` for finite weights), so the first step skips the matmul or convolution."""
        spk, layer = self._buffers["spk"], self.recurrent
        if spk is self.__dict__.get("_initial_spk") and not torch.compiler.is_compiling():
            if type(layer) is nn.Linear:
                return x if layer.bias is None else x + layer.bias
            if type(layer) is nn.Conv2d:
                return x if layer.bias is None else x + layer.bias.view(-1, 1, 1)
        return x + layer(spk)

    def _recurrent_step(self, x: torch.Tensor, compiling: bool = False) -> torch.Tensor:
        """One step of a checked input: add the recurrent current of the previous spikes, step, keep the spikes."""
        spk = self._step(self._recurrent_input(x), compiling)
        self._buffers["spk"] = spk
        return spk

    def _run(self, input_: torch.Tensor, states: dict):
        self._take_states(**states)
        if self.step_mode == "multi":
            return self.multi_step(input_, return_traces=not (self.init_hidden and not self.output))
        compiling = torch.compiler.is_compiling()
        x = self._checked_input(input_, compiling=compiling)
        self._ensure_states(x)
        spk = self._recurrent_step(x, compiling)
        return self._returns(spk, tuple(getattr(self, n) for n in self._state_names[1:]))

    def multi_step(self, input_seq: torch.Tensor, *, return_traces: bool = False):
        """Run ``[T, B, ...]`` from the current state, one recurrent step at a time: spikes ``[T, B, ...]``, or
        the spikes and the post-reset state traces (``(spk, u, mem)`` / ``(spk, mem)``) with ``return_traces``."""
        x = self._checked_input(input_seq, sequence=True)
        self._ensure_states(step_like(x))
        names, before = self._state_names[1:], self._steps
        spikes, traces = [], {n: [] for n in names}
        compiling = torch.compiler.is_compiling()
        for x_t in x.unbind(0):
            spikes.append(self._recurrent_step(x_t, compiling))
            for n in names:
                traces[n].append(self._buffers[n])
        stacked = {n: stack_steps(traces[n], x) for n in names}
        self._watch_membrane(before, lambda: stacked["mem"])
        spikes = stack_steps(spikes, x)
        return (spikes, *(stacked[n] for n in names)) if return_traces else spikes


class RMDN(_Recurrent, MDN):
    """Recurrent 2nd-order meta-dynamic neuron (see the module docstring).

    Args:
        theta: as :class:`~mdn_snntorch.MDN`.
        V: the one-to-one recurrent weight (``all_to_all=False``): a float or a broadcastable tensor.
        all_to_all: a full recurrent ``nn.Linear`` / ``nn.Conv2d`` (``True``) or one weight per neuron.
        linear_features: ``F`` of the recurrent ``nn.Linear(F, F)`` (inputs ``[B, F]``).
        conv2d_channels, kernel_size: of the recurrent ``nn.Conv2d(C, C, k, padding=k // 2)`` (inputs ``[B, C, H, W]``).
        learn_recurrent: train the recurrent weights (``V`` or the layer's).
        dtype, device: also of the recurrent layer.

    Everything else as :class:`~mdn_snntorch.MDN` (``forward`` takes and returns the spike state too).
    """

    _state_names = ("spk", "u", "mem")

    def __init__(
        self,
        theta="2-FS",
        V=1.0,
        all_to_all: bool = True,
        linear_features: int | None = None,
        conv2d_channels: int | None = None,
        kernel_size=None,
        learn_recurrent: bool = True,
        **kwargs,
    ):
        super().__init__(theta, **kwargs)
        self._init_recurrent(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent, kwargs)

    def _initial_states(self, like):
        u, v = super()._initial_states(like)
        return self._zero_spikes(like), u, v

    def init_rmdn(self):
        """Initial ``(spk, u, mem)`` to pass to :meth:`forward` (snnTorch's ``init_rsynaptic``); lazily shaped."""
        return self.reset_mem()

    def forward(self, input_, spk=None, u=None, mem=None):
        """One step: ``(spk, u, mem)``, or ``spk`` with ``init_hidden=True`` (a sequence with ``step_mode="multi"``)."""
        return self._run(input_, dict(spk=spk, u=u, mem=mem))


class RFirstOrder(_Recurrent, FirstOrder):
    """Recurrent 1st-order neuron: :class:`~mdn_snntorch.FirstOrder` with the recurrent current of
    :class:`RMDN`; ``forward(input_, spk, mem)`` returns ``(spk, mem)`` like ``snn.RLeaky``."""

    _state_names = ("spk", "mem")

    def __init__(
        self,
        decay=0.8,
        V=1.0,
        all_to_all: bool = True,
        linear_features: int | None = None,
        conv2d_channels: int | None = None,
        kernel_size=None,
        learn_recurrent: bool = True,
        **kwargs,
    ):
        super().__init__(decay, **kwargs)
        self._init_recurrent(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent, kwargs)

    def _initial_states(self, like):
        return self._zero_spikes(like), torch.zeros_like(like)

    def init_rfirst_order(self):
        """Initial ``(spk, mem)`` to pass to :meth:`forward` (snnTorch's ``init_rleaky``); lazily shaped."""
        return self.reset_mem()

    def forward(self, input_, spk=None, mem=None):
        """One step: ``(spk, mem)``, or ``spk`` with ``init_hidden=True`` (a sequence with ``step_mode="multi"``)."""
        return self._run(input_, dict(spk=spk, mem=mem))
