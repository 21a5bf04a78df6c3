r"""Whole-sequence layers: stateless layers on ``[T, B, ...]`` by folding time into the batch.

.. math::

    y[t] = f(x[t]) \ \text{for every step } t, \text{ computed as } f(x_{[T B, \ldots]})

With neurons in ``step_mode="multi"`` (whose ``forward`` takes a whole ``[T, B, ...]`` sequence and runs
the fused time loop), a conv net is one ``nn.Sequential`` over the whole sequence::

    net = nn.Sequential(
        mdn.TimeDistributed(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2)),
        mdn.MDN("2-FS", step_mode="multi", init_hidden=True),
        mdn.TimeDistributed(nn.Flatten(), nn.Linear(12 * 12 * 12, 10)),
        mdn.MDN("2-FS", step_mode="multi", init_hidden=True, output=True),
    )
    spk, u, mem = net(x)  # x [T, B, 1, 28, 28] -> spikes [T, B, 10]

(SpikingJelly's ``SeqToANNContainer``.)

**Chunks on the CPU.** Folding ``T`` into the batch makes large intermediate tensors (tutorial 6's first
conv layer: 88 MB at ``T = 25``, ``B = 128``). glibc serves every allocation above 32 MiB with a fresh
``mmap``, so each such tensor is page-faulted anew on every call, which cost more than the whole neuron
layer in measurements (docs/snntorch.md#speed). On CPU tensors the layers therefore run on chunks of whole
time steps of about ``max_chunk_bytes`` of input each (default 2 MiB) and the results are concatenated:
the same values, the conv and pooling layers' efficiency at batch sizes of hundreds, and intermediates
that stay under the threshold. Layers with batch statistics (``BatchNorm`` in training mode) always see
the whole ``T x B`` batch at once, as do GPU tensors; ``max_chunk_bytes=None`` turns chunking off.

**State-dict keys.** ``TimeDistributed(layer)`` keeps ``layer``'s own keys (``weight``, ``bias``, not ``0.weight``),
so a net with one ``TimeDistributed`` per stateless layer has exactly the keys of its per-step form, and trained
weights load into either (a checkpoint with the ``0.``-prefixed keys of earlier versions loads too). With several
layers, ``TimeDistributed(a, b)`` numbers them like ``nn.Sequential`` (``0.weight``, ``1.weight``).

**Channels-last on the CPU.** PyTorch's CPU max pooling is several times faster on channels-last tensors
(vectorised over channels) than on the default layout, and convolutions are no slower there. When every
layer is of a type that does not depend on the memory layout (:data:`LAYOUT_AGNOSTIC`: convolutions,
pooling, batch norm, activations, dropout, ``Flatten``, ``Linear``...), 4-D batches ``[T B, C, H, W]`` on
the CPU run in channels-last and come back in the default layout. The values are those of the default
layout up to the summation order inside a convolution. ``channels_last=False`` turns it off (``True``
forces it for any layers).
"""

from __future__ import annotations

import torch
from snntorch import SpikingNeuron
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: input bytes per chunk of time steps on the CPU (see the module docstring)
CHUNK_BYTES = 2 << 20
#: layers whose results do not depend on the memory layout of their input (exact types): ``TimeDistributed``
#: runs 4-D CPU batches of these in channels-last
LAYOUT_AGNOSTIC = (
    nn.Conv2d,
    nn.ConvTranspose2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.BatchNorm2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Flatten,
    nn.Linear,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.ZeroPad2d,
    nn.Sequential,
)


