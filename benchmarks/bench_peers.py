"""The fused MDN against its peers in every shape that matters to a user, each figure in one run of interleaved
rounds (medians and minima; the load average printed before and after):

1. ``neuron``: the neuron alone, ``[T=100, B=128, N=1024]`` float32, forward + backward, 1 thread: ``MDN("2-FS")``
   (fused) against snnTorch ``Leaky`` in a Python loop and SpikingJelly's multi-step ``LIFNode`` where it is
   importable. Target: MDN <= 0.8x Leaky.
2. ``long``: time per step at T = 50 and T = 1000 (B = 32, N = 512), and the bytes kept for the backward per
   step. Target: per step at T = 1000 <= 1.3x per step at T = 50; kept bytes linear in T.
3. ``tutorial5``: snnTorch's tutorial-5 training step (784-500-10, batch 100, T = 20, the tutorial's per-step
   loop with explicit states) with ``mdn.MDN`` and with ``snn.Leaky``, 1 thread. Target: <= 0.85x. The same loop
   with a stand-in neuron of one operation (``one-op``, ``bench_snntorch.OneOp``) is the lowest ratio any neuron
   could reach on the machine: the two Linear layers' matrix products are the same in every row.
4. ``paper``: the paper's training step (784-500-10 ``ThreeLayerSNN``, batch 100, T = 20, input density 0.13)
   against the dense floor (the two Linear layers alone), at 1 and 2 threads. Targets: <= 0.55x (1 thread),
   <= 0.6x (2 threads, quiet machine). The input: independent Bernoulli spikes (``paper-1``, ``paper-2``); with
   ``--mnist-raw DIR`` (raw MNIST in torchvision's layout, e.g. from ``real_mnist.sh``) also the paper's own
   input, the first 100 training images rate-coded (``paper-1-mnist``, ``paper-2-mnist``): a pixel's spikes
   then repeat from step to step, which the input layer's run coding uses, where independent spikes never
   repeat more than chance.
5. ``memory``: the neuron alone (as 1.) with the fused op's freed buffers kept (``mdn_snntorch/fused/memory.py``)
   and under glibc's own malloc policy (``MDN_SNNTORCH_KEEP_FREED_MEMORY=0``): page faults and time per call,
   each in fresh interpreters that take turns (the setting is process-wide).

SpikingJelly is not a dependency: ``PYTHONPATH=/path/to/spikingjelly`` (``pip install --no-deps --target DIR
spikingjelly loguru`` keeps torch as it is) adds its column. ``mdn train``'s epoch against its steps is
``benchmarks/bench_epoch.py``.

    python benchmarks/bench_peers.py [--only neuron long tutorial5 paper memory] [--rounds 15] [--mnist-raw DIR]
                                     [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import snntorch as snn
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_neuron  # noqa: E402  (the paper-shape models and the saved-bytes meter)
import bench_snntorch  # noqa: E402  (tutorial 5)
import bench_sparse  # noqa: E402  (rate-coded real MNIST)
from machine import cpu_model  # noqa: E402

import mdn_snntorch as mdn  # noqa: E402

TARGETS = {
    "neuron": 0.8, "long": 1.3, "tutorial5": 0.85, "paper-1": 0.55, "paper-2": 0.6, "paper-1-mnist": 0.55, "paper-2-mnist": 0.6,
}  # fmt: skip


def rounds_of(fns: dict[str, Callable[[], None]], rounds: int, warmup: int = 2) -> dict[str, tuple[float, float]]:
    """``{name: (median, minimum)}`` seconds over ``rounds`` rounds that each call every function once."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def spikingjelly_lif():
    """SpikingJelly's multi-step LIF node, or None where SpikingJelly is not importable."""
    try:
        from spikingjelly.activation_based import neuron
    except ImportError:
        return None
    return neuron.LIFNode(step_mode="m", v_threshold=0.5, detach_reset=True)


