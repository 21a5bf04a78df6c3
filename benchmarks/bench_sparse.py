"""Speed of the event-driven Linear layer (``mdn_snntorch.SpikeLinear``) against the dense product, and MNIST
accuracy with and without it.

1. One layer, forward + weight and bias gradients, over input densities 0.5 % ... 100 %: the event-driven
   path (forced: ``dense_above=1``) against ``nn.Linear``, at the two shapes of the paper's network:
   - ``input``: ``[T x B = 2000, 784] -> 500``, input without gradient (the data spikes),
   - ``hidden``: ``[2000, 500] -> 10``, input with gradient (the hidden spikes; its gradient is dense).
   Prints the ratio per density and the crossover density above which the dense product is faster (the
   layer's ``DENSE_ABOVE`` and the model's ``HIDDEN_EVENT_DRIVEN`` come from here), and, at 13.1 %,
   PyTorch's own sparse CSR product (``x.to_sparse_csr()`` then ``addmm``) as the peer.
   1b. The input layer's forward alone at 13.1 %, for a training batch (2,000 rows) and an evaluation batch
   (20,000 rows), where the gather's row tiles keep its partial sums in the L2 cache.
2. The paper's training step (784-500-10, B = 100, T = 20, 2-FS; forward + rate loss + backward) at input
   densities 5 %, 13.1 % (MNIST-like: the first 100 real MNIST training images rate-coded if
   ``--mnist-raw`` holds them, else Bernoulli spikes with p = 0.131) and 30 %, of
   - ``floor``: the two dense Linear layers alone on all T x B rows (bench_neuron's floor),
   - ``leaky``: the same Linear layers with snnTorch ``Leaky`` in a Python loop,
   - ``fused-dense``: ``ThreeLayerSNN("2-FS", event_driven=False)`` (the fused neurons, dense Linear layers),
   - ``fused-event``: ``ThreeLayerSNN("2-FS")`` (the default: event-driven input layer),
   - ``fused-direct``: the same with the input layer's ``time_coding=False`` (every step summed directly: what
     the complement and run codings save, in the same rounds),
   - ``floor-event``: the floor's two layers with the input layer event-driven.
   Target: ``fused-event`` <= 0.8 x ``floor`` at 13.1 %. Each input's line of entries gives the input layer's
   terms under each coding (the nonzeros: direct sums; the complement coding's forward, sums A and weight
   gradient; the run coding's bound).
3. ``--mnist FILE`` (a spike file from ``mdn prep mnist``): trains ``ThreeLayerSNN("2-FS")`` dense and event-driven
   from the same seed for ``--epochs`` with the trainer (MNIST recipe) and prints both test accuracies per epoch.

Timings are medians of ``--rounds`` interleaved rounds (each round runs every variant once), per thread
count of ``--threads``; the minima (the least disturbed round of each variant) are printed beside them, as
the steadier figure on a machine shared with other jobs. Run:
``.venv/bin/python benchmarks/bench_sparse.py [--rounds 21] [--threads 1 2] [--mnist /tmp/mnist.h5 --epochs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_neuron import Floor, LeakyNet, _verdict, training_step  # noqa: E402

import mdn_snntorch as mdn  # noqa: E402
from mdn_snntorch.pipeline.model import ThreeLayerSNN  # noqa: E402
from mdn_snntorch.sparse import c_kernels, spike_linear  # noqa: E402

TARGET_VS_FLOOR = 0.8
DENSITIES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.131, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
STEP_DENSITIES = (0.05, 0.131, 0.3)
MNIST_DENSITY = 0.131
T, B = 20, 100


def interleaved(fns: dict, rounds: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median and minimum seconds of each function over ``rounds`` rounds that each call every function once
    (the minimum: the round least disturbed by other jobs, reported when the machine is busy)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: {"median": statistics.median(v), "min": min(v)} for k, v in times.items()}


# ---------------------------------------------------------------------------------------------
# 1. one layer
# ---------------------------------------------------------------------------------------------
def layer_step(kind: str, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, g: torch.Tensor):
    def step() -> None:
        if kind == "dense":
            out = F.linear(x, w, b)
        elif kind == "event":
            out = spike_linear(x, w, b, dense_above=1.0)
        else:  # torch's CSR product (no input gradient: used for the input layer only)
            out = torch.addmm(b, x.to_sparse_csr(), w.t())
        out.backward(g)
        w.grad = b.grad = None
        if x.requires_grad:
            x.grad = None

    return step


def section_layer(rounds: int, shape: str) -> dict[str, dict[str, dict[str, float]]]:
    R, K, N, input_grad = (T * B, 784, 500, False) if shape == "input" else (T * B, 500, 10, True)
    gen = torch.Generator().manual_seed(2)
    w = (torch.randn(N, K, generator=gen) / K**0.5).requires_grad_()
    b = torch.randn(N, generator=gen).requires_grad_()
    g = torch.randn(R, N, generator=gen)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for d in DENSITIES:
        x = (torch.rand(R, K, generator=gen) < d).float().requires_grad_(input_grad)
        kinds = ("dense", "event") + (("torch-csr",) if shape == "input" and d == MNIST_DENSITY else ())
        result[str(d)] = interleaved({k: layer_step(k, x, w, b, g) for k in kinds}, rounds)
    return result


def section_eval_forward(rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    """The input layer's forward alone (no gradient) at MNIST's density for a training batch and an evaluation
    batch (``TrainConfig.eval_batch_size``, 1000 samples, 20,000 rows): dense against event-driven."""
    gen = torch.Generator().manual_seed(3)
    w, b = torch.randn(500, 784, generator=gen) / 784**0.5, torch.randn(500, generator=gen)
    result = {}
    for batch in (B, 1000):
        x = (torch.rand(T * batch, 784, generator=gen) < MNIST_DENSITY).float()
        fns = {"dense": lambda x=x: F.linear(x, w, b), "event": lambda x=x: spike_linear(x, w, b, dense_above=1.0)}
        result[str(batch)] = interleaved(fns, rounds)
    return result


def crossover(sweep: dict, stat: str = "median") -> float | None:
    """The density at which the event-driven path stops being faster (linear in the ratio between the
    two measured densities around it); ``None`` if it is faster everywhere, 0 if nowhere."""
    points = [(float(d), t["event"][stat] / t["dense"][stat]) for d, t in sweep.items()]
    if points[0][1] >= 1:
        return 0.0
    for (d0, r0), (d1, r1) in zip(points, points[1:]):
        if r1 >= 1:
            return d0 + (1 - r0) * (d1 - d0) / (r1 - r0)
    return None


# ---------------------------------------------------------------------------------------------
# 2. the paper's training step
# ---------------------------------------------------------------------------------------------
def mnist_images(raw: str | None, n: int = B) -> torch.Tensor | None:
    """The first ``n`` training images of raw MNIST (torchvision layout under ``raw``) as intensities in [0, 1]."""
    if raw is None:
        return None
    path = Path(raw) / "MNIST" / "raw" / "train-images-idx3-ubyte"
    if not path.exists():
        return None
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8, offset=16)[: n * 784]
    return torch.from_numpy(data.astype(np.float32).reshape(n, 784) / 255.0)


def step_inputs(density: float, images: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 10, (B,), generator=gen)
    if density == MNIST_DENSITY and images is not None:
        x = (torch.rand(T, B, 784, generator=gen) < images).float()
        return x, y, "real MNIST, rate-coded"
    return (torch.rand(T, B, 784, generator=gen) < density).float(), y, "Bernoulli"


class FloorEvent(Floor):
    """The floor's two Linear layers, the input layer event-driven."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__(n_in, n_hidden, n_out)
        self.fc1 = mdn.SpikeLinear.from_linear(self.fc1)


