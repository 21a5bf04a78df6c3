"""NETtalk's cosine score over all test samples and over the ones the authors' test loop scores.

    python benchmarks/nettalk_subset.py DATA.h5 RUN [RUN ...]
    python benchmarks/nettalk_subset.py DATA.h5 --evaluation FOLDER     # every run of an mdn evaluate, per neuron

The authors' test loop runs the test set in batches of 5 in file order and scores only the first sample
of each batch (100 of the 500); this prints, for the final checkpoint of each training run, the mean
cosine score (mdn_snntorch.pipeline.loss.cosine_score) over all test samples and over samples 0, 5, 10, ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mdn_snntorch.pipeline.checkpoint import read_checkpoint
from mdn_snntorch.pipeline.loader import spike_loader
from mdn_snntorch.pipeline.loss import cosine_score
from mdn_snntorch.pipeline.model import ThreeLayerSNN


def per_sample_scores(data: str, run: str) -> np.ndarray:
    """The cosine score of every test sample, in file order, for the run's newest checkpoint."""
    checkpoint = read_checkpoint(run)
    model = ThreeLayerSNN.from_spec(checkpoint["model_spec"])
    model.load_state_dict(checkpoint["model"])
    model.eval()
    scores = []
    with torch.no_grad():
        for x, y in spike_loader(data, "test", 500):  # file order
            out = model(x)
            scores += [cosine_score(out[:, i : i + 1], y[i : i + 1]).item() for i in range(out.shape[1])]
    return np.array(scores)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the NETtalk spike file the runs were trained on")
    parser.add_argument("runs", nargs="*", help="training run folders")
    parser.add_argument("--evaluation", type=Path, help="an mdn evaluate folder: mean +- std over seeds per neuron")
    args = parser.parse_args(argv)
    print(f"{'run':<60} {'all':>7} {'0::5':>7}")
    for run in args.runs:
        s = per_sample_scores(args.data, run)
        print(f"{run:<60} {100 * s.mean():7.2f} {100 * s[0::5].mean():7.2f}")
    if args.evaluation:
        runs = json.loads((args.evaluation / "results.json").read_text())["runs"]
        by_neuron: dict[str, list[np.ndarray]] = {}
        for run in runs:
            by_neuron.setdefault(run["neuron"], []).append(per_sample_scores(args.data, run["run_dir"]))
        print(f"\n{'neuron':<12} {'all':>15} {'0::5':>15}  (mean +- std over seeds)")
        for neuron, scores in by_neuron.items():
            every = np.array([100 * s.mean() for s in scores])
            first = np.array([100 * s[0::5].mean() for s in scores])
            sd = lambda a: a.std(ddof=1) if len(a) > 1 else 0.0
            print(f"{neuron:<12} {every.mean():7.2f} +- {sd(every):4.2f} {first.mean():7.2f} +- {sd(first):4.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
