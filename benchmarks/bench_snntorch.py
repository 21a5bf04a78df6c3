"""MDN inside snnTorch users' code: one training step (forward + ``snntorch.functional.mse_count_loss`` +
backward + Adam) of snnTorch tutorial networks with ``snn.Leaky`` / ``snn.RLeaky`` swapped for this package's
neurons, on the CPU.

Scenarios (input: Bernoulli rate-coded random images, ``snntorch.spikegen.rate``):

1. ``fc``: tutorial 5's net, 784-500-10, batch 100, T = 20, the tutorial's per-step loop with explicit states
   (``mem = lif.init_leaky()`` ... ``spk, mem = lif(cur, mem)``): ``snn.Leaky(beta=0.95)`` against
   ``mdn.MDN("2-FS")`` and ``mdn.FirstOrder()``. Target: MDN <= 1.0x Leaky.
2. ``conv``: tutorial 6's net, Conv2d(1, 12, 5)-MaxPool(2)-neuron-Conv2d(12, 64, 5)-MaxPool(2)-neuron-
   Linear(1024, 10)-neuron, batch 128, T = 25, as an ``nn.Sequential`` of ``init_hidden=True`` neurons
   stepped in a loop (``snn.Leaky(beta=0.5, spike_grad=fast_sigmoid(slope=25))`` as in the tutorial,
   ``mdn.MDN("2-FS")``), and the whole-sequence form: ``mdn.TimeDistributed`` layers and
   ``step_mode="multi"`` neurons, one call on ``[T, B, 1, 28, 28]`` through the fused time loop.
   Targets: per-step MDN <= 1.0x Leaky, whole-sequence MDN <= 0.8x Leaky's per-step loop.
3. ``rec``: a recurrent 784-500-10 net, all-to-all recurrence in both layers (``snn.RLeaky(beta=0.95,
   linear_features=n)`` against ``mdn.RMDN("2-FS", linear_features=n)``), batch 100, T = 20, per-step loop.
   Target: RMDN <= 1.0x RLeaky.

Timing: medians of ``--rounds`` interleaved rounds (each round runs every variant of a scenario once, after
warm-up), per thread count (``torch.set_num_threads``), so a load spike of the shared machine hits all
variants alike. The load average (``/proc/loadavg``) is printed before and after. The MDN neurons run with
their defaults (``check_input=True``), snnTorch's with theirs.

Run: ``.venv/bin/python benchmarks/bench_snntorch.py [--rounds 9] [--threads 1 2] [--only fc conv rec] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import snntorch as snn
import snntorch.functional as SF
import torch
from snntorch import spikegen, surrogate
from torch import nn

import mdn_snntorch as mdn

TARGETS = {
    ("fc", "mdn"): ("leaky", 1.0),
    ("conv", "mdn-step"): ("leaky-step", 1.0),
    ("conv", "mdn-sequence"): ("leaky-step", 0.8),
    ("rec", "rmdn"): ("rleaky", 1.0),
}


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


# ---------------------------------------------------------------------------------------------------------
# 1. tutorial 5: fully connected, explicit states
# ---------------------------------------------------------------------------------------------------------
class Tutorial5(nn.Module):
    def __init__(self, neuron: Callable[[], nn.Module]):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(784, 500), neuron()
        self.fc2, self.lif2 = nn.Linear(500, 10), neuron()

    def forward(self, x):
        states1, states2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        states1 = states1 if isinstance(states1, tuple) else (states1,)
        states2 = states2 if isinstance(states2, tuple) else (states2,)
        spk2_rec = []
        for x_t in x:
            spk1, *states1 = self.lif1(self.fc1(x_t), *states1)
            spk2, *states2 = self.lif2(self.fc2(spk1), *states2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec)


class OneOp(nn.Module):
    """A stand-in neuron that costs one operation per step (``clamp(x, 0, 1)``, no state): tutorial 5 with it is the
    loop's cost with the neuron all but free, so ``OneOp / Leaky`` is the lowest ratio any neuron could reach there."""

    def reset_mem(self) -> torch.Tensor:
        return torch.zeros(())

    def forward(self, x: torch.Tensor, mem: torch.Tensor):
        return x.clamp(0, 1), mem


# ---------------------------------------------------------------------------------------------------------
# 2. tutorial 6: conv net as nn.Sequential
# ---------------------------------------------------------------------------------------------------------
def tutorial6(neuron: Callable[..., nn.Module], whole_sequence: bool = False) -> nn.Sequential:
    wrap = mdn.TimeDistributed if whole_sequence else nn.Sequential
    extra = dict(step_mode="multi") if whole_sequence else {}
    return nn.Sequential(
        wrap(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2)),
        neuron(init_hidden=True, **extra),
        wrap(nn.Conv2d(12, 64, 5), nn.MaxPool2d(2)),
        neuron(init_hidden=True, **extra),
        wrap(nn.Flatten(), nn.Linear(64 * 4 * 4, 10)),
        neuron(init_hidden=True, output=True, **extra),
    )


