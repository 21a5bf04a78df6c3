r"""Learned theta as points to cluster: every neuron of every learnable MDN layer of any ``nn.Module``.

A layer's theta ``(a, b, c, d)`` are four tensors of one shape (:class:`~mdn_snntorch.MDN`'s
``param_shape``); every element is one neuron and one point :math:`\theta_k = (a_k, b_k, c_k, d_k)`:
``(N,)`` gives N points, per-channel ``(C, 1, 1)`` gives C, theta per batch row ``(B, N)`` gives
B x N, a shared scalar theta one. Layers are found through ``named_modules()``, so they may sit in
``nn.Sequential``, :class:`~mdn_snntorch.TimeDistributed` nets or custom modules; a
``DistributedDataParallel`` / ``DataParallel`` wrapper (or ``torch.compile``'s) is looked through, and
layer names are those of the wrapped network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mdn_snntorch.neurons.mdn import MDN

THETA_COLUMNS = ("a", "b", "c", "d")


@dataclass(frozen=True)
class ThetaPoints:
    """Learned theta, one row per neuron: ``theta`` float64 ``[N, 4]`` (columns a, b, c, d), ``layer`` the
    name of each point's layer (``[N]`` str; ``""`` for a model that is itself the layer) and ``index``
    each point's position in its layer's flattened theta tensor (``[N]`` int)."""

    theta: np.ndarray
    layer: np.ndarray
    index: np.ndarray

    def __post_init__(self):
        theta = np.asarray(self.theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != 4:
            raise ValueError(f"ThetaPoints.theta must have shape [N, 4] (a, b, c, d), got {theta.shape}")
        layer, index = np.asarray(self.layer, dtype=str), np.asarray(self.index, dtype=np.int64)
        if layer.shape != (len(theta),) or index.shape != (len(theta),):
            raise ValueError(f"ThetaPoints: {len(theta)} points but {layer.shape} layer names and {index.shape} indices")
        if not np.isfinite(theta).all():
            raise ValueError("ThetaPoints.theta holds NaN or inf: the training diverged")
        for name, value in (("theta", theta), ("layer", layer), ("index", index)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.theta)

    @property
    def layers(self) -> dict[str, int]:
        """Layer name -> number of points, in the order the layers were found."""
        names, first, counts = np.unique(self.layer, return_index=True, return_counts=True)
        return {str(names[i]): int(counts[i]) for i in np.argsort(first)}

    def of(self, *layers: str) -> ThetaPoints:
        """The points of the named layers only."""
        unknown = [n for n in layers if n not in self.layers]
        if unknown:
            raise ValueError(f"no points of layer(s) {', '.join(map(repr, unknown))}; the layers are: {_names(self.layers)}")
        keep = np.isin(self.layer, layers)
        return ThetaPoints(self.theta[keep], self.layer[keep], self.index[keep])

    @classmethod
    def concatenate(cls, parts: Iterable[ThetaPoints]) -> ThetaPoints:
        """The points of several networks (seeds, say) as one set, in order."""
        parts = list(parts)
        if not parts:
            raise ValueError("ThetaPoints.concatenate needs at least one set of points")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("theta", "layer", "index")))


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside ``DistributedDataParallel``, ``DataParallel`` and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def theta_layers(model: nn.Module, layers: Sequence[str] | None = None, *, learnable: bool = True) -> dict[str, MDN]:
    """The MDN-family layers with theta (:class:`~mdn_snntorch.MDN`, :class:`~mdn_snntorch.RMDN`) of ``model``,
    by name: the learnable ones (``learnable=True``) or all of them; ``layers`` picks by name.

    ``ValueError`` naming what there is when no layer qualifies or a named one does not."""
    if isinstance(layers, str):
        raise TypeError(f"layers must be a sequence of layer names, not the string {layers!r}")
    net = unwrap(model)
    if not isinstance(net, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found = {name: m for name, m in net.named_modules() if isinstance(m, MDN) and (m.learn_theta or not learnable)}
    what = "learnable MDN layer (MDN or RMDN with learn_theta=True)" if learnable else "MDN layer (MDN or RMDN)"
    if not found:
        raise ValueError(f"{type(net).__name__} has no {what}")
    if layers is None:
        return found
    missing = [n for n in layers if n not in found]
    if missing:
        raise ValueError(f"layer(s) {_names(missing)} of {type(net).__name__} are not a {what}; those are: {_names(found)}")
    return {n: found[n] for n in dict.fromkeys(layers)}


def layer_theta(layer: MDN) -> np.ndarray:
    """One layer's theta as ``[neurons, 4]`` float64 (its four tensors broadcast together, then flattened)."""
    a, b, c, d = torch.broadcast_tensors(*(t.detach() for t in layer.theta))
    return np.stack([t.cpu().double().reshape(-1).numpy() for t in (a, b, c, d)], axis=1)


def collect_theta(model: nn.Module, layers: Sequence[str] | None = None) -> ThetaPoints:
    """Theta of every neuron of every learnable MDN layer of ``model`` (or of the named ``layers``), as points.

    ``ValueError`` when the model has no learnable MDN layer (build them with ``learn_theta=True``, e.g.
    ``mdn.MDN("init", param_shape=(C, 1, 1), learn_theta=True)``) or a named layer is not one."""
    parts = []
    for name, layer in theta_layers(model, layers).items():
        theta = layer_theta(layer)
        parts.append(ThetaPoints(theta, np.full(len(theta), name), np.arange(len(theta))))
    return ThetaPoints.concatenate(parts)
