"""Where learnable theta goes, epoch by epoch: the mean theta of each layer in every checkpoint of a run.

    python benchmarks/theta_per_epoch.py LABEL=RUN_FOLDER ... --out docs/results/discovery/theta_per_epoch.json

A run folder is one ``mdn train`` / ``mdn discover`` training (``epoch_NNN.pt`` checkpoints, e.g.
``spatial_authors_runs/seed0``). For each checkpoint: the epoch, the test accuracy, and per layer with
learnable theta the mean of theta_a..theta_d over its neurons (and batch rows, with theta per row). Nothing
is trained; the JSON and a Markdown table beside it (``.md``) are written atomically, and the table printed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from mdn_snntorch.atomic import atomic_write

PARAMETERS = ("theta_a", "theta_b", "theta_c", "theta_d")


def run_theta(folder: str | Path) -> list[dict]:
    """Per checkpoint of ``folder``, in epoch order: ``{"epoch", "test_acc", "layers": {layer: [a, b, c, d]}}``."""
    checkpoints = sorted(Path(folder).glob("epoch_*.pt"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    if not checkpoints:
        raise ValueError(f"{folder}: no epoch_NNN.pt checkpoint")
    rows = []
    for path in checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = state["model"]
        layers = sorted({key.rsplit(".", 1)[0] for key in model if key.rsplit(".", 1)[-1] in PARAMETERS})
        rows.append(
            {
                "epoch": int(state["epoch"]),
                "test_acc": float(state["metrics"][-1]["test_acc"]),
                "layers": {layer: [float(model[f"{layer}.{p}"].double().mean()) for p in PARAMETERS] for layer in layers},
            }
        )
    return rows


def markdown(result: dict[str, list[dict]], layer: str = "hidden") -> str:
    lines = [f"| run | epoch | test accuracy | mean theta of {layer} (a, b, c, d) |", "|---|---|---|---|"]
    for label, rows in result.items():
        for row in rows:
            theta = ", ".join(f"{v:.3f}" for v in row["layers"].get(layer, []))
            lines.append(f"| {label} | {row['epoch']} | {100 * row['test_acc']:.2f} % | ({theta}) |")
    return "\n".join(lines) + "\n"


def _source(text: str) -> tuple[str, str]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=RUN_FOLDER")
    return label, folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=_source, metavar="LABEL=RUN_FOLDER")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    result = {label: run_theta(folder) for label, folder in args.runs}
    atomic_write(args.out, json.dumps(result, indent=2) + "\n")
    atomic_write(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
