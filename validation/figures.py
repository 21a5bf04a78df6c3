"""Figures of the validation report (matplotlib, Agg backend), each saved atomically as PNG.

- :func:`neuron_traces`: paper Fig. 4 for one neuron under the sine stimulus: input I (blue), V (red),
  U (green) and the attractor of V (yellow; drawn at 1.0, above threshold, where there is none, as the
  paper does), snnTorch solid and Brian2 dashed, with |dV| and |dU| below on a log scale;
- :func:`rasters`: spike rasters of Brian2 and snnTorch side by side, differences marked;
- :func:`fi_curves`: firing rate against constant current for each integration scheme;
- :func:`agreement_overview`: max |dV| per comparison and neuron type;
- :func:`network_counts`: output spike counts of Brian2 against snnTorch for the replayed network.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mdn_snntorch.equations import V_TH  # noqa: E402
from mdn_snntorch.functional import attractor  # noqa: E402
from mdn_snntorch.pipeline.report import save_figure  # noqa: E402

NO_ATTRACTOR = 1.0  # where V has no fixed point (eps < 0), the attractor is drawn here


def _attractor_line(u: np.ndarray, current: np.ndarray) -> np.ndarray:
    _, stable, _ = attractor(torch.from_numpy(u), torch.from_numpy(current))
    return np.nan_to_num(stable.numpy(), nan=NO_ATTRACTOR)


def neuron_traces(path: Path, title: str, current: np.ndarray, brian2: dict, snntorch: dict) -> Path:
    """``brian2``/``snntorch``: ``{'v', 'u'}`` arrays ``[T]`` (``u`` all NaN for a 1st-order neuron)."""
    steps = np.arange(len(current))
    second_order = not np.isnan(brian2["u"]).all()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    top.plot(steps, current, color="tab:blue", lw=1, label="input I")
    for sim, style in ((snntorch, dict(lw=1.4)), (brian2, dict(lw=1.0, ls="--", color="k", alpha=0.7))):
        name = "snnTorch" if sim is snntorch else "Brian2"
        top.plot(steps, sim["v"], **({"color": "tab:red"} | style), label=f"V ({name})")
        if second_order:
            top.plot(steps, sim["u"], **({"color": "tab:green"} | style), label=f"U ({name})")
            top.plot(steps, _attractor_line(sim["u"], current), **({"color": "gold"} | style), label=f"attractor ({name})")
    top.axhline(V_TH, color="grey", lw=0.6, ls=":")
    top.set_ylim(-1.2, 1.6)
    top.set_ylabel("value")
    top.set_title(title)
    top.legend(loc="upper right", fontsize=7, ncol=3)
    eps = np.finfo(np.float64).tiny
    bottom.semilogy(steps, np.abs(snntorch["v"] - brian2["v"]) + eps, color="tab:red", lw=0.8, label="|dV|")
    if second_order:
        bottom.semilogy(steps, np.abs(snntorch["u"] - brian2["u"]) + eps, color="tab:green", lw=0.8, label="|dU|")
    bottom.set_ylim(1e-18, 1e2)
    bottom.set_xlabel("step")
    bottom.set_ylabel("difference")
    bottom.legend(loc="upper left", fontsize=7)
    return save_figure(fig, path)


def rasters(path: Path, title: str, brian2: np.ndarray, snntorch: np.ndarray, family: np.ndarray) -> Path:
    """Spike rasters ``[T, n]`` side by side; snnTorch spikes Brian2 lacks (and vice versa) in red."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, spikes, other, name in ((axes[0], brian2, snntorch, "Brian2"), (axes[1], snntorch, brian2, "snnTorch")):
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=1.5, marker="|", color="k", lw=0.6)
        t, n = np.nonzero(spikes & ~other)
        ax.scatter(t, n, s=12, marker="|", color="tab:red", lw=1.0, label="not in the other")
        ax.set_title(f"{name}")
        ax.set_xlabel("step")
        ax.set_xlim(0, spikes.shape[0])
    starts = [0] + [i for i in range(1, len(family)) if family[i] != family[i - 1]]
    axes[0].set_yticks(starts, [family[i] for i in starts], fontsize=7)
    axes[0].set_ylabel("neuron (by stimulus)")
    if (brian2 != snntorch).any():
        axes[1].legend(loc="upper right", fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path)


