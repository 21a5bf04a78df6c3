"""Loading a meta-neuron library is linear in its neurons: ``load_library`` against ``json.loads`` of the same file.

For libraries of 10^4, 10^5 and 10^6 neurons (``--largest`` to stop earlier), as ``save_library`` writes them,
prints the seconds of ``mdn_snntorch.meta_neurons.load_library`` (reading, checking every field and name,
the duplicate check), the time per neuron, and both as ratios: against plain ``json.loads`` of the same
file (the baseline, measured in the same run) and against the time per neuron of the smallest library
(about 1 when the loading is linear; the duplicate check was once quadratic: 40,000 neurons took 34 s).

    .venv/bin/python benchmarks/bench_library.py [--largest 1000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mdn_snntorch.meta_neurons import MAX_LIBRARY_BYTES, MAX_LIBRARY_NEURONS, MetaNeuron, load_library, save_library

WIDTHS = (9, 7, 12, 14, 9, 7, 10)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--largest", type=int, default=1_000_000, help="the largest library (default 10^6 neurons)")
    args = parser.parse_args()
    print(f"limits: {MAX_LIBRARY_NEURONS} neurons, {MAX_LIBRARY_BYTES} bytes")
    head = ("neurons", "MB", "json.loads s", "load_library s", "us/neuron", "/ json", "/ smallest")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, WIDTHS)))
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        size = 10_000
        while size <= args.largest:
            path = Path(tmp) / f"lib{size}.json"
            save_library(path, [MetaNeuron(f"neuron-{i}", 2, (0.02, 0.2, 0.0, 0.08 + i * 1e-9)) for i in range(size)])
            baseline = seconds(lambda p=path: json.loads(p.read_text()))
            loaded = seconds(lambda p=path: load_library(p))
            per = loaded / size
            first = first or per
            row = (size, f"{path.stat().st_size / 1e6:.1f}", f"{baseline:.2f}", f"{loaded:.2f}", f"{per * 1e6:.2f}")
            row += (f"{loaded / baseline:.2f}", f"{per / first:.2f}")
            print(" ".join(f"{v:>{w}}" for v, w in zip(row, WIDTHS)))
            path.unlink()
            size *= 10


if __name__ == "__main__":
    main()
