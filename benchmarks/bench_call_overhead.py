"""What a call of the library's custom ops costs beside its kernels: the direct path (mdn_snntorch/fused/eager.py,
the ops' implementation and autograd formula as a plain autograd Function) against the same calls through the
dispatcher (``eager.direct`` patched to say no), in interleaved rounds of one process:

1. ``small``: a 10-neuron MDN layer over ``[T = 20, B = 100, 10]``, forward + backward (``multi_step``): its
   kernels are a few microseconds, so this is the cost per call;
2. ``paper``: the paper's training step (784-500-10 ``ThreeLayerSNN("2-FS")``, B = 100, T = 20, Bernoulli input
   at density 0.13, as ``bench_peers.py``), at each thread count of ``--threads``.

Medians and minima of ``--rounds`` rounds (microseconds for ``small``, milliseconds for ``paper``); the load
average before and after.

    python benchmarks/bench_call_overhead.py [--rounds 31] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_neuron  # noqa: E402  (the paper-shape models and training step)
from machine import cpu_model  # noqa: E402

import mdn_snntorch as mdn  # noqa: E402
from mdn_snntorch.fused import eager, memory  # noqa: E402


def small_layer() -> Callable[[], None]:
    neuron = mdn.MDN("2-FS", check_input=False)
    x = torch.randn(20, 100, 10, requires_grad=True)
    g = torch.randn(20, 100, 10)

    def call() -> None:
        neuron.reset_mem()
        torch.autograd.grad(neuron.multi_step(x), x, g)

    return call


def paper_step() -> Callable[[], None]:
    x, y = bench_neuron.mnist_density_inputs()
    return bench_neuron.training_step(bench_neuron.paper_models("cpu")["mdn-fused"][0], x, y)


def ab(fn: Callable[[], None], rounds: int) -> dict[str, list[float]]:
    """Seconds of ``fn`` on the direct path and through the dispatcher, in turns."""
    real = eager.direct
    times: dict[str, list[float]] = {"direct": [], "dispatcher": []}
    try:
        for _ in range(3):
            fn()
        for _ in range(rounds):
            for name, check in (("direct", real), ("dispatcher", lambda *tensors: False)):
                eager.direct = check
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    finally:
        eager.direct = real
    return times


def report(title: str, times: dict[str, list[float]], scale: float, unit: str) -> None:
    print(f"\n{title}")
    for name, ts in times.items():
        print(f"  {name:<11} median {statistics.median(ts) * scale:9.3f} {unit}  min {min(ts) * scale:9.3f} {unit}")
    saved = statistics.median(times["dispatcher"]) - statistics.median(times["direct"])
    print(f"  saved by the direct path: {saved * scale:.3f} {unit} (medians)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    memory.ensure_default()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; torch {torch.__version__}; {cpu_model()}")
    print(f"{args.rounds} rounds")
    torch.set_num_threads(1)
    report("1. a 10-neuron layer, [20, 100, 10], forward + backward, 1 thread", ab(small_layer(), args.rounds), 1e6, "us")
    for threads in args.threads:
        torch.set_num_threads(threads)
        report(f"2. the paper's training step, {threads} thread(s)", ab(paper_step(), args.rounds), 1e3, "ms")
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