def step_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    direct = ThreeLayerSNN(784, 500, 10, "2-FS", check_input=False)
    direct.fc1.time_coding = False
    return {
        "floor": Floor(784, 500, 10),
        "leaky": LeakyNet(784, 500, 10),
        "fused-dense": ThreeLayerSNN(784, 500, 10, "2-FS", event_driven=False, check_input=False),
        "fused-event": ThreeLayerSNN(784, 500, 10, "2-FS", check_input=False),
        "fused-direct": direct,
        "floor-event": FloorEvent(784, 500, 10),
    }


def coding_entries(x: torch.Tensor) -> dict[str, int]:
    """The input layer's entries for ``x [T, B, K]`` under each coding: ``nonzeros`` (the direct sums), the complement
    coding's (``complement-forward`` row entries and ``complement-sums``, the terms of the sums A;
    ``complement-grad``, the weight gradient's) and ``run-changes`` (the run coding's bound, every input run coded)."""
    T, S, K = x.shape[0], x[0].numel() // x.shape[-1], x.shape[-1]
    mask, _, nnz, _ = c_kernels.scan_rows(x.reshape(-1, K).contiguous())
    comp, grad_entries = c_kernels.complement_split(mask, K, S, T)
    _, idx, _, _, aidx = c_kernels.complement_rows(mask, comp, x.dtype, K, S, T)
    return {
        "nonzeros": nnz,
        "complement-forward": idx.numel(),
        "complement-sums": aidx.numel(),
        "complement-grad": grad_entries,
        "run-changes": c_kernels.runs_changes(mask, K, S, T),
    }


