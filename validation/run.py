"""Running a validation: replay meta neurons (and optionally a trained network) in Brian2 and snnTorch and
compare them (:func:`run_comparisons`), with the sizes of a run (:class:`Settings`) and the
implementations checked against Brian2 (:class:`Candidate`).

What is run (all on the same population, see :mod:`validation.population` and :mod:`validation.stimuli`):

- Brian2 with each target of ``targets`` (``numpy``, ``cython``, ``cython-strict``);
- snnTorch in float64 (default backend, and the reference autograd loop) and in float32;
- any extra candidates (an implementation to check against Brian2, e.g. a deliberately wrong one).

Comparisons: snnTorch float64 against every Brian2 target (float64 rule), the reference loop and
float32 against the first target (float64 / float32 rule), Brian2 ``cython-strict`` against ``numpy``
(bitwise); the recording alignment; the dt study against the ODE; the network replay. The dt study and
the network replay are long runs: they use Brian2 ``cython`` when it is among the targets, else the first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from mdn_snntorch.equations import U0, V0
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.neurons import factory
from validation import brian2_sim, snntorch_sim, stimuli
from validation.continuous import EULER_SUBSTEPS, DtStudy, dt_study
from validation.metrics import NeuronMetrics, compare, stability_horizon
from validation.population import RANDOM_THETA, Population, random_theta_population
from validation.rules import BITWISE, FLOAT32, FLOAT64, Judgement, Rule, judge
from validation.targets import TARGETS, check_available
from validation.traces import Traces

if TYPE_CHECKING:
    from validation.network import ReplayInputs, ReplayResult

T = TypeVar("T")

#: the alignment check: snnTorch traces against StateMonitor(when='after_resets') at float64 round-off
ALIGNMENT_ATOL = FLOAT64.state_atol
#: the candidate kept for the alignment check and the report's figures
SNNTORCH_FLOAT64 = "snnTorch float64"


@dataclass(frozen=True)
class Settings:
    """Sizes of one validation run."""

    per_type: int
    steps: int
    targets: tuple[str, ...]
    dt_steps: int
    dt_levels: int
    h_ref: float
    substeps: tuple[int, ...]
    trace_window: int = 300
    raster_per_family: int = 10


FULL = Settings(per_type=1000, steps=1000, targets=TARGETS, dt_steps=1000, dt_levels=41, h_ref=0.01, substeps=EULER_SUBSTEPS)
QUICK = Settings(per_type=8, steps=300, targets=("numpy",), dt_steps=100, dt_levels=6, h_ref=0.1, substeps=(1, 2, 4))


def replace_settings(base: Settings, **changes) -> Settings:
    """``base`` with ``changes`` (those that are not None)."""
    return replace(base, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Candidate:
    """An implementation checked against Brian2: ``simulate(population) -> Traces``, judged by ``rule``."""

    label: str
    simulate: Callable[[Population], Traces]
    rule: Rule


@dataclass
class Comparison:
    """A candidate's traces against one Brian2 run, measured and judged by ``rule``."""

    candidate: str
    reference: str
    rule: Rule
    metrics: NeuronMetrics
    judgement: Judgement

    @staticmethod
    def of(candidate: str, traces: Traces, reference: str, reference_traces: Traces, pop: Population, rule: Rule) -> Comparison:
        m = compare(traces, reference_traces, pop, use_horizon=rule.use_horizon)
        return Comparison(candidate, reference, rule, m, judge(m, rule))

    @property
    def label(self) -> str:
        return f"{self.candidate} vs {self.reference}"

    @property
    def passed(self) -> bool:
        return bool(self.judgement.ok.all())


@dataclass
class Outcome:
    """Everything a validation run computed: what the summary and the report are made of."""

    neurons: list[MetaNeuron]
    settings: Settings
    seed: int
    pop: Population
    reference: Traces  # Brian2 with the first target
    snntorch64: Traces  # snnTorch float64, default backend
    comparisons: list[Comparison]
    alignment: dict
    study: DtStudy
    network: ReplayResult | None
    timings: dict[str, float]  # seconds per task; the Progress's own dict, so later tasks still add to it


