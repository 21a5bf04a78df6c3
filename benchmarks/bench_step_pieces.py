"""Where the paper's training step spends its time: the step cut into its operators, and the forward gather's
own ceiling on this CPU.

1. ``pieces``: the training step of ``bench_peers.py``'s paper section (784-500-10 ``ThreeLayerSNN("2-FS")``,
   batch 100, T = 20, Bernoulli input spikes of density 0.13, forward + rate loss + backward) under
   ``torch.profiler``: the self time per step of every operator (grouped by name and input shapes), the
   event-driven layer's C passes timed apart (scan, row lists, column lists, padded copies, gathers), and the
   step's own time without the profiler (medians of ``--steps`` steps, after warm-up).
2. ``gather``: the input layer's forward gather (``[2000, 784] -> 500``) on three inputs with about the same
   number of entries: Bernoulli rows (``random``); every 128-input chunk of a row holding the same number of
   entries (``even``: the loop over a chunk's entries ends at the same count, so the branch predictor learns
   its exit); one Bernoulli row repeated (``same-row``: the same rows of ``W^T`` every time, always in the L1
   cache). ``same-row`` is what the loop costs when neither the caches nor mispredicted exits hold it up.
   Each variant's vector adds per second (a vector: 16 floats with AVX-512) is printed; medians of ``--rounds``
   interleaved rounds.

    python benchmarks/bench_step_pieces.py [--threads 1] [--steps 20] [--rounds 21] [--only pieces gather]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_neuron  # noqa: E402  (the paper-shape models and training step)

from mdn_snntorch.sparse import c_kernels  # noqa: E402

#: the event-driven layer's C passes, timed around each call
PASSES = ("scan_rows", "fill_rows", "columns", "padded_rows", "gather")


def paper_step(threads: int) -> Callable[[], None]:
    """``bench_peers.py``'s paper step at density 0.13 (the same seeds)."""
    torch.set_num_threads(threads)
    x, y = bench_neuron.mnist_density_inputs()
    return bench_neuron.training_step(bench_neuron.paper_models("cpu")["mdn-fused"][0], x, y)


def pieces(threads: int, steps: int) -> dict[str, float]:
    """Milliseconds per step: ``step`` (no profiler), then each C pass (``pass <name> <shape>``) and each operator's
    self time under the profiler (``op <name> <shapes>``)."""
    step = paper_step(threads)
    for _ in range(3):
        step()
    out = {"step": bench_neuron.median_ms(step, steps)}
    spent: dict[str, float] = collections.defaultdict(float)
    real = {name: getattr(c_kernels, name) for name in PASSES}

    def timed(name: str) -> Callable:
        def call(*args, **kwargs):
            start = time.perf_counter()
            result = real[name](*args, **kwargs)
            spent[f"pass {name} {tuple(args[0].shape)}"] += time.perf_counter() - start
            return result

        return call

    try:
        for name in PASSES:
            setattr(c_kernels, name, timed(name))
        for _ in range(steps):
            step()
    finally:
        for name, fn in real.items():
            setattr(c_kernels, name, fn)
    out.update({k: v / steps * 1e3 for k, v in sorted(spent.items(), key=lambda kv: -kv[1])})
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    for e in rows:
        if e.self_cpu_time_total / steps >= 100:  # microseconds: the operators that matter
            out[f"op {e.key} {e.input_shapes}"] = e.self_cpu_time_total / steps / 1e3
    return out


def gather_inputs(rows: int = 2000, k: int = 784, density: float = 0.13, chunk: int = 128) -> dict[str, torch.Tensor]:
    """The three inputs of section 2, ``[rows, k]`` 0/1 float32."""
    g = torch.Generator().manual_seed(2)
    random = (torch.rand(rows, k, generator=g) < density).float()
    even = torch.zeros(rows, k)
    for c0 in range(0, k, chunk):
        width = min(chunk, k - c0)
        picked = torch.rand(rows, width, generator=g).argsort(1)[:, : round(width * density)] + c0
        even.scatter_(1, picked, 1.0)
    return {"random": random, "even": even, "same-row": random[:1].repeat(rows, 1)}


def gather(threads: int, rounds: int) -> dict[str, dict[str, float]]:
    """Per input of :func:`gather_inputs`: entries, median milliseconds, and vector adds per second."""
    torch.set_num_threads(threads)
    w_t = c_kernels.padded_rows(torch.randn(784, 500, generator=torch.Generator().manual_seed(3)))
    out = torch.empty(2000, 500)
    vectors = -(-500 // (c_kernels.library().sl_vector_bytes() // 4))  # vectors per output row (32 of 16 floats: AVX-512)
    calls, entries = {}, {}
    for name, x in gather_inputs().items():
        mask, ptr, nnz, binary = c_kernels.scan_rows(x)
        idx, _ = c_kernels.fill_rows(mask, x, ptr, nnz, binary)
        calls[name] = lambda ptr=ptr, idx=idx: c_kernels.gather(ptr, idx, None, w_t, None, out, 500, 1)
        entries[name] = nnz
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():
        fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    result = {}
    for name, ts in times.items():
        sec = statistics.median(ts)
        result[name] = {"entries": entries[name], "ms": sec * 1e3, "vector_adds_per_s": entries[name] * vectors / sec}
    return result


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="steps timed, and steps profiled")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds of section 2")
    parser.add_argument("--only", nargs="+", choices=("pieces", "gather"), default=("pieces", "gather"))
    args = parser.parse_args(argv)
    if not c_kernels.available():
        raise SystemExit("bench_step_pieces: the event-driven layer's C kernels are not available (no compiler?)")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average before: {load}; torch {torch.__version__}; {args.threads} thread(s)")
    report: dict[str, object] = {}
    if "pieces" in args.only:
        p = report["pieces"] = pieces(args.threads, args.steps)
        print(f"\n1. the paper's training step: {p['step']:.2f} ms (median of {args.steps}, no profiler); per step:")
        for name, ms in p.items():
            if name != "step":
                print(f"  {ms:7.3f} ms  {name}")
    if "gather" in args.only:
        g = report["gather"] = gather(args.threads, args.rounds)
        print(f"\n2. the forward gather [2000, 784] -> 500, medians of {args.rounds} interleaved rounds")
        for name, r in g.items():
            rate = r["vector_adds_per_s"] / 1e9
            print(f"  {name:9s} {r['entries']:7d} entries  {r['ms']:6.2f} ms  {rate:5.2f} G vector adds/s")
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return report


if __name__ == "__main__":
    main()
