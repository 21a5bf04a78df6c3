"""Collect the study's results (benchmarks/paper_study.sh) into small committed files under docs/results/.

    python benchmarks/collect_results.py WORK --out docs/results

Copies each evaluation's table.md, results.json and runs.csv and the combined figures, and writes
summaries of the discovery runs (where theta went, the clusters, every candidate and why it was kept or
dropped) and of the NETtalk variants. Nothing is trained; missing parts are reported and skipped.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
from pathlib import Path

from mdn_snntorch.atomic import atomic_write

EVALUATIONS = {
    "nettalk": "nettalk",
    "spoken_digits_spikes": "spoken/eval_spikes",
    "spoken_digits_analog": "spoken/eval_analog",
    "spoken_digits_l1_analog": "spoken/eval_l1_analog",
    "spoken_digits_l1_random_split_analog": "spoken/eval_l1rand_analog",
    "spoken_digits_l1_random_split_t90_analog": "spoken/eval_l1rand_t90_analog",
    "nettalk_80_epochs": "nettalk80",
    "mnist": "mnist/eval",
    "mnist_authors": "mnist_authors",
    "nettalk_authors": "nettalk_authors",
    "combined": "combined",
}
EVALUATION_FILES = ("table.md", "results.json", "runs.csv", "subset.txt")
FIGURES = ("accuracy.png", "capability.png", "capability_per_task.png")
DISCOVERIES = {
    "mnist_paper": "mnist/spatial_paper.json",
    "mnist_authors": "mnist/spatial_authors.json",
    "spoken_spikes_paper": "spoken/sdspk.json",
    "spoken_analog_paper": "spoken/sdana.json",
    "spoken_analog_authors": "spoken/sdauth.json",
    "mnist_theta_per_row_only": "mnist/spatial_rows.json",
    "mnist_undetached_only": "mnist/spatial_undetached.json",
}
#: the discoveries whose Fig. 3 is kept (the others are in summary.json only)
FIGURE_DISCOVERIES = ("mnist_paper", "mnist_authors", "spoken_analog_paper", "spoken_analog_authors")
SINGLE_RUNS = {
    "nettalk 2-FS, Table 1 (decay 0.9 per epoch)": "nettalk/runs/nettalk/2-FS/seed0",
    "nettalk 2-FS, no decay": "nettalk_variants/nodecay",
    "nettalk 2-FS, undetached reset": "nettalk_variants/undetached",
    "nettalk 2-FS, undetached reset, no decay": "nettalk_variants/undetached_nodecay",
    "nettalk 2-FS, 80 epochs, StepLR(50, 0.1)": "nettalk_variants/authors80",
    "mnist 1st-order-0.2 (the authors' decay), Table 1": "mnist/first_order_0.2",
}


def discovery_summary(path: Path) -> dict:
    """Where theta went and what came out of a library's provenance."""
    doc = json.loads(path.read_text())
    prov = doc["provenance"]
    return {
        "library": path.name,
        "protocol": prov.get("protocol", "paper"),
        "dataset": prov["dataset"],
        "seeds": prov["seeds"],
        "training": {
            k: prov["training"].get(k)
            for k in ("epochs", "hidden", "batch_size", "lr", "lr_theta", "analog", "theta_per_row", "detach_reset")
        },  # fmt: skip
        "final_test_acc": prov["final_test_acc"],
        "neurons_clustered": prov["neurons_clustered"],
        "theta_mean": prov.get("theta_mean"),
        "clustering": {
            pair: {k: c[k] for k in ("space", "quantile", "num_centres", "centres", "sizes")}
            for pair, c in prov["clustering"].items()
        },
        "candidates": [
            {k: r.get(k) for k in ("id", "theta", "support", "accuracy", "sine_rate", "status", "name", "reason")}
            for r in prov["selection"]["candidates"]
        ],
        "kept": [{"name": n["name"], "theta": n["theta"]} for n in doc["neurons"]],
    }


def run_summary(run: Path) -> dict:
    doc = json.loads((run / "metrics.json").read_text())
    epochs = doc["epochs"]
    row = {"epochs": len(epochs), "status": doc["status"], "test_acc": epochs[-1]["test_acc"],
           "best_test_acc": max(e["test_acc"] for e in epochs)}  # fmt: skip
    if "test_cosine" in epochs[-1]:
        row.update(test_cosine=epochs[-1]["test_cosine"], best_test_cosine=max(e["test_cosine"] for e in epochs))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the study's folder (paper_study.sh WORK)")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    missing = []
    for name, sub in EVALUATIONS.items():
        src = args.work / sub
        if not (src / "results.json").exists():
            missing.append(str(src))
            continue
        for file in EVALUATION_FILES + (FIGURES if name == "combined" else ()):
            if (src / file).exists():
                (args.out / name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / file, args.out / name / file)
    summaries = {}
    for name, sub in DISCOVERIES.items():
        src = args.work / sub
        if not src.exists():
            missing.append(str(src))
            continue
        summaries[name] = discovery_summary(src)
        for suffix in ("_fig3.png",) if name in FIGURE_DISCOVERIES else ():
            fig = src.with_name(src.stem + suffix)
            if fig.exists():
                (args.out / "discovery").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(fig, args.out / "discovery" / f"{name}{suffix}")
    if summaries:
        atomic_write(args.out / "discovery" / "summary.json", json.dumps(summaries, indent=1) + "\n")
    for doc in sorted((args.work / "published").glob("*.json")):  # benchmarks/published_candidates.py
        (args.out / "discovery").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(doc, args.out / "discovery" / f"published_{doc.name}")
    rows = []
    for label, sub in SINGLE_RUNS.items():
        src = args.work / sub
        if not (src / "metrics.json").exists():
            missing.append(str(src))
            continue
        rows.append({"run": label, **run_summary(src)})
    variants = args.work / "nettalk_variants" / "subset.txt"
    if variants.exists():
        shutil.copyfile(variants, args.out / "nettalk_variants_subset.txt")
    if rows:
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(args.out / "single_runs.csv", buf.getvalue())
    for path in missing:
        print(f"not there (skipped): {path}", file=sys.stderr)
    print(f"results collected in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
