"""Brian2 against snnTorch on every preset (numpy target): float64 exact by the rules, float32 within its
rules, the recording alignment, the stability horizon, and a deliberately wrong model caught."""

import numpy as np
import pytest
import torch

from mdn_snntorch.equations import U0, V0, du_dt, dv_dt
from mdn_snntorch.meta_neurons import PRESETS, get
from validation import brian2_sim, snntorch_sim, stimuli
from validation.metrics import compare, stability_horizon, van_rossum
from validation.population import Population, random_theta_population
from validation.rules import FLOAT32, FLOAT64, judge
from validation.traces import Traces

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # pyparsing, inside Brian2

STEPS = 400
PER_TYPE = 12
TYPES = list(PRESETS)


@pytest.fixture(scope="module")
def replay():
    rng = np.random.default_rng(1)
    parts = [Population.of(get(name), stimuli.families(STEPS, PER_TYPE, rng)) for name in TYPES]
    parts.append(random_theta_population(stimuli.families(STEPS, 40, rng), rng))
    pop = Population.concat(parts)
    return {
        "pop": pop,
        "brian2": brian2_sim.simulate(pop, "numpy"),
        "float64": snntorch_sim.simulate(pop, torch.float64),
        "float32": snntorch_sim.simulate(pop, torch.float32),
    }


def _select(traces: Traces, mask) -> Traces:
    return Traces(*(a[:, mask] for a in traces))


@pytest.mark.parametrize("name", TYPES)
def test_float64_agrees_with_brian2_by_the_rules(replay, name):
    pop, mask = replay["pop"], replay["pop"].kind == name
    sub = pop.select(mask)
    m = compare(_select(replay["float64"], mask), _select(replay["brian2"], mask), sub)
    assert judge(m, FLOAT64).ok.all()
    assert m.count_reference.sum() > 0  # the stimuli make every type fire
    sine = sub.first(name, "sine")  # the sine stimulus of docs/model.md#meta-neuron-generation, phase 0
    if name == "2-SDS":
        # eps = U - I + 1/4 passes 1 near step 120 (docs/model.md#tolerances): exact before, free after
        assert 110 <= m.horizon[sine] <= 130
        assert m.first_divergence[sine] >= m.horizon[sine]
        assert m.max_dv[sine] < 1e-13 and m.max_du[sine] < 1e-13
    else:
        # FS, RS, WDS, init and 1st-order: identical spikes and round-off states over the whole run
        assert m.horizon[sine] == STEPS and m.identical[sine]
        assert np.abs(replay["float64"].v[:, mask][:, sine] - replay["brian2"].v[:, mask][:, sine]).max() < 1e-14


def test_float64_exact_on_random_theta(replay):
    pop, mask = replay["pop"], replay["pop"].kind == "random-theta"
    m = compare(_select(replay["float64"], mask), _select(replay["brian2"], mask), pop.select(mask))
    assert judge(m, FLOAT64).ok.all()
    stable = m.horizon == STEPS
    assert stable.sum() >= 20 and m.identical[stable].all() and m.max_dv[stable].max() < 1e-13


@pytest.mark.parametrize("name", TYPES + ["random-theta"])
def test_float32_within_its_rules(replay, name):
    pop, mask = replay["pop"], replay["pop"].kind == name
    m = compare(_select(replay["float32"], mask), _select(replay["brian2"], mask), pop.select(mask))
    assert judge(m, FLOAT32).ok.all()
    assert m.max_dv.max() > 0  # float32 is not silently float64


def test_state_monitor_after_resets_is_aligned_and_start_is_one_step_behind():
    rng = np.random.default_rng(0)
    pop = Population.concat([Population.of(get(n), {"sine": stimuli.sine(60, 2, rng)}) for n in ("2-RS", "1st-order")])
    ours = snntorch_sim.simulate(pop, torch.float64)
    after = brian2_sim.simulate(pop, "numpy", record_when="after_resets")
    start = brian2_sim.simulate(pop, "numpy", record_when="start")
    assert np.abs(after.v - ours.v).max() < 1e-14
    np.testing.assert_array_equal(after.spikes, ours.spikes)
    second = pop.order == 2
    assert np.abs(after.u[:, second] - ours.u[:, second]).max() < 1e-14
    # 'start' row k is the state after step k-1; row 0 the initial state
    np.testing.assert_array_equal(start.v[1:], after.v[:-1])
    np.testing.assert_array_equal(start.u[1:, second], after.u[:-1, second])
    np.testing.assert_array_equal(start.v[0], np.where(second, V0, 0.0))
    np.testing.assert_array_equal(start.u[0, second], U0)
    # and read against the post-reset trace it is clearly wrong
    assert np.abs(start.v - ours.v).max() > 0.1