class Progress:
    """The progress bar of a validation run (one tick per task) and the seconds each task took."""

    def __init__(self, tasks: int, enabled: bool):
        self.bar = tqdm(total=tasks, desc="mdn validate", unit="task", disable=not enabled)
        self.timings: dict[str, float] = {}

    def task(self, label: str, fn: Callable[[], T]) -> T:
        """Run ``fn()`` as one task: its seconds under ``label``, then one tick."""
        value = self.ticking(label, label, lambda tick: fn())
        self.bar.update()
        return value

    def ticking(self, label: str, timed_as: str, fn: Callable[[Callable[[], object]], T]) -> T:
        """Run ``fn(tick)``, a task that advances the bar itself; its seconds under ``timed_as``."""
        self.bar.set_postfix_str(label)
        t0 = time.perf_counter()
        value = fn(self.bar.update)
        self.timings[timed_as] = round(time.perf_counter() - t0, 3)
        return value

    def close(self) -> None:
        self.bar.close()


def task_count(settings: Settings, candidates: Sequence[Candidate], network: bool) -> int:
    """Ticks of a run: Brian2 targets, candidates, alignment, dt-study schemes (Euler + 2 rk4), network (3), report."""
    return len(settings.targets) + len(candidates) + 1 + len(settings.substeps) + 2 + (3 if network else 0) + 1


def default_candidates() -> list[Candidate]:
    return [
        Candidate(SNNTORCH_FLOAT64, lambda p: snntorch_sim.simulate(p, torch.float64), FLOAT64),
        Candidate(
            "snnTorch float64 reference loop", lambda p: snntorch_sim.simulate(p, torch.float64, backend="reference"), FLOAT64
        ),
        Candidate("snnTorch float32", lambda p: snntorch_sim.simulate(p, torch.float32), FLOAT32),
    ]


def resolve_neurons(neurons: Sequence[str | MetaNeuron]) -> list[MetaNeuron]:
    """Preset names or MetaNeurons -> MetaNeurons (``KeyError`` naming the valid presets)."""
    out = [factory.meta_neuron(n) for n in neurons]
    names = [n.name for n in out]
    if len(set(names)) != len(names):
        raise ValueError(f"neuron names must be unique, got {names}")
    return out


def check_arguments(
    neurons: Sequence[str | MetaNeuron], settings: Settings, checkpoint, data, random_theta: bool
) -> list[MetaNeuron]:
    """Refuse unusable arguments before anything runs; returns the neurons to validate."""
    if (checkpoint is None) != (data is None):
        raise ValueError("network replay needs both checkpoint and data")
    unknown = [t for t in settings.targets if t not in TARGETS]
    if unknown or not settings.targets:
        raise ValueError(f"targets must be a non-empty subset of {TARGETS}, got {settings.targets}")
    for target in settings.targets:
        check_available(target)
    neuron_list = resolve_neurons(neurons)
    if not neuron_list:
        raise ValueError("no neurons to validate")
    if random_theta and RANDOM_THETA in [n.name for n in neuron_list]:
        raise ValueError(f"a neuron is named {RANDOM_THETA!r}, the name of the random-theta population; rename it")
    return neuron_list


def build_population(neurons: list[MetaNeuron], per_type: int, steps: int, seed: int, random_theta: bool) -> Population:
    """``per_type`` neurons of each type over the stimulus families, plus ``per_type`` random-theta neurons."""
    rng = np.random.default_rng(seed)
    parts = [Population.of(n, stimuli.families(steps, per_type, rng)) for n in neurons]
    if random_theta:
        parts.append(random_theta_population(stimuli.families(steps, per_type, rng), rng))
    return Population.concat(parts)