def fi_curves(path: Path, study, snntorch: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """One panel per neuron type: rate (spikes per unit time) against the constant current, per scheme;
    ``snntorch``: type -> (currents, rates) of the snnTorch float64 f-I neurons at dt = 1, drawn as dots."""
    n = len(study.types)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(study.schemes())))
    for k, (ax, name) in enumerate(zip(axes.flat, study.types)):
        for color, scheme in zip(colors, study.schemes()):
            ref = scheme == study.reference
            ax.plot(study.levels, study.fi_rate[scheme][k], color="k" if ref else color, lw=2 if ref else 1, label=scheme)
        ax.plot(study.levels, study.fi_occupancy[study.reference][k], color="k", ls=":", lw=1, label="ODE: steps with a spike")
        if name in snntorch:
            ax.plot(*snntorch[name], "o", ms=2.5, color="tab:red", label="snnTorch float64, dt=1")
        ax.set_title(name)
        ax.set_xlabel("constant current I")
        ax.set_ylabel("spikes per unit time")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("f-I curves: Euler at step h (h = 1 is the paper's model) against the ODE (rk4)")
    fig.tight_layout()
    return save_figure(fig, path)


def agreement_overview(path: Path, rows: list[tuple[str, str, float]], limits: dict[str, float]) -> Path:
    """``rows``: (comparison, neuron type, max |dV| over the exact window); ``limits``: rule name -> state_atol."""
    comparisons = list(dict.fromkeys(r[0] for r in rows))
    types = list(dict.fromkeys(r[1] for r in rows))
    value = {(c, t): v for c, t, v in rows}
    floor = 1e-18  # bit-identical results are drawn at this height
    fig, ax = plt.subplots(figsize=(min(12, max(6, 0.35 * len(types) * len(comparisons))), 4))
    width = 0.8 / len(comparisons)
    for i, c in enumerate(comparisons):
        heights = [max(value.get((c, t), 0.0), floor) for t in types]
        ax.bar(np.arange(len(types)) + i * width, heights, width, bottom=floor / 10, label=c)
    for name, limit in limits.items():
        if limit > 0:
            ax.axhline(limit, color="grey", ls="--", lw=0.8)
            ax.text(len(types) - 0.5, limit, f"{name} limit", fontsize=7, va="bottom", ha="right", color="grey")
    ax.set_yscale("log")
    ax.set_ylim(floor / 10, 1)
    ax.set_xticks(np.arange(len(types)) + 0.4 - width / 2, types, fontsize=8)
    ax.set_ylabel("max ΔV (exact window)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"Agreement with Brian2 (bars at {floor:g}: bit-identical)")
    return save_figure(fig, path)


def network_counts(path: Path, brian2: np.ndarray, others: dict[str, np.ndarray]) -> Path:
    """Scatter of output spike counts, Brian2 on x, each snnTorch precision on y."""
    fig, axes = plt.subplots(1, len(others), figsize=(4.4 * len(others), 4), squeeze=False)
    top = max([brian2.max(initial=0)] + [c.max(initial=0) for c in others.values()]) + 1
    for ax, (name, counts) in zip(axes.flat, others.items()):
        ax.scatter(brian2.ravel(), counts.ravel(), s=6, alpha=0.4)
        ax.plot([0, top], [0, top], color="grey", lw=0.7)
        ax.set_xlabel("Brian2 output spike count")
        ax.set_ylabel(f"{name} output spike count")
    fig.suptitle("Network replay: output spike counts per sample and neuron")
    return save_figure(fig, path)
