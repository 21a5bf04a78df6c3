"""Threads: the fused C kernels give the same bits for any thread count; the thread policy of mdn_snntorch.threads.

docs/performance.md#determinism-and-threads says which results depend on the thread count and which do not.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from mdn_snntorch import functional as F
from mdn_snntorch import fused, threads
from mdn_snntorch.fused import c_kernels

THREADS = (1, 2, 3)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _needs_c():
    if c_kernels.library() is None:
        pytest.skip("no C compiler here: the PyTorch loop is the CPU kernel")


def _mdn_case(dtype, per_neuron: bool, T=20, B=64, N=130, seed=5):
    """A current ``I`` in (0, 1) and parameters, large enough for the kernels to split the work
    (T * B * N element-steps over many blocks of 512 elements)."""
    g = torch.Generator().manual_seed(seed)
    I = torch.sigmoid(torch.randn(T, B, N, generator=g, dtype=dtype) * 2 + 0.5)
    base = torch.tensor([0.06, 0.219, -0.065, 0.003], dtype=dtype)
    if per_neuron:
        theta = [base[i] + 0.01 * torch.randn(N, generator=g, dtype=dtype) for i in range(4)]
    else:
        theta = [base[i].clone() for i in range(4)]
    return I, [t.requires_grad_() for t in theta]


def _run_mdn(I, theta, substeps):
    """Forward (spikes, states, traces) and the gradients of every input through the fused op's C kernel."""
    I = I.detach().clone().requires_grad_()
    v0 = torch.zeros(I.shape[1:], dtype=I.dtype, requires_grad=True)
    u0 = torch.full(I.shape[1:], 0.08, dtype=I.dtype, requires_grad=True)
    threshold = torch.tensor(0.5, dtype=I.dtype, requires_grad=True)
    gsf = torch.tensor(1.5, dtype=I.dtype, requires_grad=True)
    theta = [t.detach().clone().requires_grad_() for t in theta]
    with fused.use_kernel("c"):
        out = fused.mdn_multistep(
            I,
            F.MDNState(v0, u0),
            F.MDNParameters(*theta),
            threshold=threshold,
            width=0.5,
            dt=1.0 if substeps == 1 else 0.5,
            substeps=substeps,
            graded_spikes_factor=gsf,
            return_traces=True,
        )
    forward = [out.spikes, out.state.v, out.state.u, out.v, out.u]
    weights = [torch.linspace(-1, 1, f.numel(), dtype=I.dtype).reshape(f.shape) for f in forward]
    loss = sum((f * w).sum() for f, w in zip(forward, weights))
    grads = torch.autograd.grad(loss, [I, v0, u0, threshold, gsf, *theta])
    return [f.detach() for f in forward], list(grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_neuron", [True, False], ids=["per-neuron", "shared"])
@pytest.mark.parametrize("substeps", [1, 2])
def test_mdn_kernel_gives_the_same_bits_for_1_2_3_threads(dtype, per_neuron, substeps, restore_threads):
    """Forward (spikes, final state, V and U traces) bitwise equal for 1, 2 and 3 threads, and so is the
    backward, parameter gradients included: they are summed per element, then per neuron in one order."""
    _needs_c()
    I, theta = _mdn_case(dtype, per_neuron)
    assert I.numel() * substeps >= c_kernels.PARALLEL_MIN_WORK  # large enough to run on several threads
    results = {}
    for n in THREADS:
        torch.set_num_threads(n)
        results[n] = _run_mdn(I, theta, substeps)
    (forward_1, grads_1) = results[1]
    assert forward_1[0].sum() > 0, "the case spikes"
    for n in THREADS[1:]:
        forward_n, grads_n = results[n]
        assert all(torch.equal(a, b) for a, b in zip(forward_1, forward_n)), f"forward differs at {n} threads"
        assert all(torch.equal(a, b) for a, b in zip(grads_1, grads_n)), f"backward differs at {n} threads"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_first_order_kernel_gives_the_same_bits_for_1_2_3_threads(dtype, restore_threads):
    _needs_c()
    g = torch.Generator().manual_seed(7)
    I0 = torch.sigmoid(torch.randn(20, 64, 130, generator=g, dtype=dtype))
    decay0 = 0.8 + 0.05 * torch.randn(130, generator=g, dtype=dtype)
    results = {}
    for n in THREADS:
        torch.set_num_threads(n)
        I, decay = I0.clone().requires_grad_(), decay0.clone().requires_grad_()
        v0 = torch.zeros(64, 130, dtype=dtype, requires_grad=True)
        threshold = torch.tensor(0.5, dtype=dtype, requires_grad=True)
        with fused.use_kernel("c"):
            out = fused.first_order_multistep(I, v0, decay=decay, threshold=threshold, return_traces=True)
        loss = (out.spikes * I0).sum() + out.v.sum() + out.state.sum()
        results[n] = [
            out.spikes.detach(),
            out.v.detach(),
            out.state.detach(),
            *torch.autograd.grad(loss, [I, decay, threshold, v0]),
        ]
    for n in THREADS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[1], results[n])), f"differs at {n} threads"


