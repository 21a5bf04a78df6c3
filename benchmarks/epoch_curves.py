"""Per-epoch test curves of training runs, one line per run, as a PNG.

    python benchmarks/epoch_curves.py LABEL=RUN_FOLDER ... --metric test_acc --out curves.png [--paper 98.67]

Reads each run's ``metrics.json`` (finished or not); ``--metric`` is any per-epoch series of it (test_acc,
test_cosine, test_cosine_first_of_5, ...), drawn x 100. ``--paper`` adds dashed lines at reference values.
Nothing is trained.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mdn_snntorch.discovery.figures import pyplot, save_png


def curves(runs: list[tuple[str, str]], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    """``{label: (epochs, values x 100)}`` for every run; ``ValueError`` naming a run without the series."""
    out = {}
    for label, folder in runs:
        path = Path(folder) / "metrics.json"
        rows = [r for r in json.loads(path.read_text())["epochs"] if r.get(metric) is not None]
        if not rows:
            raise ValueError(f"{path}: no epoch records {metric!r}")
        out[label] = ([int(r["epoch"]) for r in rows], [100 * float(r[metric]) for r in rows])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=lambda t: tuple(t.split("=", 1)), metavar="LABEL=RUN_FOLDER")
    parser.add_argument("--metric", default="test_acc")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--paper", type=float, nargs="*", default=[], help="reference values (%%) drawn dashed")
    parser.add_argument("--ylim", type=float, nargs=2)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    if any(len(r) != 2 for r in args.runs):
        parser.error("each run is LABEL=RUN_FOLDER")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (epochs, values) in curves(args.runs, args.metric).items():
        ax.plot(epochs, values, label=label, lw=1.2)
    for value in args.paper:
        ax.axhline(value, ls="--", lw=0.8, color="k")
    if args.ylim:
        ax.set_ylim(*args.ylim)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{args.metric} (%)")
    ax.set_title(args.title)
    ax.legend(fontsize=8)
    save_png(fig, args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
