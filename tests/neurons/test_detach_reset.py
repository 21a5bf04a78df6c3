"""``detach_reset=False``: the reset written with the spike, its surrogate gradient flowing through it.

The detached reset (the default, as snnTorch) and the undetached one (the paper authors' published code)
give the same spikes and states; only the gradients differ. The undetached gradients must equal autograd
through the authors' own loop, where the previous step's spike resets the state at the start of the next
step. The fused op runs the undetached reset too and must agree with the reference loop.
"""

import pytest
import torch

from mdn_snntorch import MDN, FirstOrder, meta_neurons
from mdn_snntorch.functional import MDNParameters, first_order_multistep, initial_state, mdn_multistep, mdn_step
from mdn_snntorch.surrogate import window

T, B, N = 30, 4, 8
NEURONS = ["2-FS", "2-SDS", "1st-order"]


def make(name, detach_reset=True, **kwargs):
    kwargs.setdefault("dtype", torch.float64)
    if name == "1st-order":
        return FirstOrder(detach_reset=detach_reset, **kwargs)
    return MDN(name, detach_reset=detach_reset, **kwargs)


def random_input(seed=0):
    """Inputs spread around the firing range, so that many margins fall inside the surrogate's window."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, generator=g, dtype=torch.float64) * 1.5


def run(neuron, x, traces=True):
    """Spikes (and post-reset state traces) of a whole sequence through the module's multi-step path."""
    return neuron.multi_step(x, return_traces=traces)


def input_grad(neuron, x):
    x = x.clone().requires_grad_(True)
    run(neuron, x, traces=False).sum().backward()
    return x.grad


def authors_mdn_loop(x, theta, threshold=0.5, v0=0.0, u0=0.08):
    """The authors' order: the previous spike resets the state at the start of the step, then one Euler step
    from the OLD (v, u), then the window-surrogate spike of V' - V_th. The final state is left un-reset."""
    spike_fn = window()
    a, b, c, d = theta
    v = torch.full_like(x[0], v0)
    u = torch.full_like(x[0], u0)
    s = torch.zeros_like(x[0])
    spikes = []
    for x_t in x.unbind(0):
        v = v * (1 - s) + s * c
        u = u + s * d
        current = torch.sigmoid(x_t)
        v_new = v + (v * v - v - u + current)
        u_new = u + a * (b * v - u)
        s = spike_fn(v_new - threshold)
        v, u = v_new, u_new
        spikes.append(s)
    return torch.stack(spikes)


def authors_first_order_loop(x, decay=0.8, threshold=0.5, reset=0.0):
    """The same order for the 1st-order neuron: reset from the previous spike, then ``V' = g V + sigmoid(x)``."""
    spike_fn = window()
    v = torch.zeros_like(x[0])
    s = torch.zeros_like(x[0])
    spikes = []
    for x_t in x.unbind(0):
        v = v * (1 - s) + s * reset
        v = decay * v + torch.sigmoid(x_t)
        s = spike_fn(v - threshold)
        spikes.append(s)
    return torch.stack(spikes)


@pytest.mark.parametrize("name", NEURONS)
def test_undetached_reset_gives_the_same_spikes_and_states(name):
    x = random_input()
    detached = run(make(name, backend="reference"), x)
    undetached = run(make(name, detach_reset=False), x)
    assert undetached[0].sum() > 0 and (undetached[0] == 0).any()  # the input makes both spikes and silence
    for a, b in zip(detached, undetached):
        assert torch.equal(a, b)
    # the default backend ("auto", the fused op where it runs) gives the same values too
    for a, b in zip(run(make(name), x), undetached):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NEURONS)
def test_undetached_reset_changes_the_input_gradient(name):
    x = random_input()
    g_detached = input_grad(make(name), x)
    g_undetached = input_grad(make(name, detach_reset=False), x)
    assert torch.isfinite(g_undetached).all() and g_undetached.abs().sum() > 0
    assert not torch.allclose(g_detached, g_undetached)


@pytest.mark.parametrize("name", ["2-FS", "2-SDS"])
def test_undetached_mdn_gradient_equals_the_authors_loop(name):
    x = random_input(1)
    x_lib = x.clone().requires_grad_(True)
    run(make(name, detach_reset=False), x_lib, traces=False).sum().backward()
    x_ref = x.clone().requires_grad_(True)
    theta = meta_neurons.get(name).theta
    spikes_ref = authors_mdn_loop(x_ref, theta)
    spikes_ref.sum().backward()
    assert torch.equal(run(make(name, detach_reset=False), x, traces=False), spikes_ref.detach())
    torch.testing.assert_close(x_lib.grad, x_ref.grad, rtol=0, atol=1e-12)


def test_undetached_first_order_gradient_equals_the_authors_loop():
    x = random_input(2)
    x_lib = x.clone().requires_grad_(True)
    run(make("1st-order", detach_reset=False), x_lib, traces=False).sum().backward()
    x_ref = x.clone().requires_grad_(True)
    authors_first_order_loop(x_ref).sum().backward()
    torch.testing.assert_close(x_lib.grad, x_ref.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["2-FS", "2-SDS"])
