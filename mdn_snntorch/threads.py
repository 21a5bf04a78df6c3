"""CPU threads: how many this process may use, how many are free right now, and the policy of a training run.

* :func:`usable_cores`: the CPUs of the process's affinity mask (``os.sched_getaffinity``), capped by the
  cgroup's CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``; rounded up).
* :func:`default_threads`: ``OMP_NUM_THREADS`` when it is set (its first entry), else :func:`usable_cores`.
* :class:`CoreMeter`: the cores left free by *other* work over a time window: the busy time of the usable
  CPUs from ``/proc/stat`` minus this process's own CPU time (and, under a CPU quota, the cgroup's usage
  minus ours).
* :func:`configure`: the threads of a training run. ``configure(n)`` fixes ``n``; ``configure(None)`` (the
  default of ``mdn train``) follows ``MDN_SNNTORCH_THREAD_POLICY``:

  - ``follow`` (default): :func:`default_threads`, lowered to the cores other processes leave free when
    the run starts (measured over at least :data:`MIN_WINDOW_S`), and measured again every
    :data:`INTERVAL_S` seconds at optimiser steps while the run lasts (up when others finish, down when
    others start);
  - ``start``: the same, decided once when the run starts and fixed for the run;
  - ``all``: :func:`default_threads`, whatever the load (the behaviour before this module).

  The thread count changes the rounding of PyTorch's own ops (not of the fused kernels), so a run whose
  results must be the same bits on a loaded and on a quiet machine fixes it (``--threads``).

  Threads that share a core with another busy process make every parallel region wait for the slowest
  one, and OpenMP's waiting threads spin, so on a loaded machine a run is faster with fewer threads
  (measured: ``benchmarks/bench_threads.py``, docs/performance.md#threads).

Which results depend on the thread count: docs/performance.md#determinism-and-threads.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import torch

#: seconds between two measurements of the free cores while a run adapts its threads
INTERVAL_S = 0.5
#: the shortest window the start of a run decides from (a shorter one is waited for), and the longest
MIN_WINDOW_S = 0.1
MAX_WINDOW_S = 5.0
#: a core counts as free when other processes use less than this fraction of it (on top of the whole ones)
FREE_MARGIN = 0.3

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _cgroup_dirs(root: Path, proc_cgroup: str | None) -> list[Path]:
    """The cgroup folders whose CPU quota applies to this process, innermost first (v2 and v1 layouts)."""
    dirs: list[Path] = []
    for line in (proc_cgroup or "0::/\n").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        names = controllers.split(",")
        if controllers == "":
            mounts = [root, root / "unified"]
        elif "cpu" in names or "cpuacct" in names:
            mounts = [root / controllers, root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu", root / "cpuacct"]
        else:
            continue
        rel_path = Path(rel.strip().lstrip("/"))
        for mount in mounts:
            here = mount / rel_path
            while True:
                if here not in dirs:
                    dirs.append(here)
                if here == mount:
                    break
                here = here.parent
    return dirs


def cgroup_cpu_limit(root: Path | None = None, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process's cgroups in cores (the smallest on the way to the root), or None.
    ``root``: where the cgroup file systems are mounted (default ``/sys/fs/cgroup``)."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    limits = []
    for folder in _cgroup_dirs(root or _CGROUP_ROOT, proc_cgroup):
        fields = (_read(folder / "cpu.max") or "").split()
        if fields:
            if fields[0] != "max":
                limits.append(int(fields[0]) / (int(fields[1]) if len(fields) > 1 else 100000))
            continue
        quota_v1, period_v1 = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota_v1 and period_v1 and int(quota_v1) > 0:
            limits.append(int(quota_v1) / int(period_v1))
    return min(limits) if limits else None


def usable_cores(root: Path | None = None, proc_cgroup: str | None = None) -> int:
    """The CPUs this process may run on: its affinity mask, capped by the cgroup CPU quota (rounded up)."""
    cores = len(_affinity())
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None:
        cores = min(cores, math.ceil(limit - 1e-9))
    return max(1, cores)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive count (its first entry), else :func:`usable_cores`."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return usable_cores()


class CoreMeter:
    """Cores left free by other processes, over the window since the previous :meth:`sample`.

    ``others = (busy time of the usable CPUs - this process's CPU time) / wall time``, from ``/proc/stat``
    (clock ticks) and ``time.process_time``; free = usable CPUs - others. Under a cgroup CPU quota the
    cgroup's own usage counts too: free <= quota - (cgroup usage - ours) / wall time.
    """

    def __init__(self, stat_path: str = "/proc/stat"):
        self.stat_path = stat_path
        self.cpus = _affinity()
        self.quota = cgroup_cpu_limit()
        self._usage_file = self._find_usage_file() if self.quota is not None else None
        self._last = self._now()

    def _find_usage_file(self) -> Path | None:
        for folder in _cgroup_dirs(_CGROUP_ROOT, _read(Path("/proc/self/cgroup"))):
            for name in ("cpu.stat", "cpuacct.usage"):
                if (folder / name).exists() and (name != "cpu.stat" or "usage_usec" in (_read(folder / name) or "")):
                    return folder / name
        return None

    def _cgroup_usage_s(self) -> float | None:
        if self._usage_file is None:
            return None
        text = _read(self._usage_file) or ""
        if self._usage_file.name == "cpuacct.usage":
            return int(text) / 1e9 if text.strip().isdigit() else None
        for line in text.splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
        return None

    def _busy_s(self) -> float | None:
        """Busy seconds of the usable CPUs since boot (user, nice, system, irq, softirq, steal)."""
        text = _read(Path(self.stat_path))
        if text is None:
            return None
        busy = 0
        for line in text.splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            fields = line.split()
            cpu = int(fields[0][3:])
            if cpu in self.cpus:
                values = [int(v) for v in fields[1:9]] + [0] * 8
                busy += sum(values[0:3]) + sum(values[5:8])  # idle (3) and iowait (4) excluded
        return busy / _CLOCK_TICKS

    def _now(self) -> tuple[float, float, float | None, float | None]:
        return time.monotonic(), time.process_time(), self._busy_s(), self._cgroup_usage_s()

    def window_s(self) -> float:
        """Seconds since the last sample."""
        return time.monotonic() - self._last[0]

    def sample(self) -> float | None:
        """Free cores over the window since the last sample (and start a new window); None if unmeasurable."""
        now, last = self._now(), self._last
        self._last = now
        wall = now[0] - last[0]
        if wall <= 0 or now[2] is None or last[2] is None:
            return None
        mine = max(0.0, now[1] - last[1])
        others = max(0.0, (now[2] - last[2]) - mine) / wall
        free = len(self.cpus) - others
        if self.quota is not None and now[3] is not None and last[3] is not None:
            free = min(free, self.quota - max(0.0, (now[3] - last[3]) - mine) / wall)
        return free


def threads_for(free: float | None, ceiling: int) -> int:
    """Threads to run with ``free`` cores left by others: whole free cores (a core whose other user takes
    less than :data:`FREE_MARGIN` of it counts as free), between 1 and ``ceiling``."""
    if free is None:
        return ceiling
    return max(1, min(ceiling, math.floor(free + FREE_MARGIN)))


class ThreadPolicy:
    """Keeps ``torch``'s intra-op threads at :func:`threads_for` the measured free cores, at most ``ceiling``:
    :meth:`start` decides once; :meth:`tick` re-decides every ``interval_s`` seconds (policy ``follow``)."""

    def __init__(self, ceiling: int | None = None, interval_s: float = INTERVAL_S, meter: CoreMeter | None = None):
        self.ceiling = ceiling or default_threads()
        self.interval_s = interval_s
        self.meter = meter or _shared_meter()
        self.active = True
        self.current = torch.get_num_threads()
        self.free: float | None = None
        self.changes = 0

    def start(self) -> int:
        """Decide now from the meter's window, when it spans :data:`MIN_WINDOW_S` to :data:`MAX_WINDOW_S`
        seconds (else from a new window of :data:`MIN_WINDOW_S`, waited for); returns the count."""
        if self.meter.window_s() > MAX_WINDOW_S:
            self.meter.sample()  # too old to tell the load of now
        wait = MIN_WINDOW_S - self.meter.window_s()
        if wait > 0:
            time.sleep(wait)
        return self._decide()

    def tick(self) -> int:
        """Re-decide when :attr:`interval_s` has passed since the last measurement (cheap otherwise). Stands
        down for good when someone else changed the thread count."""
        if not self.active:
            return torch.get_num_threads()
        if torch.get_num_threads() != self.current:
            self.active = False
            return torch.get_num_threads()
        if self.meter.window_s() < self.interval_s:
            return self.current
        return self._decide()

    def _decide(self) -> int:
        self.free = self.meter.sample()
        n = threads_for(self.free, self.ceiling)
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
            self.changes += 1
        self.current = n
        return n


_meter: CoreMeter | None = None
_policy: ThreadPolicy | None = None
_hook = None
_lock = threading.Lock()
POLICIES = ("follow", "start", "all")


def start_measuring() -> None:
    """Start the shared meter's window now (done at import: a run that starts a while later decides at once)."""
    _shared_meter()


def _shared_meter() -> CoreMeter:
    global _meter
    if _meter is None:
        _meter = CoreMeter()
    return _meter


def policy_name() -> str:
    """``MDN_SNNTORCH_THREAD_POLICY`` (``follow``, ``start`` or ``all``; default ``follow``)."""
    name = os.environ.get("MDN_SNNTORCH_THREAD_POLICY", "").strip().lower() or "follow"
    if name not in POLICIES:
        raise ValueError(f"MDN_SNNTORCH_THREAD_POLICY={name!r}: use one of {', '.join(POLICIES)}")
    return name


def configure(threads: int | None = None) -> int:
    """Set the threads of this process for a training run; returns the count it starts with.

    ``threads``: a fixed count; None: the policy ``MDN_SNNTORCH_THREAD_POLICY`` (module docstring)."""
    global _policy, _hook
    with _lock:
        _policy = None
        if threads:
            torch.set_num_threads(int(threads))
            return int(threads)
        name = policy_name()
        if name == "all":
            torch.set_num_threads(default_threads())
            return default_threads()
        policy = ThreadPolicy()
        n = policy.start()
        if name == "follow":
            _policy = policy
            if _hook is None:
                from torch.optim.optimizer import register_optimizer_step_post_hook

                _hook = register_optimizer_step_post_hook(lambda *_: tick())
        return n


def tick() -> None:
    """Let the ``follow`` policy (if one runs) re-check the free cores; called after every optimiser step."""
    policy = _policy
    if policy is not None and policy.active:
        policy.tick()


def current_policy() -> ThreadPolicy | None:
    """The ``follow`` policy :func:`configure` set up, or None."""
    return _policy


start_measuring()