def test_small_calls_stay_on_one_thread(monkeypatch):
    """Below PARALLEL_MIN_WORK element-steps a call runs on one thread (starting more costs more than it
    saves there: the threshold is measured by benchmarks/bench_threads.py --kernels)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert c_kernels._threads(c_kernels.PARALLEL_MIN_WORK - 1) == 1
    assert c_kernels._threads(c_kernels.PARALLEL_MIN_WORK) == 4


# ---- the thread policy ------------------------------------------------------------------------------------


def _cgroup(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "proc", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),  # cgroup v2, namespaced: its own root
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        ({"a/b/cpu.max": "max 100000\n", "a/cpu.max": "100000 100000\n"}, "0::/a/b\n", 1.0),  # a parent's quota
        ({"cpu/cpu.cfs_quota_us": "250000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "2:cpu,cpuacct:/\n", 2.5),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "2:cpu,cpuacct:/\n", None),
        ({}, "0::/\n", None),
    ],
)
def test_cgroup_cpu_limit(tmp_path, files, proc, limit):
    root = _cgroup(tmp_path, files)
    assert threads.cgroup_cpu_limit(root, proc) == limit


def test_usable_cores_respect_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1, 2, 3})
    assert threads.usable_cores(_cgroup(tmp_path / "none", {}), "0::/\n") == 4
    assert threads.usable_cores(_cgroup(tmp_path / "q", {"cpu.max": "150000 100000"}), "0::/\n") == 2  # 1.5 -> 2
    assert threads.usable_cores(_cgroup(tmp_path / "s", {"cpu.max": "20000 100000"}), "0::/\n") == 1
    monkeypatch.setattr(threads, "_affinity", lambda: {3})
    assert threads.usable_cores(tmp_path / "q", "0::/\n") == 1


def test_default_threads_respect_omp_num_threads(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 6)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.default_threads() == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # nested levels: the first counts
    assert threads.default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert threads.default_threads() == 6


def test_threads_for_free_cores():
    assert threads.threads_for(2.0, 2) == 2
    assert threads.threads_for(1.8, 2) == 2  # a core 20 % used by others still counts as free
    assert threads.threads_for(1.0, 2) == 1  # one core busy
    assert threads.threads_for(1.5, 2) == 1
    assert threads.threads_for(-0.5, 2) == 1  # oversubscribed: still one
    assert threads.threads_for(7.9, 4) == 4  # never above the ceiling
    assert threads.threads_for(None, 3) == 3  # not measurable: the ceiling


def _stat(busy: dict[int, int], idle: int = 0) -> str:
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for cpu, ticks in busy.items():
        lines.append(f"cpu{cpu} {ticks} 0 0 {idle} 0 0 0 0 0 0")
    return "\n".join(lines) + "\nintr 0\n"


def test_core_meter_counts_other_processes_only(tmp_path, monkeypatch):
    """others = busy time of the usable CPUs - this process's CPU time; CPUs outside the affinity mask
    are not counted."""
    stat = tmp_path / "stat"
    stat.write_text(_stat({0: 0, 1: 0, 2: 0}))
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    clock = {"wall": 100.0, "cpu": 5.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["cpu"])
    meter = threads.CoreMeter(str(stat))
    ticks = threads._CLOCK_TICKS
    # one second: this process used 0.5 s of CPU, the two CPUs were busy 1.5 s, CPU 2 (not ours) 1 s
    stat.write_text(_stat({0: ticks, 1: ticks // 2, 2: ticks}))
    clock.update(wall=101.0, cpu=5.5)
    assert meter.sample() == pytest.approx(2 - 1.0)
    # the next second: only this process (1 s on one CPU)
    stat.write_text(_stat({0: 2 * ticks, 1: ticks // 2, 2: 2 * ticks}))
    clock.update(wall=102.0, cpu=6.5)
    assert meter.sample() == pytest.approx(2.0)


def test_core_meter_under_a_cpu_quota(tmp_path, monkeypatch):
    """With a cgroup quota of 1.5 cores on 4 CPUs, what other processes of the cgroup use counts against the
    quota even when the machine's CPUs are idle."""
    root = _cgroup(tmp_path / "cg", {"cpu.max": "150000 100000\n", "cpu.stat": "usage_usec 0\n"})
    monkeypatch.setattr(threads, "_CGROUP_ROOT", root)
    monkeypatch.setattr(threads, "_read", lambda p, real=threads._read: "0::/\n" if str(p) == "/proc/self/cgroup" else real(p))
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1, 2, 3})
    stat = tmp_path / "stat"
    stat.write_text(_stat({0: 0, 1: 0, 2: 0, 3: 0}))
    clock = {"wall": 10.0, "cpu": 1.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["cpu"])
    meter = threads.CoreMeter(str(stat))
    assert meter.quota == 1.5
    ticks = threads._CLOCK_TICKS
    # one second: the host's 4 CPUs busy 1 s in all (this process 0.2 s, its cgroup 1 s)
    stat.write_text(_stat({0: ticks, 1: 0, 2: 0, 3: 0}))
    (root / "cpu.stat").write_text("usage_usec 1000000\n")
    clock.update(wall=11.0, cpu=1.2)
    assert meter.sample() == pytest.approx(1.5 - 0.8)  # the quota, less the cgroup's other 0.8 core
    assert threads.usable_cores() == 2  # 1.5 cores, rounded up