class TimeDistributed(nn.Sequential):
    """Run stateless layers (``Conv2d``, ``Linear``, pooling, ``BatchNorm``, ``Flatten``, ``Dropout``...) on every
    step of a ``[T, B, ...]`` sequence at once, by folding ``T`` into the batch. Takes layers like ``nn.Sequential``.

    Args:
        layers: the layers, applied in order to ``[T * B, ...]``.
        max_chunk_bytes: on the CPU, run chunks of whole time steps of about this many input bytes
            (``None``: everything in one call); see the module docstring.
        channels_last: run 4-D batches in channels-last: ``None`` (on the CPU when every layer is in
            :data:`LAYOUT_AGNOSTIC`), ``True`` or ``False``; see the module docstring.

    Spiking neurons keep a state across steps and are refused here: put them between ``TimeDistributed``
    blocks with ``step_mode="multi"``. One wrapped layer keeps its own state-dict keys (module docstring).
    """

    def __init__(self, *layers: nn.Module, max_chunk_bytes: int | None = CHUNK_BYTES, channels_last: bool | None = None):
        super().__init__(*layers)
        for module in self.modules():
            if isinstance(module, SpikingNeuron):
                raise TypeError(
                    f"{type(module).__name__} keeps a state across time steps and cannot run with time folded into "
                    "the batch; put it outside TimeDistributed, with step_mode='multi'"
                )
        self.max_chunk_bytes = max_chunk_bytes
        self.channels_last = channels_last
        if len(self) == 1:  # keep the one layer's own state-dict keys (see the module docstring)
            self.register_state_dict_post_hook(_unwrap_keys)
            self.register_load_state_dict_pre_hook(_wrap_keys)

    def _steps_per_chunk(self, x: torch.Tensor) -> int:
        T = x.shape[0]
        if self.max_chunk_bytes is None or x.device.type != "cpu" or T < 2:
            return T
        if any(isinstance(m, _BatchNorm) and m.training for m in self.modules()):
            return T  # batch statistics must see the whole folded batch
        step_bytes = max(x[0].numel() * x.element_size(), 1)
        return max(1, min(T, self.max_chunk_bytes // step_bytes))

    def _use_channels_last(self, x: torch.Tensor) -> bool:
        if x.dim() != 5 or self.channels_last is False:
            return False
        if self.channels_last:
            return True
        return x.device.type == "cpu" and all(type(m) in LAYOUT_AGNOSTIC for m in self.modules() if m is not self)

    def _fold(self, x: torch.Tensor, channels_last: bool, restore: bool) -> torch.Tensor:
        t, B = x.shape[:2]
        folded = x.reshape(t * B, *x.shape[2:])
        if channels_last:
            folded = folded.contiguous(memory_format=torch.channels_last)
        y = super().forward(folded)
        if channels_last and restore:
            y = y.contiguous()
        return y.reshape(t, B, *y.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"TimeDistributed needs a sequence [T, B, ...], got shape {tuple(x.shape)}")
        steps, channels_last = self._steps_per_chunk(x), self._use_channels_last(x)
        if steps >= x.shape[0]:
            return self._fold(x, channels_last, restore=True)
        # torch.cat writes the chunks in the default layout: no per-chunk copy back from channels-last
        return torch.cat([self._fold(chunk, channels_last, restore=False) for chunk in x.split(steps)])

    def extra_repr(self) -> str:
        extra = [] if self.max_chunk_bytes == CHUNK_BYTES else [f"max_chunk_bytes={self.max_chunk_bytes}"]
        extra += [] if self.channels_last is None else [f"channels_last={self.channels_last}"]
        return ", ".join(extra)


def _unwrap_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """State-dict hook of a one-layer :class:`TimeDistributed`: ``prefix + "0." + key`` becomes ``prefix + key``."""
    inner = prefix + "0."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)


def _wrap_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Load pre-hook of a one-layer :class:`TimeDistributed`: the layer's own keys (``prefix + key``) are loaded
    into the wrapped layer (``prefix + "0." + key``); keys that already carry the ``0.`` are taken as they are."""
    inner = prefix + "0."
    for key in module[0].state_dict(keep_vars=True):
        if prefix + key in state_dict and inner + key not in state_dict:
            state_dict[inner + key] = state_dict.pop(prefix + key)
