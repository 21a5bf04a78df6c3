"""The candidate filter on the meta-neuron candidates the paper's authors published (3 spatial, 6 temporal).

    python benchmarks/published_candidates.py --data DATA.h5 --kind temporal --out DIR [--accuracy-epochs 5] [--analog]

Every (a, b) x (c, d) combination of one kind goes through mdn_snntorch.discovery.select_candidates:
the dynamics filters, then the accuracy criterion (each candidate trained frozen for --accuracy-epochs on
DATA with its recipe, --validation-fraction of the training split held out and scored, kept at
--min-accuracy of the best), then near-duplicates. The paper kept 2 of 3
spatial and 2 of 6 temporal candidates (Table 2: 2-FS, 2-RS; 2-SDS, 2-WDS). Writes DIR/<kind>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.discovery import PAPER_CENTRES, Clustering, select_candidates
from mdn_snntorch.discovery.selection import MIN_ACCURACY
from mdn_snntorch.meta_neurons import PRESETS
from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.discover import VALIDATION_FRACTION, dataset_name, validation_accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the source task's spike file")
    parser.add_argument("--kind", choices=list(PAPER_CENTRES), required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the accuracy runs and <kind>.json")
    parser.add_argument("--accuracy-epochs", type=int, default=1, help="0: no accuracy criterion")
    parser.add_argument("--min-accuracy", type=float, default=MIN_ACCURACY)
    parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
    parser.add_argument("--analog", action="store_true", help="train on the file's analog values")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    centres = PAPER_CENTRES[args.kind]
    # the (c, d) labels must pair every (a, b) centre with every (c, d) centre: build the grid of neurons
    n_ab, n_cd = len(centres["ab"]), len(centres["cd"])
    ab = Clustering(np.repeat(np.arange(n_ab), n_cd), np.array(centres["ab"]), 0.0, np.ones(2))
    cd = Clustering(np.tile(np.arange(n_cd), n_ab), np.array(centres["cd"]), 0.0, np.ones(2))
    settings = recipes.settings(recipes.canonical(dataset_name(args.data)) or "mnist")
    settings.update(threads=args.threads, progress=False, analog=args.analog)
    accuracy = (
        validation_accuracy(args.data, args.out / "runs", args.accuracy_epochs, settings, args.validation_fraction)
        if args.accuracy_epochs
        else None
    )
    kept, records, _ = select_candidates(
        ab, cd, f"published-{args.kind}", min_support=1, accuracy=accuracy, min_accuracy=args.min_accuracy
    )
    table2 = {tuple(round(x, 3) for x in n.theta): name for name, n in PRESETS.items() if n.order == 2}
    for r in records:
        r["paper_table2"] = table2.get(tuple(round(x, 3) for x in r["theta"]))
        acc = f"{100 * r['accuracy']:6.2f} %" if "accuracy" in r else "   -    "
        print(f"{r['id']:<9} {str(tuple(r['theta'])):<36} {r['paper_table2'] or '':<6} {acc}  {r['status']}: "
              f"{r.get('name') or r.get('reason')}")  # fmt: skip
    doc = {"kind": args.kind, "data": args.data, "accuracy_epochs": args.accuracy_epochs, "analog": args.analog,
           "min_accuracy": args.min_accuracy, "validation_fraction": args.validation_fraction if args.accuracy_epochs else None,
           "kept": len(kept), "candidates": records}  # fmt: skip
    suffix = "" if args.accuracy_epochs else "_dynamics_only"
    atomic_write(args.out / f"{args.kind}{suffix}.json", json.dumps(doc, indent=1) + "\n")
    print(f"kept {len(kept)} of {len(records)} (the paper kept 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