class FakeMeter:
    def __init__(self, free):
        self.free, self.window = list(free), 1.0

    def window_s(self):
        return self.window

    def sample(self):
        self.window = 0.0
        return self.free.pop(0) if len(self.free) > 1 else self.free[0]


def test_policy_start_and_follow(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "default_threads", lambda: 3)
    meter = FakeMeter([1.0, 3.0, 2.0])
    policy = threads.ThreadPolicy(meter=meter, interval_s=0.5)
    assert policy.start() == 1 and torch.get_num_threads() == 1  # two cores busy elsewhere: one thread
    assert policy.tick() == 1  # too early to measure again
    meter.window = 1.0
    assert policy.tick() == 3 and torch.get_num_threads() == 3  # the others finished
    torch.set_num_threads(2)  # someone else takes over: the policy stands down
    meter.window = 1.0
    assert policy.tick() == 2 and not policy.active and torch.get_num_threads() == 2


def test_configure(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "default_threads", lambda: 2)
    assert threads.configure(1) == 1 and torch.get_num_threads() == 1 and threads.current_policy() is None
    monkeypatch.setenv("MDN_SNNTORCH_THREAD_POLICY", "all")
    assert threads.configure(None) == 2 and torch.get_num_threads() == 2
    monkeypatch.setattr(threads, "_meter", FakeMeter([1.0]))
    monkeypatch.setenv("MDN_SNNTORCH_THREAD_POLICY", "start")
    assert threads.configure(None) == 1 and threads.current_policy() is None  # decided once, for the run
    monkeypatch.setattr(threads, "_meter", FakeMeter([2.0]))
    monkeypatch.delenv("MDN_SNNTORCH_THREAD_POLICY")  # the default: follow
    assert threads.configure(None) == 2 and threads.current_policy() is not None
    threads.configure(1)  # a fixed count ends the follow policy
    assert threads.current_policy() is None
    monkeypatch.setenv("MDN_SNNTORCH_THREAD_POLICY", "sometimes")
    with pytest.raises(ValueError, match="MDN_SNNTORCH_THREAD_POLICY"):
        threads.configure(None)


def test_follow_policy_ticks_at_optimiser_steps(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "default_threads", lambda: 2)
    meter = FakeMeter([2.0, 1.0])
    monkeypatch.setattr(threads, "_meter", meter)
    monkeypatch.setenv("MDN_SNNTORCH_THREAD_POLICY", "follow")
    try:
        assert threads.configure(None) == 2
        w = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.SGD([w], lr=0.1)
        w.sum().backward()
        meter.window = 1.0
        opt.step()  # the hook re-measures: one core is busy now
        assert torch.get_num_threads() == 1
    finally:
        threads.configure(1)


def _cpu_ticks(pid: int | str) -> int:
    """User + system clock ticks of process ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_the_meter_counts_a_busy_process_started_here(tmp_path, monkeypatch):
    """A busy process started here, measured on its own: the meter, reading a /proc/stat in which the usable CPUs
    were busy exactly with that process and this one, reports the cores that process left free (whatever else
    runs on the machine, which a real /proc/stat would add)."""
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc (Linux)")
    import subprocess
    import sys

    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda *a: None)
    stat = tmp_path / "stat"
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:

        def write_stat() -> int:
            """The child's ticks on cpu0 and this process's on cpu1; returns the child's."""
            child = _cpu_ticks(busy.pid)
            stat.write_text(_stat({0: child, 1: _cpu_ticks("self")}))
            return child

        time.sleep(0.2)
        start = write_stat()
        meter = threads.CoreMeter(str(stat))
        t0 = time.monotonic()
        time.sleep(1.0)
        ticks = write_stat() - start
        free = meter.sample()
        wall = time.monotonic() - t0
    finally:
        busy.kill()
        busy.wait()
    child_cores = ticks / threads._CLOCK_TICKS / wall
    assert child_cores > 0.1, "the busy process ran"
    # ours is counted from process_time (exact) but written in whole ticks: at most 2 ticks of rounding
    assert free == pytest.approx(2 - child_cores, abs=2 / threads._CLOCK_TICKS / wall + 0.01)