def neuron_fns(shape: tuple[int, int, int]) -> dict[str, Callable[[], None]]:
    """Forward + backward of one neuron layer on ``x [T, B, N]`` (the gradient of a weighted sum)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=g) * 2).requires_grad_()
    w = torch.randn(*shape, generator=g)
    fused = mdn.MDN("2-FS", check_input=False)
    leaky = snn.Leaky(beta=0.8, threshold=0.5)

    def mdn_step() -> None:
        fused.reset_mem()
        (fused.multi_step(x) * w).sum().backward()
        x.grad = None

    def leaky_step() -> None:
        mem, out = leaky.init_leaky(), []
        for x_t in x.unbind(0):
            spk, mem = leaky(x_t, mem)
            out.append(spk)
        (torch.stack(out) * w).sum().backward()
        x.grad = None

    fns = {"mdn": mdn_step, "leaky": leaky_step}
    sj = spikingjelly_lif()
    if sj is not None:

        def sj_step() -> None:
            sj.reset()
            (sj(x) * w).sum().backward()
            x.grad = None

        fns["spikingjelly"] = sj_step
    return fns


def section_neuron(rounds: int) -> dict[str, float]:
    torch.set_num_threads(1)
    times = rounds_of(neuron_fns((100, 128, 1024)), rounds)
    _print("neuron alone [100, 128, 1024], fwd + bwd, 1 thread", times, "leaky")
    return {"neuron": times["mdn"][0] / times["leaky"][0]}


def section_long(rounds: int) -> dict[str, float]:
    torch.set_num_threads(1)
    out: dict[str, float] = {}
    per_step = {}
    for T in (50, 1000):
        fns = neuron_fns((T, 32, 512))
        times = rounds_of(fns, rounds)
        per_step[T] = {k: (m / T, lo / T) for k, (m, lo) in times.items()}
        _print(f"T = {T} (B = 32, N = 512), per step", per_step[T], "leaky")
    for name in per_step[50]:
        growth = per_step[1000][name][0] / per_step[50][name][0]
        print(f"  {name:<14} per-step time at T = 1000 / at T = 50: {growth:.2f}")
        out[f"long-{name}"] = growth
    kept = {T: bench_neuron.saved_bytes("fused", (T, 32, 512)) for T in (50, 1000)}
    print(f"  kept for the backward: {kept[50] / 50:.0f} bytes/step at T = 50, {kept[1000] / 1000:.0f} at T = 1000")
    out["long"] = out["long-mdn"]
    out["kept-per-step-ratio"] = (kept[1000] / 1000) / (kept[50] / 50)
    return out


def section_tutorial5(rounds: int) -> dict[str, float]:
    torch.set_num_threads(1)
    fns = bench_snntorch.scenarios(["fc"])["fc"]
    times = rounds_of({k: fns[k] for k in ("leaky", "mdn", "first-order", "one-op")}, rounds)
    _print("tutorial 5 training step (784-500-10, B = 100, T = 20), per-step loop, 1 thread", times, "leaky")
    return {"tutorial5": times["mdn"][0] / times["leaky"][0], "tutorial5-one-op": times["one-op"][0] / times["leaky"][0]}


def paper_inputs(mnist_raw: Path | None) -> dict[str, tuple[torch.Tensor, torch.Tensor, str]]:
    """``{suffix: (x, y, description)}``: Bernoulli spikes at density 0.13 and, from ``mnist_raw``, rate-coded MNIST."""
    x, y = bench_neuron.mnist_density_inputs()
    inputs = {"": (x, y, "Bernoulli, density 0.13")}
    if mnist_raw is not None:
        images = bench_sparse.mnist_images(str(mnist_raw))
        if images is None:
            raise SystemExit(f"--mnist-raw {mnist_raw}: no MNIST/raw/train-images-idx3-ubyte there")
        x, y, _ = bench_sparse.step_inputs(bench_sparse.MNIST_DENSITY, images)
        inputs["-mnist"] = (x, y, f"rate-coded real MNIST, density {x.mean().item():.3f}")
    return inputs


def section_paper(rounds: int, mnist_raw: Path | None = None) -> dict[str, float]:
    out = {}
    for suffix, (x, y, what) in paper_inputs(mnist_raw).items():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            models = bench_neuron.paper_models("cpu")
            fns = {k: bench_neuron.training_step(models[k][0], x, y) for k in ("floor", "leaky", "mdn-fused")}
            times = rounds_of(fns, rounds)
            _print(f"the paper's training step (784-500-10, B = 100, T = 20; {what}), {threads} thread(s)", times, "floor")
            out[f"paper-{threads}{suffix}"] = times["mdn-fused"][0] / times["floor"][0]
    return out


_MEMORY_SCRIPT = """
import json, resource, sys, time, torch
import mdn_snntorch as mdn
torch.set_num_threads(1)
neuron, calls = mdn.MDN("2-FS", check_input=False), int(sys.argv[1])
x = torch.randn(100, 128, 1024, requires_grad=True)

