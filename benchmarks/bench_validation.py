"""Time the full neuron validation report: the 5 paper neurons x 1,000 neurons x 1,000 steps (plus the
1,000 random-theta neurons the report adds), Brian2 numpy + cython + cython-strict, snnTorch float64,
float64 reference loop and float32, the dt study and all figures. Target: <= 60 s with a warm Cython cache.

Each run is a fresh process (``mdn validate``), so "warm" means Brian2's compiled modules come from the
disk cache, as they do for a user's second run. The first run uses an empty cache directory (cold: every
code object is compiled, twice: once per Cython mode).

    python benchmarks/bench_validation.py [--out DIR] [--runs-warm 1] [--cache-dir DIR]

Prints the wall time of each run, the per-task timings of the report and the load average (the machine
may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mdn_snntorch.meta_neurons import PAPER_NEURONS

TARGET_S = 60.0


def run_once(out: Path, cache: Path) -> tuple[float, dict]:
    cmd = [
        sys.executable,
        "-m",
        "mdn_snntorch",
        "validate",
        "--neurons",
        *PAPER_NEURONS,
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        "--no-progress",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"mdn validate failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads((out / "metrics.json").read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where the reports go (default: a temporary directory)")
    parser.add_argument("--runs-warm", type=int, default=1, help="warm runs after the cold one (default 1)")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="an existing cache root: skip the cold run and only time warm runs"
    )
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_validation_"))
    cache = args.cache_dir or out / "brian2-cache"
    print(f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = [] if args.cache_dir else [("cold", out / "cold")]
    runs += [(f"warm {i + 1}", out / f"warm{i + 1}") for i in range(args.runs_warm)]
    rows = []
    for label, where in runs:
        wall, metrics = run_once(where, cache)
        rows.append((label, wall, metrics))
        verdict = "PASS" if metrics["passed"] else "FAIL"
        print(
            f"{label:8s} {wall:7.1f} s   report {verdict}   population {metrics['settings']['population']} neurons "
            f"x {metrics['settings']['steps']} steps"
        )
        for task, seconds in metrics["timings_s"].items():
            print(f"           {task:40s} {seconds:7.2f} s")
        print(f"         load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    warm = [wall for label, wall, _ in rows if label.startswith("warm")]
    if warm:
        best = min(warm)
        print(f"warm: {best:.1f} s (target <= {TARGET_S:.0f} s): {'OK' if best <= TARGET_S else 'OVER'}")
    print(f"reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
