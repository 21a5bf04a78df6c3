"""Speed and memory of the fused multi-step neuron op against the reference loop, snnTorch and the matmul floor.

1. Paper shape (784-500-10, batch 100, T = 20): one training step, forward + rate loss (paper Eq. 4) +
   backward, of
   - ``floor``: the two Linear layers on all T x B rows at once (no neuron: the cost no recurrence beats),
   - ``leaky``: the same Linear layers (all rows at once) with ``snntorch.Leaky`` stepped in a Python loop,
   - ``mdn-reference``: ``ThreeLayerSNN("2-FS", backend="reference")`` (the autograd loop of functional.py),
   - ``mdn-fused``: ``ThreeLayerSNN("2-FS")`` (the fused op; C kernels on CPU, Triton on CUDA),
   - ``mdn-fused-torchloop``: the fused op with its PyTorch-loop kernel (what runs without a C compiler),
   - ``1st-order-fused``: ``ThreeLayerSNN("1st-order")`` through the fused op.
   The MDN models run with ``check_input=False`` (snnTorch's neurons check nothing either).
2. Neuron only, ``[T = 100, B = 128, N = 1024]`` float32, forward + backward: fused vs reference loop:
   median time, the bytes the autograd graph keeps for the backward (unique storages saved by the
   graph, counted with ``torch.autograd.graph.saved_tensors_hooks``; the input itself excluded), and the
   peak resident memory of one forward + backward above the resident memory just before it (``VmHWM``
   of a fresh subprocess per variant, so the allocator's history of the other variant does not count).
3. On CUDA (when present): neuron only ``[100, 256, 4096]`` and the paper-shape step, fused vs reference
   loop vs snnTorch ``Leaky``, with ``torch.cuda.max_memory_allocated``.
4. ``--compile``: ``torch.compile`` (inductor) of the fused and of the reference model on the paper
   shape: first-call cost (a cold compilation: each model gets an empty inductor cache directory) and
   steady-state step time against eager fused.

Timings are medians of ``--rounds`` interleaved rounds (each round runs every variant once, in the same
order, after warm-up), so a load spike on a shared machine hits all variants alike; the median discards
the rounds it spoiled. On a machine oversubscribed by other jobs, multi-threaded runs suffer from
OpenMP barriers waiting for descheduled threads; ``--threads 1`` gives ratios that hold up better there.
Run: ``.venv/bin/python benchmarks/bench_neuron.py [--rounds 21] [--threads N] [--compile]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import snntorch as snn
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch import fused
from mdn_snntorch.fused import c_kernels
from mdn_snntorch.pipeline.loss import rate_mse_loss
from mdn_snntorch.pipeline.model import ThreeLayerSNN

TARGET_VS_LEAKY = 0.8
TARGET_VS_FLOOR = 1.3
TARGET_MEMORY = 0.5
TARGET_GPU_SPEEDUP = 5.0


def median_ms(fn: Callable[[], None], n: int) -> float:
    """The median wall time of ``n`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(
    fns: dict[str, Callable[[], None]], rounds: int, device: str = "cpu", warmup: int = 2
) -> dict[str, float]:
    """Median seconds of each function over ``rounds`` rounds that each call every function once."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


class LeakyNet(nn.Module):
    """The same two Linear layers with snnTorch ``Leaky`` neurons stepped in a Python loop."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)
        self.lif1, self.lif2 = snn.Leaky(beta=0.8, threshold=0.5), snn.Leaky(beta=0.8, threshold=0.5)

    @staticmethod
    def _loop(lif: snn.Leaky, current: torch.Tensor) -> torch.Tensor:
        mem, spikes = lif.init_leaky(), []
        for c in current.unbind(0):
            spk, mem = lif(c, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._loop(self.lif2, self.fc2(self._loop(self.lif1, self.fc1(x))))


class Floor(nn.Module):
    """The two Linear layers alone."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kernel: str = "auto") -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        with fused.use_kernel(kernel):
            rate_mse_loss(model(x), y).backward()

    return step


def paper_models(device: str) -> dict[str, tuple[nn.Module, str]]:
    torch.manual_seed(0)
    mdn_kw = dict(check_input=False)
    models = {
        "floor": (Floor(784, 500, 10), "auto"),
        "leaky": (LeakyNet(784, 500, 10), "auto"),
        "mdn-reference": (ThreeLayerSNN(784, 500, 10, "2-FS", backend="reference", **mdn_kw), "auto"),
        "mdn-fused": (ThreeLayerSNN(784, 500, 10, "2-FS", **mdn_kw), "auto"),
    }
    if device == "cpu":
        models["mdn-fused-torchloop"] = (ThreeLayerSNN(784, 500, 10, "2-FS", **mdn_kw), "torch")
    models["1st-order-fused"] = (ThreeLayerSNN(784, 500, 10, "1st-order", **mdn_kw), "auto")
    return {k: (m.to(device), kern) for k, (m, kern) in models.items()}


def paper_inputs(device: str, T: int = 20, B: int = 100):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(T, B, 784, generator=g) < 0.2).float().to(device)
    y = torch.randint(0, 10, (B,), generator=g).to(device)
    return x, y


def mnist_density_inputs():
    """:func:`paper_inputs` (CPU) with the spikes redrawn at MNIST's input density, 0.13 (the peer benchmarks'
    paper step)."""
    x, y = paper_inputs("cpu")
    return (torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.13).float(), y


def section_paper(rounds: int, device: str) -> dict[str, float]:
    x, y = paper_inputs(device)
    steps = {name: training_step(m, x, y, kern) for name, (m, kern) in paper_models(device).items()}
    return interleaved_medians(steps, rounds, device)


def neuron_step(backend: str, shape, device: str) -> Callable[[], None]:
    torch.manual_seed(0)
    neuron = mdn.MDN("2-FS", backend=backend, check_input=False).to(device)
    x = (torch.randn(*shape, device=device) * 2).requires_grad_()
    w = torch.randn(*shape, device=device)

    def step() -> None:
        neuron.reset_mem()
        (neuron.multi_step(x) * w).sum().backward()
        x.grad = None

    return step


def saved_bytes(backend: str, shape) -> int:
    """Bytes of the unique storages the autograd graph keeps for the backward (input excluded)."""
    neuron = mdn.MDN("2-FS", backend=backend, check_input=False)
    x = torch.randn(*shape).requires_grad_()
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        if s.data_ptr() != x.untyped_storage().data_ptr():
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        spikes = neuron.multi_step(x)
    del spikes
    return sum(storages.values())


_PEAK_SCRIPT = """
import sys, torch
sys.path.insert(0, {here!r})
from bench_neuron import neuron_step
def status(key):  # kB -> bytes; VmHWM is this process's peak RSS (ru_maxrss would include the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
step = neuron_step({backend!r}, {shape!r}, "cpu")
torch.set_num_threads({threads})
before = status("VmRSS:")
step()
print(status("VmHWM:") - before)
"""


def peak_bytes(backend: str, shape) -> int:
    """Peak resident memory of one forward + backward above the resident memory just before it."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = _PEAK_SCRIPT.format(here=here, backend=backend, shape=tuple(shape), threads=torch.get_num_threads())
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600)
    return int(out.stdout.strip().splitlines()[-1])


def section_neuron(rounds: int, shape=(100, 128, 1024)) -> dict[str, float]:
    times = interleaved_medians({b: neuron_step(b, shape, "cpu") for b in ("fused", "reference")}, rounds, warmup=1)
    result = {f"time-{b}": t for b, t in times.items()}
    for b in ("fused", "reference"):
        result[f"saved-{b}"] = saved_bytes(b, shape)
        result[f"peak-{b}"] = peak_bytes(b, shape)
    return result


def section_gpu(rounds: int) -> dict[str, float]:
    shape = (100, 256, 4096)
    result: dict[str, float] = {}
    steps = {b: neuron_step(b, shape, "cuda") for b in ("fused", "reference")}
    leaky = snn.Leaky(beta=0.8, threshold=0.5).to("cuda")
    xl = torch.randn(*shape, device="cuda").requires_grad_()
    wl = torch.randn(*shape, device="cuda")

    def leaky_step() -> None:
        (LeakyNet._loop(leaky, xl) * wl).sum().backward()
        xl.grad = None

    steps["leaky"] = leaky_step
    for name, t in interleaved_medians(steps, rounds, "cuda").items():
        result[f"neuron-{name}"] = t
    for name, fn in steps.items():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        result[f"neuron-mem-{name}"] = torch.cuda.max_memory_allocated() - base
    for name, t in section_paper(rounds, "cuda").items():
        result[f"paper-{name}"] = t
    return result


def section_compile(rounds: int) -> dict[str, float]:
    x, y = paper_inputs("cpu")
    result: dict[str, float] = {}
    torch.manual_seed(0)
    eager = ThreeLayerSNN(784, 500, 10, "2-FS", check_input=False)
    steps = {"eager-fused": training_step(eager, x, y)}
    for backend in ("auto", "reference"):
        torch._dynamo.reset()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_neuron_inductor_")  # a cold compile
        model = ThreeLayerSNN(784, 500, 10, "2-FS", check_input=False, backend=backend)
        compiled = torch.compile(model)
        start = time.perf_counter()
        training_step(compiled, x, y)()
        result[f"first-call-{backend}"] = time.perf_counter() - start
        steps[f"compiled-{backend}"] = training_step(compiled, x, y)
    for name, t in interleaved_medians(steps, rounds).items():
        result[f"step-{name}"] = t
    return result


def _verdict(value: float, target: float, larger_is_better: bool = False) -> str:
    ok = value >= target if larger_is_better else value <= target
    return f"{'MET' if ok else 'NOT MET'} (target {'>=' if larger_is_better else '<='} {target})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds (medians)")
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU section")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes on CPU)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (the C kernels follow it)")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, dict] = {}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, C kernels: {c_kernels.library() is not None}, "
        f"CUDA: {torch.cuda.is_available()}; medians of {args.rounds} interleaved rounds"
    )

    if not args.skip_cpu:
        t = report["paper_cpu"] = section_paper(args.rounds, "cpu")
        print("\n1. paper shape 784-500-10, B=100, T=20, forward+backward (CPU)")
        for name, sec in t.items():
            print(f"   {name:22s} {sec * 1e3:8.1f} ms   {sec / t['floor']:5.2f}x floor   {sec / t['leaky']:5.2f}x leaky")
        f = t["mdn-fused"]
        print(f"   fused / leaky         = {f / t['leaky']:.2f}  {_verdict(f / t['leaky'], TARGET_VS_LEAKY)}")
        print(f"   fused / floor         = {f / t['floor']:.2f}  {_verdict(f / t['floor'], TARGET_VS_FLOOR)}")
        print(f"   reference / fused     = {t['mdn-reference'] / f:.2f}x slower")
        if "mdn-fused-torchloop" in t:
            print(f"   torch-loop kernel / C = {t['mdn-fused-torchloop'] / f:.2f}x slower")

        n = report["neuron_cpu"] = section_neuron(max(3, args.rounds // 3))
        print("\n2. neuron only [T=100, B=128, N=1024] float32, forward+backward (CPU)")
        for b in ("fused", "reference"):
            print(
                f"   {b:10s} {n[f'time-{b}'] * 1e3:8.1f} ms   saved for backward {n[f'saved-{b}'] / 2**20:7.1f} MiB"
                f"   peak above start {n[f'peak-{b}'] / 2**20:7.1f} MiB"
            )
        print(f"   speed-up              = {n['time-reference'] / n['time-fused']:.2f}x")
        ratio_saved = n["saved-fused"] / n["saved-reference"]
        print(f"   saved memory ratio    = {ratio_saved:.2f}  {_verdict(ratio_saved, TARGET_MEMORY)}")
        print(f"   peak memory ratio     = {n['peak-fused'] / n['peak-reference']:.2f}")

    if torch.cuda.is_available():
        g = report["gpu"] = section_gpu(args.rounds)
        print(f"\n3. GPU ({torch.cuda.get_device_name()})")
        for b in ("fused", "reference", "leaky"):
            print(
                f"   neuron [100,256,4096] {b:10s} {g[f'neuron-{b}'] * 1e3:8.2f} ms   "
                f"peak {g[f'neuron-mem-{b}'] / 2**20:8.1f} MiB"
            )
        speedup = g["neuron-reference"] / g["neuron-fused"]
        print(f"   fused speed-up over the reference loop = {speedup:.1f}x  {_verdict(speedup, TARGET_GPU_SPEEDUP, True)}")
        for name in ("floor", "leaky", "mdn-reference", "mdn-fused", "1st-order-fused"):
            print(f"   paper shape {name:16s} {g[f'paper-{name}'] * 1e3:8.2f} ms")
    else:
        print("\n3. GPU: no CUDA device here, skipped")

    if args.compile:
        c = report["compile_cpu"] = section_compile(max(5, args.rounds // 3))
        print("\n4. torch.compile (inductor, CPU), paper shape training step")
        for backend in ("auto", "reference"):
            print(
                f"   {backend:9s} model: first call (compile) {c[f'first-call-{backend}']:6.1f} s,"
                f" then {c[f'step-compiled-{backend}'] * 1e3:6.1f} ms/step"
            )
        print(f"   eager fused: {c['step-eager-fused'] * 1e3:6.1f} ms/step")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