def call():
    neuron.reset_mem()
    neuron.multi_step(x).sum().backward()

call(), call()
faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for _ in range(calls):
    call()
print(json.dumps({"s": (time.perf_counter() - start) / calls,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls}))
"""


def section_memory(rounds: int) -> dict[str, float]:
    import subprocess

    from mdn_snntorch.fused import memory

    runs: dict[str, list[dict]] = {"kept": [], "glibc": []}
    for _ in range(max(1, rounds // 5)):
        for name, value in (("kept", "1"), ("glibc", "0")):
            env = {**os.environ, memory.ENV: value}
            command = [sys.executable, "-c", _MEMORY_SCRIPT, "10"]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("\nneuron alone [100, 128, 1024], fwd + bwd, 1 thread: freed buffers kept or returned (10 calls a process)")
    for name, rows in runs.items():
        ms, faults = statistics.median(r["s"] for r in rows) * 1e3, statistics.median(r["faults"] for r in rows)
        print(f"  {name:<14} median {ms:9.3f} ms  {faults:9.0f} page faults per call  ({len(rows)} processes)")
    ratio = statistics.median(r["s"] for r in runs["kept"]) / statistics.median(r["s"] for r in runs["glibc"])
    print(f"  kept / glibc's own policy: {ratio:.2f} of the time")
    return {"memory": ratio}


def _print(title: str, times: dict[str, tuple[float, float]], base: str) -> None:
    print(f"\n{title}")
    for name, (median, low) in times.items():
        print(f"  {name:<14} median {1e3 * median:9.3f} ms  min {1e3 * low:9.3f} ms  {median / times[base][0]:5.2f}x {base}")


SECTIONS = {
    "neuron": section_neuron, "long": section_long, "tutorial5": section_tutorial5, "paper": section_paper,
    "memory": section_memory,
}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, help="write the ratios here")
    parser.add_argument("--mnist-raw", type=Path, help="raw MNIST (torchvision layout): the paper step on rate-coded images too")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; torch {torch.__version__}; {cpu_model()}")
    ratios: dict[str, float] = {}
    for name in args.only:
        ratios.update(SECTIONS[name](args.rounds, args.mnist_raw) if name == "paper" else SECTIONS[name](args.rounds))
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\nratio against target:")
    for key, target in TARGETS.items():
        if key in ratios:
            print(f"  {key:<13} {ratios[key]:5.2f}  (target <= {target}: {'met' if ratios[key] <= target else 'not met'})")
    if "tutorial5-one-op" in ratios:
        print(f"  (tutorial5 with a one-operation neuron: {ratios['tutorial5-one-op']:.2f}, the lowest any neuron reaches here)")
    if args.json:
        args.json.write_text(json.dumps(ratios, indent=2))
    return ratios


if __name__ == "__main__":
    main()