def alignment_check(pop: Population, target: str, snntorch_traces: Traces, cache_root=None) -> dict:
    """Record the sine neuron of every type with ``when='start'`` and ``'after_resets'``: the latter must equal
    the snnTorch post-reset trace (before the stability horizon, to float64 round-off), the former be the
    same state one step later (row k = state after step k-1, bitwise)."""
    idx = np.array([pop.first(kind, "sine") for kind in dict.fromkeys(pop.kind)])
    sub = pop.select(idx)
    after = brian2_sim.simulate(sub, target, record_when="after_resets", cache_root=cache_root)
    start = brian2_sim.simulate(sub, target, record_when="start", cache_root=cache_root)
    initial_v = np.where(sub.order == 2, V0, 0.0)
    initial_u = np.where(sub.order == 2, U0, np.nan)
    lag_v = np.vstack([initial_v, after.v[:-1]])
    lag_u = np.vstack([initial_u, after.u[:-1]])
    torch_v, torch_u = snntorch_traces.v[:, idx], snntorch_traces.u[:, idx]
    exact = np.arange(sub.steps)[:, None] < stability_horizon(after, sub.currents)[None, :]

    def max_diff(a, b):
        return float(np.where(exact, np.abs(np.nan_to_num(a - b)), 0.0).max())

    aligned = max(max_diff(after.v, torch_v), max_diff(after.u, torch_u))
    unaligned = max_diff(start.v, torch_v)
    one_behind = bool(np.array_equal(start.v, lag_v) and np.array_equal(start.u, lag_u, equal_nan=True))
    return {
        "target": target,
        "neurons": sub.size,
        "after_resets_vs_snntorch_max_diff": aligned,
        "start_vs_snntorch_max_diff": unaligned,
        "start_is_after_resets_one_step_behind": one_behind,
        "passed": bool(aligned <= ALIGNMENT_ATOL and one_behind),
    }


def run_comparisons(
    neurons: list[MetaNeuron],
    settings: Settings,
    candidates: Sequence[Candidate],
    progress: Progress,
    *,
    seed: int,
    random_theta: bool,
    replay_inputs: ReplayInputs | None,
    cache_root: str | Path | None,
) -> Outcome:
    """Every run and comparison of a validation (see the module docstring), one progress task each."""
    pop = build_population(neurons, settings.per_type, settings.steps, seed, random_theta)
    brian2_runs = {
        f"Brian2 {t}": progress.task(f"Brian2 {t}", lambda t=t: brian2_sim.simulate(pop, t, cache_root=cache_root))
        for t in settings.targets
    }
    comparisons, snntorch64 = _compare_candidates(pop, brian2_runs, candidates, progress)
    first = settings.targets[0]
    alignment = progress.task("alignment", lambda: alignment_check(pop, first, snntorch64, cache_root))
    fast_target = "cython" if "cython" in settings.targets else first  # for the long runs: dt study, network
    study = progress.ticking(
        "dt study",
        f"dt study (Brian2 {fast_target})",
        lambda tick: dt_study(
            neurons,
            settings.dt_steps,
            settings.dt_levels,
            settings.h_ref,
            fast_target,
            substeps=settings.substeps,
            cache_root=cache_root,
            progress=tick,
        ),
    )
    network = None if replay_inputs is None else _replay_network(replay_inputs, fast_target, cache_root, progress)
    return Outcome(
        neurons, settings, seed, pop, brian2_runs[f"Brian2 {first}"], snntorch64, comparisons, alignment, study, network,
        progress.timings,
    )  # fmt: skip


def _compare_candidates(
    pop: Population, brian2_runs: dict[str, Traces], candidates: Sequence[Candidate], progress: Progress
) -> tuple[list[Comparison], Traces]:
    """Run every candidate and compare it with Brian2 (snnTorch float64 with every target, the others with the
    first), then Brian2 ``cython-strict`` with ``numpy`` bit for bit; returns the comparisons and the snnTorch
    float64 traces."""
    reference = next(iter(brian2_runs))
    comparisons: list[Comparison] = []
    snntorch64 = None
    for cand in candidates:
        traces = progress.task(cand.label, lambda cand=cand: cand.simulate(pop))
        against = list(brian2_runs) if cand.label == SNNTORCH_FLOAT64 else [reference]
        comparisons += [Comparison.of(cand.label, traces, name, brian2_runs[name], pop, cand.rule) for name in against]
        if cand.label == SNNTORCH_FLOAT64:
            snntorch64 = traces
    strict, numpy_ = "Brian2 cython-strict", "Brian2 numpy"
    if strict in brian2_runs and numpy_ in brian2_runs:
        comparisons.append(Comparison.of(strict, brian2_runs[strict], numpy_, brian2_runs[numpy_], pop, BITWISE))
    return comparisons, snntorch64


def _replay_network(inputs: ReplayInputs, target: str, cache_root, progress: Progress) -> ReplayResult:
    from validation.network import run_replay

    return progress.ticking(
        "network replay",
        f"network replay (Brian2 {target})",
        lambda tick: run_replay(inputs, target, cache_root=cache_root, progress=tick),
    )