def section_step(rounds: int, images: torch.Tensor | None) -> dict[str, dict]:
    models = step_models()
    result = {}
    for d in STEP_DENSITIES:
        x, y, source = step_inputs(d, images)
        times = interleaved({name: training_step(m, x, y) for name, m in models.items()}, rounds)
        result[str(d)] = {
            "source": source,
            "density": x.mean().item(),
            "entries": coding_entries(x),
            "ms": {k: v["median"] * 1e3 for k, v in times.items()},
            "min_ms": {k: v["min"] * 1e3 for k, v in times.items()},
        }
    return result


# ---------------------------------------------------------------------------------------------
# 3. MNIST accuracy, dense vs event-driven
# ---------------------------------------------------------------------------------------------
def section_accuracy(data: str, epochs: int, seed: int, threads: int) -> dict[str, list[dict]]:
    from mdn_snntorch.pipeline.trainer import TrainConfig, train

    runs = {}
    for name, event in (("dense", False), ("event-driven", True)):
        torch.manual_seed(seed)
        model = ThreeLayerSNN(784, 500, 10, "2-FS", event_driven=event)
        config = TrainConfig(data=data, epochs=epochs, seed=seed, recipe="mnist", threads=threads, progress=False)
        start = time.perf_counter()
        metrics = train(config, model=model).metrics
        runs[name] = metrics
        accs = ", ".join(f"{100 * m['test_acc']:.2f}" for m in metrics)
        print(f"   {name:13s} test accuracy per epoch: {accs} %   ({(time.perf_counter() - start) / epochs:.0f} s / epoch)")
    return runs


# ---------------------------------------------------------------------------------------------
def _print_layer(shape: str, sweep: dict) -> None:
    what = "[2000, 784] -> 500, no input gradient" if shape == "input" else "[2000, 500] -> 10, with input gradient"
    print(f"   {shape} layer {what}: forward + weight/bias gradients, ms (median; min)")
    print("   density   dense          event          event/dense (median; min)")
    for d, t in sweep.items():
        dense, event = t["dense"], t["event"]
        peer = ""
        if "torch-csr" in t:
            csr = t["torch-csr"]
            ratios = f"{csr['median'] / dense['median']:.2f}; {csr['min'] / dense['min']:.2f}"
            peer = f"   torch CSR {csr['median'] * 1e3:6.2f} ({ratios})"
        print(
            f"   {float(d):7.3f} {dense['median'] * 1e3:7.2f}; {dense['min'] * 1e3:5.2f}  {event['median'] * 1e3:7.2f}; "
            f"{event['min'] * 1e3:5.2f}   {event['median'] / dense['median']:5.2f}; {event['min'] / dense['min']:5.2f}{peer}"
        )
    for stat in ("median", "min"):
        cross = crossover(sweep, stat)
        where = "nowhere" if cross == 0 else "everywhere" if cross is None else f"below a density of {cross:.2f}"
        print(f"   event-driven faster {where} ({stat}s)")