def wrong_model(pop: Population) -> Traces:
    """The MDN with U updated from the NEW V (a sequential instead of a simultaneous Euler step)."""
    if (pop.order != 2).any():
        raise ValueError("wrong_model simulates 2nd-order neurons only")
    a, b, c, d = pop.theta.T
    v = np.full(pop.size, V0)
    u = np.full(pop.size, U0)
    spikes, vs, us = [], [], []
    for current in pop.currents:
        v = v + dv_dt(v, u, current)
        u = u + du_dt(v, u, a, b)  # the bug: v is already the new V
        s = v > 0.5
        v = np.where(s, c, v)
        u = np.where(s, u + d, u)
        spikes.append(s)
        vs.append(v)
        us.append(u)
    return Traces(np.array(spikes), np.array(vs), np.array(us))


def test_wrong_update_order_fails_the_float64_rule(replay):
    pop, mask = replay["pop"], replay["pop"].order == 2
    sub = pop.select(mask)
    m = compare(wrong_model(sub), _select(replay["brian2"], mask), sub)
    j = judge(m, FLOAT64)
    assert (~j.ok).mean() > 0.9
    assert j.state_failed.mean() > 0.9 and j.spikes_failed.sum() > 0
    # the same wrong model even fails the looser float32 rule
    assert (~judge(m, FLOAT32).ok).mean() > 0.5


def test_horizon_is_where_eps_passes_one():
    u = np.array([[0.0, 0.2], [0.0, 1.3], [0.0, 1.4]])
    current = np.full((3, 2), 0.5)
    traces = Traces(np.zeros((3, 2), bool), np.zeros((3, 2)), u)
    # eps = u - 0.5 + 0.25: neuron 1 passes 1 at step 1 (1.05), neuron 0 never
    np.testing.assert_array_equal(stability_horizon(traces, current), [3, 1])


def test_van_rossum_distance():
    a = np.zeros((200, 3), bool)
    b = a.copy()
    b[50, 1] = True  # one extra spike: ~1/sqrt(2)
    b[60, 2] = a[61, 2] = True  # shifted by one step: small
    d = van_rossum(b, a, tau=10.0)
    assert d[0] == 0.0
    assert d[1] == pytest.approx(np.sqrt(1 / (10 * (1 - np.exp(-0.2)))), rel=1e-12) and 0.7 < d[1] < 0.75
    assert 0 < d[2] < d[1] / 2


def test_metrics_report_first_divergence_graze_and_rates():
    rng = np.random.default_rng(3)
    pop = Population.of(get("2-FS"), {"noise": stimuli.noise(100, 4, rng)})
    ref = brian2_sim.simulate(pop, "numpy")
    cand = Traces(ref.spikes.copy(), ref.v.copy(), ref.u.copy())
    k = int(np.flatnonzero(ref.spikes[:, 0])[2])
    cand.spikes[k, 0] = False
    m = compare(cand, ref, pop)
    assert m.first_divergence.tolist() == [k, 100, 100, 100]
    assert m.graze[0] > 0 and np.isinf(m.graze[1:]).all()
    assert m.free_steps[0] == 100 - k and m.rate_error[0] == pytest.approx(0.01)
    assert not judge(m, FLOAT64).ok[0] and judge(m, FLOAT64).ok[1:].all()


def test_a_non_finite_state_on_one_side_counts_as_a_difference():
    rng = np.random.default_rng(4)
    pop = Population.of(get("2-RS"), {"sine": stimuli.sine(50, 2, rng)})
    ref = brian2_sim.simulate(pop, "numpy")
    broken = Traces(ref.spikes, ref.v.copy(), ref.u.copy())
    broken.v[10:, 1] = np.nan
    m = compare(broken, ref, pop)
    assert m.max_dv[0] == 0.0 and np.isinf(m.max_dv[1])
    assert judge(m, FLOAT32).ok.tolist() == [True, False]


def test_float32_is_judged_only_while_its_state_is_finite():
    """A generated neuron with theta_a = -0.095 (seen in the demo's temporal library) lets U grow like
    exp(0.095 t): float32 overflows near step 930 and goes silent while float64 keeps firing. The
    free-window rate is compared only while both states are finite, so the float32 rule still holds."""
    from mdn_snntorch.meta_neurons import MetaNeuron

    runaway = MetaNeuron("runaway", 2, (-0.09478635713458061, 0.13874987038699063, 0.2776074469089508, 0.04697997812181711))
    steps = 1200
    pop = Population.of(runaway, {"sine": stimuli.sine(steps, 4, np.random.default_rng(0))})
    reference = brian2_sim.simulate(pop, "numpy")
    float32 = snntorch_sim.simulate(pop, torch.float32)
    assert not np.isfinite(float32.v[-1]).any(), "the float32 state overflows in this run"
    m = compare(float32, reference, pop)
    assert (m.free_steps < steps - m.exact_end).all(), "the free window stops at the overflow"
    assert judge(m, FLOAT32).ok.all()
