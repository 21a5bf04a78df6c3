"""Threads on a shared machine: the C kernels' parallel threshold, training with a busy competitor, ``--jobs``.

Sections (any combination; each prints a table; ``--json PATH`` writes every figure):

``--kernels``  The smallest call worth splitting over threads. The fused C kernels' forward and backward
               (float32, T = 20, N = 100, M = batch x neurons from 512 to 65,536 elements) on one thread
               and on all usable cores, back to back as in a training step; medians of interleaved rounds
               during which no other process used more than a quarter of a core (rounds with more are
               measured again, for up to --quiet-wait seconds per size). Prints the time ratio per size
               and the crossover: the smallest work (element-steps; the backward counts 3 per element-step
               as ``c_kernels._threads`` does) from which on every size runs at least 10 % faster on all
               cores. ``c_kernels.PARALLEL_MIN_WORK`` is set from it.
``--train``    The digits run (``mdn prep digits``, then ``mdn train --neuron 2-FS --hidden 100 --epochs 3
               --batch-size 50``) as a subprocess per variant, quiet and with one busy competitor core (a
               busy-loop process this benchmark starts). Variants: ``default`` (no ``--threads``: the thread
               policy, mdn_snntorch/threads.py), ``t1`` (``--threads 1``), ``all`` (every usable core, fixed:
               the behaviour before the policy, ``MDN_SNNTORCH_THREAD_POLICY=all``), ``passive`` (``all`` with
               ``OMP_WAIT_POLICY=passive``: OpenMP threads that sleep instead of spinning). Time: the run's
               training and test passes (``epoch_time_s + eval_time_s`` of its metrics) and the command's wall.
``--step``     The paper-shape training step (784-500-10, batch 100, T = 20, 2-FS; forward, rate loss,
               backward, Adam step) in a fresh process per variant, median of 20 steps after 3 of warm-up;
               the same variants and conditions.
``--demo``     ``mdn demo`` from scratch with ``--jobs 1``, with ``--jobs 1 --threads 2`` (one by one on two
               threads, as before ``--jobs``) and with the default (the usable cores), quiet, and the default
               with one busy competitor core. Minutes per run; one run each.

Timings of ``--train`` and ``--step`` are medians of ``--rounds`` interleaved rounds (each round runs every
variant once). The load of the machine (``/proc/loadavg`` and the free cores measured by
``mdn_snntorch.threads.CoreMeter``) is printed before and after every section: on a machine shared with other
jobs, "quiet" means "without the benchmark's competitor".

Run: ``.venv/bin/python benchmarks/bench_threads.py --kernels --train --step [--rounds 5] [--demo]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from mdn_snntorch import threads
from mdn_snntorch.fused import c_kernels

ROOT = Path(__file__).resolve().parents[1]
MDN = str(Path(sys.executable).with_name("mdn"))
TARGET_BUSY = 1.1  # default threads <= 1.1 x --threads 1 with one busy competitor core
TARGET_DEMO_SPEEDUP = 1.6  # mdn demo (default --jobs) at least 1.6x faster than --jobs 1, quiet
TARGET_DEMO_BUSY = 2.0  # and with one busy core under 2x its quiet time
VARIANTS = {
    "default": ([], {}),
    "t1": (["--threads", "1"], {}),
    "all": ([], {"MDN_SNNTORCH_THREAD_POLICY": "all"}),
    "passive": ([], {"MDN_SNNTORCH_THREAD_POLICY": "all", "OMP_WAIT_POLICY": "passive"}),
}


def load() -> str:
    meter = threads.CoreMeter()
    time.sleep(0.5)
    free = meter.sample()
    with open("/proc/loadavg") as f:
        avg = " ".join(f.read().split()[:3])
    return f"load average {avg}; {free:.2f} of {threads.usable_cores()} cores free of other processes (0.5 s)"


def wait_quiet(limit_s: float) -> str:
    """Wait (at most ``limit_s`` seconds) until other processes leave the usable cores free over one second;
    returns what was seen (the machine may be shared: the figures are only as quiet as it was)."""
    deadline = time.monotonic() + limit_s
    meter = threads.CoreMeter()
    while True:
        time.sleep(1.0)
        free = meter.sample()
        if free is None or free >= threads.usable_cores() - 0.2:
            return f"quiet ({free:.2f} cores free)" if free is not None else "load unknown"
        if time.monotonic() > deadline:
            return f"NOT quiet after {limit_s:.0f} s of waiting ({free:.2f} cores free)"


@contextlib.contextmanager
def competitor(busy: bool) -> Iterator[None]:
    """One process that keeps one core busy (a Python busy loop), while the block runs."""
    if not busy:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.kill()
        proc.wait()


def _median_table(title: str, medians: dict[str, float], unit: str, base: str) -> None:
    print(f"\n{title}")
    print(f"| variant | {unit} | vs {base} |\n|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} | {value / medians[base]:.2f} |")


# ---- kernels ----------------------------------------------------------------------------------------------
def _kernel_calls(M: int, T: int = 20, N: int = 100) -> tuple[Callable[[], None], Callable[[], None]]:
    g = torch.Generator().manual_seed(0)
    x = torch.sigmoid(torch.randn(T, M, generator=g) * 2 + 0.5)
    v0, u0 = torch.zeros(M), torch.full((M,), 0.08)
    params = torch.tensor([0.06, 0.219, -0.065, 0.003, 0.5, 1.0]).repeat(N, 1).T.contiguous()
    every = min(T, c_kernels.SEGMENT)
    out = c_kernels.mdn_forward(x, v0, u0, params, 1.0, 1, False, False, every)
    spk, ck = out[0], out[6]
    gs = torch.randn_like(spk)

    def forward() -> None:
        c_kernels.mdn_forward(x, v0, u0, params, 1.0, 1, False, False, every)

    def backward() -> None:
        c_kernels.mdn_backward(x, ck, params, gs, None, None, None, None, 1.0, 1, 0.5, False, every)

    return forward, backward


def section_kernels(rounds: int, quiet_wait: float) -> dict:
    n_all = threads.usable_cores()
    if c_kernels.library() is None or n_all < 2:
        print("\n--kernels: needs the C kernels and two usable cores")
        return {}
    torch.set_num_threads(n_all)
    saved = c_kernels._threads
    rows, rejected = {}, 0
    for M in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        fwd, bwd = _kernel_calls(M)
        repeat = max(1, 20_000_000 // (20 * M))  # about 20 ms per variant and round
        times: dict[str, list[float]] = {k: [] for k in ("fwd1", "fwdN", "bwd1", "bwdN")}
        meter, deadline = threads.CoreMeter(), time.monotonic() + quiet_wait
        while len(times["fwd1"]) < rounds:
            meter.sample()
            round_times = {}
            for key, fn, n in (("fwd1", fwd, 1), ("fwdN", fwd, n_all), ("bwd1", bwd, 1), ("bwdN", bwd, n_all)):
                c_kernels._threads = lambda work, n=n: n
                fn()
                start = time.perf_counter()
                for _ in range(repeat):
                    fn()
                round_times[key] = (time.perf_counter() - start) / repeat
            free = meter.sample()
            if free is not None and free < n_all - 0.25 and time.monotonic() < deadline:
                rejected += 1  # another process ran during the round: not a figure of the kernels
                continue
            for key, value in round_times.items():
                times[key].append(value)
        c_kernels._threads = saved
        best = {k: statistics.median(v) for k, v in times.items()}
        rows[M] = {"work_fwd": 20 * M, "work_bwd": 3 * 20 * M, **best}
    print(f"\n--kernels: C kernels, float32, T = 20, N = 100; 1 thread vs {n_all} (median of {rounds} quiet rounds)")
    print(f"rounds rejected because other processes used more than 0.25 core meanwhile: {rejected}; after: {load()}")
    print("| M | fwd work | fwd 1 thread (us) | fwd ratio | bwd work | bwd 1 thread (us) | bwd ratio |")
    print("|---|---|---|---|---|---|---|")
    for M, r in rows.items():
        print(
            f"| {M} | {r['work_fwd']} | {1e6 * r['fwd1']:.0f} | {r['fwdN'] / r['fwd1']:.2f} | {r['work_bwd']} | "
            f"{1e6 * r['bwd1']:.0f} | {r['bwdN'] / r['bwd1']:.2f} |"
        )
    crossover = {}
    for op in ("fwd", "bwd"):
        sizes = sorted(rows)
        ok = [rows[M][f"{op}N"] <= 0.9 * rows[M][f"{op}1"] for M in sizes]
        first = next((i for i in range(len(sizes)) if all(ok[i:])), None)
        crossover[op] = rows[sizes[first]][f"work_{op}"] if first is not None else None
    print(
        f"crossover (all larger sizes >= 10 % faster on {n_all} threads): forward {crossover['fwd']}, backward "
        f"{crossover['bwd']} element-steps; c_kernels.PARALLEL_MIN_WORK = {c_kernels.PARALLEL_MIN_WORK}"
    )
    return {"rows": rows, "crossover": crossover, "threads": n_all, "rejected_rounds": rejected}


# ---- training runs ----------------------------------------------------------------------------------------
def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MDN_SNNTORCH_THREAD_POLICY", "OMP_WAIT_POLICY")}
    env.update(extra)
    return env


def _digits_run(data: Path, variant: str, work: Path) -> tuple[float, float]:
    args, env = VARIANTS[variant]
    out = work / f"run-{variant}"
    shutil.rmtree(out, ignore_errors=True)
    command = [MDN, "train", "--data", str(data), "--neuron", "2-FS", "--hidden", "100", "--epochs", "3"]
    command += ["--batch-size", "50", "--out", str(out), "--no-progress", *args]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=_env(env), cwd=work)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())["epochs"]
    return sum(m["epoch_time_s"] + m["eval_time_s"] for m in metrics), wall


def section_train(rounds: int, conditions: list[bool], work: Path, quiet_wait: float) -> dict:
    data = work / "digits.h5"
    if not data.exists():
        subprocess.run([MDN, "prep", "digits", "--out", str(data)], check=True, capture_output=True)
    result = {}
    for busy in conditions:
        print(f"\n--train ({'one busy competitor core' if busy else 'quiet'}): {load()}")
        times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
        seen = []
        with competitor(busy):
            for _ in range(rounds):
                if not busy:
                    seen.append(wait_quiet(quiet_wait))
                for variant in VARIANTS:
                    times[variant].append(_digits_run(data, variant, work))
        train = {v: statistics.median(t[0] for t in ts) for v, ts in times.items()}
        wall = {v: statistics.median(t[1] for t in ts) for v, ts in times.items()}
        _median_table("training + test passes (s, median)", train, "s", "t1")
        _median_table("command wall time (s, median)", wall, "s", "t1")
        key = "busy" if busy else "quiet"
        result[key] = {"train_s": train, "wall_s": wall, "load_after": load(), "rounds_seen": seen}
        if seen:
            print(f"before the rounds: {'; '.join(seen)}")
        print(f"after: {result[key]['load_after']}")
        if busy:
            print(f"target default <= {TARGET_BUSY} x t1: {train['default'] / train['t1']:.2f}")
    return result


_STEP = """
import statistics, sys, time, torch
from mdn_snntorch import threads
from mdn_snntorch.pipeline.loss import rate_mse_loss
from mdn_snntorch.pipeline.model import ThreeLayerSNN
n = threads.configure({threads_arg})
torch.manual_seed(0)
model = ThreeLayerSNN(784, 500, 10, "2-FS", check_input=False)
opt = torch.optim.Adam(model.parameters(), 1e-3)
g = torch.Generator().manual_seed(1)
x = (torch.rand(20, 100, 784, generator=g) < 0.2).float()
y = torch.randint(0, 10, (100,), generator=g)
times = []
for i in range(23):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    rate_mse_loss(model(x), y).backward()
    opt.step()
    times.append(time.perf_counter() - t)