def test_undetached_theta_gradients_equal_the_authors_loop(name):
    """Per-neuron learnable theta: the gradients of all four reach the same values as in the authors' loop
    (theta_c and theta_d through the reset's product with the spike, a and b through the spike's surrogate)."""
    x = random_input(3)
    neuron = make(name, detach_reset=False, num_neurons=N, learn_theta=True)
    x_lib = x.clone().requires_grad_(True)
    run(neuron, x_lib, traces=False).sum().backward()
    base = meta_neurons.get(name).theta
    theta = [torch.full((N,), v, dtype=torch.float64, requires_grad=True) for v in base]
    x_ref = x.clone().requires_grad_(True)
    authors_mdn_loop(x_ref, theta).sum().backward()
    torch.testing.assert_close(x_lib.grad, x_ref.grad, rtol=0, atol=1e-12)
    for p, ref in zip(neuron.theta, theta):
        assert p.grad is not None and p.grad.shape == (N,)
        torch.testing.assert_close(p.grad, ref.grad, rtol=0, atol=1e-12)
    # the detached reset gives theta_c other gradients (no flow through the spike into V' (1 - S) + S c)
    detached = make(name, num_neurons=N, learn_theta=True, backend="reference")
    run(detached, x, traces=False).sum().backward()
    assert not torch.allclose(detached.theta_a.grad, neuron.theta_a.grad)


@pytest.mark.parametrize("name", ["2-FS", "1st-order"])
def test_single_steps_follow_the_undetached_reset_too(name):
    """One ``forward`` per step (the fast single step is off for an undetached reset) gives the multi-step gradient."""
    x = random_input(4)
    x_multi = x.clone().requires_grad_(True)
    run(make(name, detach_reset=False), x_multi, traces=False).sum().backward()
    neuron = make(name, detach_reset=False)
    x_single = x.clone().requires_grad_(True)
    torch.stack([neuron(x_t)[0] for x_t in x_single.unbind(0)]).sum().backward()
    torch.testing.assert_close(x_single.grad, x_multi.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NEURONS)
def test_fused_backend_runs_an_undetached_reset_as_the_reference_loop(name):
    """``backend="fused"`` runs it: bitwise the reference's spikes and states, its input gradient to rounding."""
    x = random_input(5)
    results = {}
    for backend in ("fused", "reference"):
        xb = x.clone().requires_grad_(True)
        spikes, *states = run(make(name, detach_reset=False, backend=backend), xb)
        spikes.sum().backward()
        results[backend] = (spikes.detach(), [s.detach() for s in states], xb.grad)
    (s_fused, st_fused, g_fused), (s_ref, st_ref, g_ref) = results["fused"], results["reference"]
    assert torch.equal(s_fused, s_ref) and all(torch.equal(a, b) for a, b in zip(st_fused, st_ref))
    torch.testing.assert_close(g_fused, g_ref, rtol=0, atol=1e-12)


def test_functional_steps_take_detach_reset():
    """The functional forms: same values either way; only the undetached reset passes gradient through the spike."""
    x = random_input(6)
    current = torch.sigmoid(x)
    theta = MDNParameters(*meta_neurons.get("2-FS").theta)
    state = initial_state(current[0])
    detached = mdn_multistep(current, state, theta, return_traces=True)
    undetached = mdn_multistep(current, state, theta, return_traces=True, detach_reset=False)
    assert torch.equal(detached.spikes, undetached.spikes)
    assert torch.equal(detached.v, undetached.v) and torch.equal(detached.u, undetached.u)

    # one step from a state just below the threshold: V' lands inside the surrogate's window and fires
    v = torch.full((3,), 0.45, dtype=torch.float64, requires_grad=True)
    u = torch.zeros(3, dtype=torch.float64)
    i = torch.full((3,), 0.5, dtype=torch.float64)
    for detach_reset, expected in ((True, 0.0), (False, 1.0)):
        spikes, new = mdn_step(i, (v, u), theta, detach_reset=detach_reset)
        assert spikes.tolist() == [1.0, 1.0, 1.0]
        (g,) = torch.autograd.grad(new.v.sum(), v)
        # detached: V <- theta_c, no gradient to V; undetached: d/dV [V' (1 - S) + S c] = (c - V') dS/dV' dV'/dV
        if expected == 0.0:
            assert torch.equal(g, torch.zeros(3, dtype=torch.float64))
        else:
            v_next = 0.45 + (0.45**2 - 0.45 + 0.5)
            assert g.tolist() == pytest.approx([(theta.theta_c - v_next) * (1 + 2 * 0.45 - 1)] * 3)

    trace = first_order_multistep(current, torch.zeros_like(current[0]), return_traces=True)
    trace_u = first_order_multistep(current, torch.zeros_like(current[0]), return_traces=True, detach_reset=False)
    assert torch.equal(trace.spikes, trace_u.spikes) and torch.equal(trace.v, trace_u.v)
