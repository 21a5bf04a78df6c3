"""How the paper step's two-thread time moves over minutes on a shared VM, beside the one-thread time that does not.

``--samples`` samples, back to back: the paper's training step (``bench_peers.py``'s: 784-500-10
``ThreeLayerSNN("2-FS")``, B = 100, T = 20, Bernoulli input at density 0.13) and the dense floor, each the median
of ``--steps`` steps, at 1 thread and then at 2, in turn. One line per sample, then the quantiles of each ratio
(MDN / floor at the same thread count) and the share of samples whose 2-thread ratio is within ``--target``.

On a VM whose virtual CPUs the host moves about, a 2-thread step whose passes hand their data from one thread to
the other can change speed for minutes at a time while the same step on 1 thread does not: a 2-thread figure
from a few minutes of rounds then says which of those stretches the run fell in.

    python benchmarks/bench_thread_regimes.py [--samples 300] [--steps 5] [--target 0.6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_neuron  # noqa: E402  (the paper-shape models and training step)
from machine import cpu_model  # noqa: E402


def quantiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10, method="inclusive")
    median = statistics.median(values)
    return f"min {min(values):.2f}  10 % {q[0]:.2f}  median {median:.2f}  90 % {q[-1]:.2f}  max {max(values):.2f}"


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--steps", type=int, default=5, help="steps per sample (their median)")
    parser.add_argument("--target", type=float, default=0.6, help="the 2-thread ratio counted as met")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; torch {torch.__version__}; {cpu_model()}")
    x, y = bench_neuron.mnist_density_inputs()
    models = bench_neuron.paper_models("cpu")
    steps = {name: bench_neuron.training_step(models[name][0], x, y) for name in ("mdn-fused", "floor")}
    before = torch.get_num_threads()
    samples: dict[str, list[float]] = {"mdn-1": [], "floor-1": [], "mdn-2": [], "floor-2": []}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for fn in steps.values():
                fn(), fn()
        for _ in range(args.samples):
            line = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for name, fn in steps.items():
                    key = f"{name.split('-')[0]}-{threads}"
                    samples[key].append(bench_neuron.median_ms(fn, args.steps))
                ratio = samples[f"mdn-{threads}"][-1] / samples[f"floor-{threads}"][-1]
                line.append(f"{threads} thread(s): mdn {samples[f'mdn-{threads}'][-1]:6.2f} ms  floor "
                            f"{samples[f'floor-{threads}'][-1]:6.2f} ms  ratio {ratio:.2f}")  # fmt: skip
            print(f"{time.strftime('%H:%M:%S')}  " + "  |  ".join(line), flush=True)
    finally:
        torch.set_num_threads(before)
    print(f"\n{args.samples} samples of {args.steps} steps each")
    for threads in (1, 2):
        ratios = [m / f for m, f in zip(samples[f"mdn-{threads}"], samples[f"floor-{threads}"])]
        print(f"  {threads} thread(s): mdn ms    {quantiles(samples[f'mdn-{threads}'])}")
        print(f"  {threads} thread(s): floor ms  {quantiles(samples[f'floor-{threads}'])}")
        print(f"  {threads} thread(s): ratio     {quantiles(ratios)}")
    ratios = [m / f for m, f in zip(samples["mdn-2"], samples["floor-2"])]
    share = sum(r <= args.target for r in ratios) / len(ratios)
    print(f"  2-thread ratio <= {args.target}: {share:.0%} of the samples")
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return samples


if __name__ == "__main__":
    main()