print(statistics.median(times[3:]), n)
"""


def _step_run(variant: str) -> float:
    args, env = VARIANTS[variant]
    script = _STEP.format(threads_arg=args[1] if args else "None")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=_env(env))
    return float(out.stdout.split()[0])


def section_step(rounds: int, conditions: list[bool], quiet_wait: float) -> dict:
    result = {}
    for busy in conditions:
        print(f"\n--step ({'one busy competitor core' if busy else 'quiet'}): {load()}")
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        seen = []
        with competitor(busy):
            for _ in range(rounds):
                if not busy:
                    seen.append(wait_quiet(quiet_wait))
                for variant in VARIANTS:
                    times[variant].append(_step_run(variant))
        med = {v: 1000 * statistics.median(t) for v, t in times.items()}
        _median_table("paper-shape training step (ms, median of per-process medians)", med, "ms", "t1")
        key = "busy" if busy else "quiet"
        result[key] = {"step_ms": med, "load_after": load(), "rounds_seen": seen}
        if seen:
            print(f"before the rounds: {'; '.join(seen)}")
        print(f"after: {result[key]['load_after']}")
        if busy:
            print(f"target default <= {TARGET_BUSY} x t1: {med['default'] / med['t1']:.2f}")
    return result


# ---- demo -------------------------------------------------------------------------------------------------
def _demo(work: Path, name: str, args: list[str]) -> float:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([MDN, "demo", "--out", str(out), *args], check=True, capture_output=True, env=_env({}))
    return time.perf_counter() - start


def section_demo(work: Path, quiet_wait: float) -> dict:
    runs = {}
    variants = (
        ("jobs1", ["--jobs", "1"], False),
        ("jobs1-threads2", ["--jobs", "1", "--threads", "2"], False),  # one by one on 2 threads: as before --jobs
        ("default", [], False),
        ("default-busy", [], True),
    )
    for name, args, busy in variants:
        wait_quiet(quiet_wait)
        before = load()
        with competitor(busy):
            runs[name] = {"s": _demo(work, name, args), "load_before": before}
        runs[name]["load_after"] = load()
        print(f"\n--demo {name}: {runs[name]['s']:.1f} s ({before}; after: {runs[name]['load_after']})")
    speedup = runs["jobs1"]["s"] / runs["default"]["s"]
    slowdown = runs["default-busy"]["s"] / runs["default"]["s"]
    print("\n| run | wall (s) |\n|---|---|\n" + "".join(f"| {k} | {v['s']:.1f} |\n" for k, v in runs.items()))
    print(f"speed-up of the default over --jobs 1: {speedup:.2f} (target >= {TARGET_DEMO_SPEEDUP})")
    print(f"default with one busy core / quiet: {slowdown:.2f} (target < {TARGET_DEMO_BUSY})")
    return {"runs": runs, "speedup": speedup, "busy_over_quiet": slowdown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("kernels", "train", "step", "demo"):
        parser.add_argument(f"--{flag}", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kernel-rounds", type=int, default=9)
    parser.add_argument("--busy", choices=["both", "on", "off"], default="both", help="conditions of --train/--step")
    parser.add_argument("--work", help="folder for data and runs (default: a temporary one)")
    parser.add_argument(
        "--quiet-wait", type=float, default=60, help="seconds to wait for a quiet machine before a measurement (default 60)"
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    conditions = {"both": [False, True], "on": [True], "off": [False]}[args.busy]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_threads_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {threads.usable_cores()} usable cores, C kernels: {c_kernels.library() is not None}")
    print(f"start: {load()}")
    results = {}
    if args.kernels:
        results["kernels"] = section_kernels(args.kernel_rounds, args.quiet_wait)
    if args.train:
        results["train"] = section_train(args.rounds, conditions, work, args.quiet_wait)
    if args.step:
        results["step"] = section_step(args.rounds, conditions, args.quiet_wait)
    if args.demo:
        results["demo"] = section_demo(work, args.quiet_wait)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