def _print_eval_forward(result: dict) -> None:
    print("   batch   rows     dense          event          event/dense (median; min)")
    for batch, t in result.items():
        dense, event = t["dense"], t["event"]
        print(
            f"   {batch:>5} {T * int(batch):6d}  {dense['median'] * 1e3:7.2f}; {dense['min'] * 1e3:6.2f}  "
            f"{event['median'] * 1e3:7.2f}; {event['min'] * 1e3:6.2f}   {event['median'] / dense['median']:5.2f}; "
            f"{event['min'] / dense['min']:5.2f}"
        )


def _print_step(steps: dict) -> None:
    for s in steps.values():
        t, m = s["ms"], s["min_ms"]
        print(f"   input density {s['density']:.3f} ({s['source']}): ms median (min), ratios of the medians (of the minima)")
        e = s["entries"]
        print(
            f"      entries: {e['nonzeros']:,} nonzeros; complement coding: forward {e['complement-forward']:,} + "
            f"{e['complement-sums']:,} in the sums A, weight gradient {e['complement-grad']:,}; run coding's bound "
            f"{e['run-changes']:,}"
        )
        for name, ms in t.items():
            print(
                f"      {name:12s} {ms:7.1f} ({m[name]:6.1f}) ms   {ms / t['floor']:5.2f}x ({m[name] / m['floor']:4.2f}) floor"
                f"   {ms / t['leaky']:5.2f}x ({m[name] / m['leaky']:4.2f}) leaky"
            )
        ratio, best = t["fused-event"] / t["floor"], m["fused-event"] / m["floor"]
        print(
            f"      fused-event / floor = {ratio:.2f} ({best:.2f})  {_verdict(ratio, TARGET_VS_FLOOR)}"
            f"   fused-dense / fused-event = {t['fused-dense'] / t['fused-event']:.2f}x"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds (medians)")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()], help="thread counts to run")
    parser.add_argument("--skip-layer", action="store_true", help="skip section 1")
    parser.add_argument("--skip-step", action="store_true", help="skip section 2")
    parser.add_argument("--mnist-raw", default="/tmp/mnist_real", help="raw MNIST (torchvision layout) for section 2")
    parser.add_argument("--mnist", help="an MNIST spike file: run section 3 (accuracy, dense vs event-driven)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    report: dict = {"load": os.getloadavg(), "threads": {}}
    print(
        f"torch {torch.__version__}, C kernels: {c_kernels.library() is not None}, load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; medians of {args.rounds} interleaved rounds"
    )
    images = mnist_images(args.mnist_raw)
    for threads in args.threads:
        torch.set_num_threads(threads)
        r = report["threads"][threads] = {}
        print(f"\n=== {threads} thread(s) ===")
        if not args.skip_layer:
            print("\n1. one layer over input densities (CPU, float32)")
            for shape in ("input", "hidden"):
                sweep = section_layer(args.rounds, shape)
                r[f"layer-{shape}"] = {"sweep": sweep, "crossover": crossover(sweep), "crossover-min": crossover(sweep, "min")}
                _print_layer(shape, sweep)
            print(f"\n1b. the input layer's forward alone, density {MNIST_DENSITY}: a training and an evaluation batch, ms")
            r["eval-forward"] = section_eval_forward(args.rounds)
            _print_eval_forward(r["eval-forward"])
        if not args.skip_step:
            print("\n2. paper training step 784-500-10, B=100, T=20, 2-FS, forward + rate loss + backward (CPU)")
            r["step"] = section_step(args.rounds, images)
            _print_step(r["step"])
    if args.mnist:
        threads = torch.get_num_threads()
        print(f"\n3. MNIST ({args.mnist}), 784-500-10 2-FS, seed {args.seed}, {args.epochs} epochs, {threads} thread(s)")
        runs = report["accuracy"] = section_accuracy(args.mnist, args.epochs, args.seed, torch.get_num_threads())
        gap = 100 * (runs["event-driven"][-1]["test_acc"] - runs["dense"][-1]["test_acc"])
        print(f"   event-driven - dense after {args.epochs} epochs: {gap:+.2f} points  {_verdict(abs(gap), 0.2)}")
    report["load_after"] = os.getloadavg()
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return report


if __name__ == "__main__":
    main()
