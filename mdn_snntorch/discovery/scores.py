r"""Capability (paper Eq. 7) and the spatial and temporal capability of the paper's Fig. 8, over plain mappings.

Capability of neuron type i on a task, over the neuron types scored on that task:

.. math:: \mathrm{Cap}_i = \frac{\mathrm{Acc}_i - \overline{\mathrm{Acc}}}{\sigma(\mathrm{Acc})}

with :math:`\sigma` the population standard deviation over the types (the paper writes "var" and calls it
the standard deviation); 0 when all types score the same (docs/model.md#capability). Fig. 8: per neuron
type, the mean of :math:`\mathrm{Cap}_i` over the tasks of each kind,
:math:`\mathrm{Cap}^k_i = \frac{1}{|T_k|} \sum_{t \in T_k} \mathrm{Cap}_{i,t}`.

A table is ``{task: {neuron: accuracy}}`` (any score on any scale: Eq. 7 does not depend on it), the kinds
``{task: "spatial" | "temporal" | None}`` (None: the task is left out of Fig. 8)::

    caps = capability(table)                   # {task: {neuron: Cap}}
    fig8 = group_capability(caps, kinds)       # {neuron: {"spatial": ..., "temporal": ...}}
    capability_figure(fig8, "capability.png")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mdn_snntorch.discovery.figures import pyplot, save_png

#: the task kinds of the paper's Fig. 8
KIND_NAMES = ("spatial", "temporal")


def task_capability(acc: Mapping[str, float]) -> dict[str, float]:
    """Paper Eq. 7 on one task: ``(acc - mean) / std`` over its neuron types (population std; 0 if it is 0)."""
    values = np.array(list(acc.values()), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"capability needs finite scores, got {dict(acc)}")
    std = values.std()
    return {name: float((a - values.mean()) / std) if std > 0 else 0.0 for name, a in acc.items()}


def capability(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Paper Eq. 7 on every task of ``table`` (``{task: {neuron: accuracy}}``): ``{task: {neuron: Cap}}``."""
    for task, scores in table.items():
        if not isinstance(scores, Mapping):
            raise ValueError(f"capability takes {{task: {{neuron: accuracy}}}}; task {task!r} holds {scores!r}")
    return {task: task_capability(scores) for task, scores in table.items()}


def check_kinds(kinds: Mapping[str, str | None], name: str = "kinds") -> None:
    """Every kind is ``"spatial"``, ``"temporal"`` or None; ``ValueError`` naming ``name`` and the task otherwise."""
    for task, value in kinds.items():
        if value is not None and value not in KIND_NAMES:
            raise ValueError(f"{name}: {task}={value!r} is not one of {', '.join(KIND_NAMES)}")


def group_capability(
    caps: Mapping[str, Mapping[str, float]], kinds: Mapping[str, str | None]
) -> dict[str, dict[str, float | None]]:
    r"""Paper Fig. 8: per neuron, the mean of its Eq. 7 capability over the tasks of each kind.

    ``caps``: task -> neuron -> capability (:func:`capability`); ``kinds``: task -> ``"spatial"``,
    ``"temporal"`` or None (left out). Returns neuron -> ``{"spatial": ..., "temporal": ...}``, None for a
    kind without tasks."""
    check_kinds(kinds)
    neurons = list(dict.fromkeys(n for per_task in caps.values() for n in per_task))
    result: dict[str, dict[str, float | None]] = {}
    for neuron in neurons:
        result[neuron] = {}
        for k in KIND_NAMES:
            values = [caps[t][neuron] for t in caps if kinds.get(t) == k and neuron in caps[t]]
            result[neuron][k] = float(np.mean(values)) if values else None
    return result


def capability_figure(
    groups: Mapping[str, Mapping[str, float | None]], path: str | os.PathLike, neurons: Sequence[str] | None = None
) -> Path:
    """Draw paper Fig. 8 from :func:`group_capability`'s result: per neuron a bar for each kind that has a
    value (spatial, temporal), as a PNG at ``path``. ``neurons``: which and in what order (default: all)."""
    plt = pyplot()
    neurons = list(groups) if neurons is None else list(neurons)
    present = [k for k in KIND_NAMES if any(groups.get(n, {}).get(k) is not None for n in neurons)]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(neurons) * max(1, len(present))), 4))
    xn = np.arange(len(neurons))
    for k, kind in enumerate(present):
        offset = (k - (len(present) - 1) / 2) * (0.8 / len(present))
        heights = [np.nan if groups.get(n, {}).get(kind) is None else groups[n][kind] for n in neurons]
        ax.bar(xn + offset, heights, 0.8 / len(present), label=kind, color=("tab:blue", "tab:red")[k])
    if not present:
        ax.text(0.5, 0.5, "no task has a kind (spatial or temporal)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(xn, neurons)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title("spatial and temporal capability (paper Fig. 8)")
    ax.set_ylabel("mean capability over the tasks of a kind")
    if present:
        ax.legend(fontsize=8)
    return save_png(fig, path)