def per_step(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Tutorial 6's loop: reset, then one call per step; the spikes of the output layer, stacked."""
    mdn.reset(net)  # snntorch.utils.reset(net) for the snnTorch net does the same there
    return torch.stack([net(x_t)[0] for x_t in x])


def whole(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    mdn.reset(net)
    return net(x)[0]


# ---------------------------------------------------------------------------------------------------------
# 3. recurrent
# ---------------------------------------------------------------------------------------------------------
def recurrent(neuron: Callable[..., nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(784, 500),
        neuron(linear_features=500, init_hidden=True),
        nn.Linear(500, 10),
        neuron(linear_features=10, init_hidden=True, output=True),
    )


def train_step(net: nn.Module, run: Callable, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)

    def step() -> None:
        loss = loss_fn(run(net, x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def scenarios(names: list[str]) -> dict[str, dict[str, Callable[[], None]]]:
    g = torch.Generator().manual_seed(0)
    out: dict[str, dict[str, Callable[[], None]]] = {}
    if "fc" in names:
        x = spikegen.rate(torch.rand(100, 784, generator=g), num_steps=20)
        y = torch.randint(0, 10, (100,), generator=g)
        nets = {
            "leaky": Tutorial5(lambda: snn.Leaky(beta=0.95)),
            "mdn": Tutorial5(lambda: mdn.MDN("2-FS")),
            "first-order": Tutorial5(lambda: mdn.FirstOrder()),
            "one-op": Tutorial5(OneOp),
        }
        out["fc"] = {k: train_step(n, lambda net, x: net(x), x, y) for k, n in nets.items()}
    if "conv" in names:
        x = spikegen.rate(torch.rand(128, 1, 28, 28, generator=g), num_steps=25)
        y = torch.randint(0, 10, (128,), generator=g)
        leaky = lambda **kw: snn.Leaky(beta=0.5, spike_grad=surrogate.fast_sigmoid(slope=25), **kw)  # noqa: E731
        out["conv"] = {
            "leaky-step": train_step(tutorial6(leaky), per_step, x, y),
            "mdn-step": train_step(tutorial6(lambda **kw: mdn.MDN("2-FS", **kw)), per_step, x, y),
            "mdn-sequence": train_step(tutorial6(lambda **kw: mdn.MDN("2-FS", **kw), True), whole, x, y),
            "first-order-sequence": train_step(tutorial6(lambda **kw: mdn.FirstOrder(**kw), True), whole, x, y),
        }
    if "rec" in names:
        x = spikegen.rate(torch.rand(100, 784, generator=g), num_steps=20)
        y = torch.randint(0, 10, (100,), generator=g)
        out["rec"] = {
            "rleaky": train_step(recurrent(lambda **kw: snn.RLeaky(beta=0.95, **kw)), per_step, x, y),
            "rmdn": train_step(recurrent(lambda **kw: mdn.RMDN("2-FS", **kw)), per_step, x, y),
            "rfirst-order": train_step(recurrent(lambda **kw: mdn.RFirstOrder(**kw)), per_step, x, y),
        }
    return out


def interleaved_medians(fns: dict[str, Callable[[], None]], rounds: int, warmup: int = 2) -> dict[str, tuple[float, float]]:
    """``{name: (median wall seconds, median CPU seconds of this process)}`` over ``rounds`` interleaved rounds.
    CPU time (all threads) is less sensitive than wall time to other jobs taking the cores."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=["fc", "conv", "rec"], choices=["fc", "conv", "rec"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, snntorch {snn.__version__}; load average before: {load()}")
    results, missed = [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for scenario, fns in scenarios(args.only).items():
            before = load()
            medians = interleaved_medians(fns, args.rounds)
            for name, (wall, cpu) in medians.items():
                row = dict(scenario=scenario, variant=name, threads=threads, ms=round(wall * 1e3, 2), cpu_ms=round(cpu * 1e3, 2))
                base, target = TARGETS.get((scenario, name), (None, None))
                if base is not None:
                    ratios = dict(ratio=round(wall / medians[base][0], 3), cpu_ratio=round(cpu / medians[base][1], 3))
                    row.update(ratios, versus=base, target=target)
                    if row["ratio"] > target:
                        missed.append(row)
                results.append(row)
                ratio = f"  {row['ratio']:.2f}x (CPU {row['cpu_ratio']:.2f}x) {base}, target <= {target}" if base else ""
                timing = f"{row['ms']:8.1f} ms (CPU {row['cpu_ms']:8.1f})"
                print(f"{threads} thread(s)  {scenario:5s} {name:22s} {timing}{ratio}", flush=True)
            print(f"  load average around this scenario: {before} -> {load()}", flush=True)
    print(f"load average after: {load()}")
    if args.json:
        args.json.write_text(json.dumps(dict(results=results, load=load()), indent=1))
    if missed:
        print("targets missed:", ", ".join(f"{r['scenario']}/{r['variant']}@{r['threads']}" for r in missed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
