"""The figures of meta-neuron generation: paper Fig. 3 (the theta clusters) and Fig. 4 (each neuron's dynamics).

matplotlib is imported on first use (the ``pipeline`` extra); every figure is written as a PNG atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mdn_snntorch import dynamics
from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.discovery.clustering import PAIRS, PAPER_CENTRES, Clustering
from mdn_snntorch.extras import require

#: a learning curve: (epoch, accuracy in [0, 1]) pairs
Curve = Sequence[tuple[float, float]]


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend."""
    require("matplotlib").use("Agg")
    return require("matplotlib.pyplot")


def save_png(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return atomic_write(path, buf.getvalue())


def clusters_figure(
    path: str | os.PathLike, theta: np.ndarray, clusters: Mapping[str, Clustering], curves: Mapping[str, Curve] | None = None
) -> Path:
    """Paper Fig. 3: the (a, b) and (c, d) points coloured by cluster, with the KMeans centres and the centres
    behind the paper's spatial and temporal neurons; with ``curves`` (label -> (epoch, accuracy) pairs,
    e.g. the test accuracy while learning theta) a learning-curve panel first."""
    plt = pyplot()
    panels = 3 if curves else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.3), constrained_layout=True)
    if curves:
        for label, curve in curves.items():
            epochs, acc = zip(*curve) if curve else ((), ())
            axes[0].plot(epochs, [100 * a for a in acc], marker="o", label=label)
        axes[0].set(xlabel="epoch", ylabel="accuracy (%)", title="learning with learnable theta")
        axes[0].legend(fontsize=8)
    for ax, (pair, cols), names in zip(axes[panels - 2 :], PAIRS.items(), (("theta_a", "theta_b"), ("theta_c", "theta_d"))):
        c = clusters[pair]
        ax.scatter(theta[:, cols[0]], theta[:, cols[1]], c=c.labels, cmap="tab10", s=8, alpha=0.6, vmin=0, vmax=9)
        ax.scatter(c.centres[:, 0], c.centres[:, 1], marker="X", s=180, c="k", edgecolors="w", label="KMeans centres")
        for kind, colour in (("spatial", "tab:red"), ("temporal", "tab:blue")):
            ref = np.array(PAPER_CENTRES[kind][pair])
            ax.scatter(ref[:, 0], ref[:, 1], marker="*", s=200, facecolors="none", edgecolors=colour, label=f"paper {kind}")
        for k, (x, y) in enumerate(c.centres):
            ax.annotate(f"{pair}{k} (n={c.sizes[k]})", (x, y), textcoords="offset points", xytext=(8, 8), fontsize=8)
        ax.set(xlabel=names[0], ylabel=names[1], title=f"({names[0]}, {names[1]}): M = {len(c.centres)} centres")
        ax.legend(fontsize=8)
    return save_png(fig, path)


def dynamics_figure(path: str | os.PathLike, chars: Mapping[str, dynamics.Characterisation]) -> Path:
    """Paper Fig. 4: V, U, input current and stable attractor of each neuron under the sine stimulus."""
    plt = pyplot()
    n = max(1, len(chars))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), squeeze=False, constrained_layout=True)
    for ax, (name, char) in zip(axes[:, 0], chars.items()):
        tr = char.sine
        t = np.arange(len(tr.current))
        ax.plot(t, tr.v[:, 0], color="tab:red", lw=1, label="V")
        ax.plot(t, tr.u[:, 0], color="tab:green", lw=1, label="U")
        ax.plot(t, tr.current[:, 0], color="tab:blue", lw=1, label="input I")
        ax.plot(t, dynamics.attractor_trace(tr)[:, 0], color="goldenrod", lw=1, ls="--", label="attractor V*")
        spikes = np.flatnonzero(tr.spikes[:, 0])
        ax.plot(spikes, np.full(len(spikes), 0.5), "|", color="k", ms=8, label="spikes")
        a, b, c, d = char.neuron.theta
        ax.set(
            ylim=(-1.2, 1.2),
            ylabel=name,
            title=f"{name}: theta = ({a:.3g}, {b:.3g}, {c:.3g}, {d:.3g}), sine rate {char.sine_rate:.2f}",
        )
        ax.legend(fontsize=7, loc="upper right", ncol=5)
    if not chars:
        axes[0, 0].text(0.5, 0.5, "no candidate survived the filters", ha="center", va="center")
    axes[-1, 0].set_xlabel("time step")
    return save_png(fig, path)
