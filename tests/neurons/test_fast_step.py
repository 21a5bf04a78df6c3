"""The fast single step (functional.fused_mdn_step / fused_first_order_step, what every per-step forward
runs) against the reference composition of torch ops (functional.mdn_step / first_order_step).

The forward performs the reference's float operations in its order, so spikes and states are compared
for exact equality; the backward is hand-written, so gradients agree to rounding: float64 within 1e-12
of the largest entry, float32 within 1e-4 (the tolerances of tests/fused, docs/model.md#tolerances).
"""

from __future__ import annotations

import pytest
import torch

import mdn_snntorch as mdn
from mdn_snntorch import functional as F
from mdn_snntorch.surrogate import window

RTOL = {torch.float64: 1e-12, torch.float32: 1e-4}


def assert_grads_close(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"grad {i}: shape {tuple(g.shape)} vs {tuple(w.shape)}"
        scale = max(w.abs().max().item(), 1e-30)
        err = (g - w).abs().max().item()
        assert err <= RTOL[w.dtype] * scale, f"grad {i}: max error {err:.3g} vs scale {scale:.3g}"


def drive(T, shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, *shape, generator=g) * 1.5 + 0.5).to(dtype)


def run_mdn(fast, x, theta, th, scale, dt, substeps, width=0.5):
    """Spikes and post-reset traces over ``x [T, ...]`` and the gradients of a weighted sum of all three."""
    x = x.clone().requires_grad_()
    state = F.initial_state(x[0])
    spikes, vs, us = [], [], []
    for x_t in x:
        if fast:
            s, state = F.fused_mdn_step(
                x_t, state, F.MDNParameters(*theta), threshold=th, dt=dt, substeps=substeps, width=width,
                graded_spikes_factor=scale, input_sigmoid=True,
            )  # fmt: skip
        else:
            s, state = F.mdn_step(
                torch.sigmoid(x_t), state, F.MDNParameters(*theta), threshold=th, dt=dt, substeps=substeps,
                spike_fn=window(width),
            )  # fmt: skip
            s = s * scale
        spikes.append(s)
        vs.append(state.v)
        us.append(state.u)
    out = torch.stack(spikes), torch.stack(vs), torch.stack(us)
    g = torch.Generator().manual_seed(7)
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in out]
    loss = sum((o * w).sum() for o, w in zip(out, weights))
    return out, torch.autograd.grad(loss, [x, *theta, th, scale])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dt, substeps", [(1.0, 1), (1.0, 3), (0.5, 2), (0.7, 1)])
@pytest.mark.parametrize(
    "shape, param_shape", [((4, 6), (6,)), ((3, 2, 4, 4), (2, 1, 1)), ((5,), ())], ids=["per-neuron", "per-channel", "shared"]
)
def test_fused_mdn_step_equals_the_reference_step(dtype, dt, substeps, shape, param_shape):
    x = drive(15, shape, dtype)
    theta = [torch.tensor(t, dtype=dtype).expand(param_shape).clone().requires_grad_() for t in (0.06, 0.219, -0.065, 0.05)]
    with torch.no_grad():  # make the neurons differ
        theta[0].add_(torch.linspace(-0.01, 0.02, theta[0].numel(), dtype=dtype).view(param_shape))
    th = torch.tensor(0.5, dtype=dtype, requires_grad=True)
    scale = torch.tensor(1.5, dtype=dtype, requires_grad=True)
    (fast, fast_grads), (ref, ref_grads) = (run_mdn(f, x, theta, th, scale, dt, substeps) for f in (True, False))
    assert ref[0].sum() > 0 and (ref[0] == 0).any()
    for a, b in zip(fast, ref):
        assert torch.equal(a, b)
    assert_grads_close(fast_grads, ref_grads)
    assert fast_grads[1].abs().sum() > 0 and fast_grads[1].shape == theta[0].shape


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_first_order_step_equals_the_reference_step(dtype):
    x = drive(20, (3, 2, 5), dtype).requires_grad_()
    decay = torch.tensor([0.7, 0.9], dtype=dtype).view(2, 1).requires_grad_()
    th, reset = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in (0.5, 0.05))
    scale = torch.tensor(2.0, dtype=dtype, requires_grad=True)
    outs = {}
    for fast in (True, False):
        v = torch.zeros(3, 2, 5, dtype=dtype)
        spikes, vs = [], []
        for x_t in x:
            if fast:
                s, v = F.fused_first_order_step(
                    x_t, v, decay=decay, threshold=th, reset=reset, graded_spikes_factor=scale, input_sigmoid=True
                )
            else:
                s, v = F.first_order_step(torch.sigmoid(x_t), v, decay=decay, threshold=th, reset=reset)
                s = s * scale
            spikes.append(s)
            vs.append(v)
        spikes, vs = torch.stack(spikes), torch.stack(vs)
        w = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
        outs[fast] = (spikes, vs, torch.autograd.grad((spikes * w).sum() + (vs * w).sum(), [x, decay, th, reset, scale]))
    assert torch.equal(outs[True][0], outs[False][0]) and torch.equal(outs[True][1], outs[False][1])
    assert outs[False][0].sum() > 0
    assert_grads_close(outs[True][2], outs[False][2])


def test_the_fired_at_infinity_case_resets_exactly():
    """The float-only reset (min(V', V_th) (1 - s) + theta_c s) gives theta_c even where V' overflowed to inf."""
    state = F.MDNState(torch.tensor([-1e30, 0.1, -1e30], dtype=torch.float64), torch.tensor([0.08, 0.08, 1e300]))
    theta = F.MDNParameters(0.06, 0.219, -0.065, 0.003)
    current = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    fast = F.fused_mdn_step(current, state, theta)
    ref = F.mdn_step(current, F.MDNState(state.v, state.u.double()), theta)
    assert torch.equal(fast[0], ref[0]) and torch.equal(fast[1].v, ref[1].v)
    assert fast[1].v.tolist()[0] == -0.065  # V' = inf fired and reset


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (mdn.MDN, dict(theta="2-RS")),
        (mdn.MDN, dict(theta="init", num_neurons=5, learn_theta=True, learn_threshold=True, graded_spikes_factor=1.5)),
        (mdn.MDN, dict(theta="2-FS", dt=0.5, substeps=2, learn_graded_spikes_factor=True)),
        (mdn.FirstOrder, dict(learn_decay=True, num_neurons=5, learn_threshold=True)),
    ],
    ids=["MDN", "MDN-learnable", "MDN-substeps", "FirstOrder-learnable"],
)
def test_module_step_agrees_with_the_reference_module(cls, kwargs):
    """The module's per-step forward (fast step) against the same module forced onto the reference
    composition (a spike_grad that is not the Window type): same spikes and state, gradients to rounding."""

    class Reference(type(window())):  # same surrogate, another type: the module falls back to functional.mdn_step
        pass

    x = drive(25, (3, 5), torch.float64)
    results = []
    for spike_grad in (window(), Reference()):
        neuron = cls(**kwargs, spike_grad=spike_grad, dtype=torch.float64)
        xx = x.clone().requires_grad_()
        outs = [neuron(x_t) for x_t in xx]
        spikes = torch.stack([o[0] for o in outs])
        mem = torch.stack([o[-1] for o in outs])
        w = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        params = [p for _, p in sorted(neuron.named_parameters())]
        grads = torch.autograd.grad((spikes * w).sum() + (mem * w).sum(), [xx, *params])
        results.append((spikes, mem, grads))
    (s1, m1, g1), (s2, m2, g2) = results
    assert torch.equal(s1, s2) and torch.equal(m1, m2) and s1.sum() > 0
    assert_grads_close(g1, g2)


def _graph_cost(neuron, x):
    """(autograd nodes, full-size tensors saved for the backward, their bytes) of the second step's graph."""
    neuron(x)  # the first step: from here on the state is part of the graph
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        spk, *_ = neuron(x)
    nodes, stack, seen = 0, [spk.grad_fn, neuron.mem.grad_fn, neuron.u.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen or "AccumulateGrad" in type(node).__name__:
            continue
        seen.add(node)
        nodes += 1
        stack.extend(n for n, _ in node.next_functions if n is not None and n not in seen)
    full = [t for t in saved if t.shape == x.shape]
    return nodes, len(full), sum(t.numel() * t.element_size() for t in saved)


def test_one_step_is_one_node_and_saves_less_than_the_composition():
    x = torch.randn(4, 6, requires_grad=True)

    class Reference(type(window())):
        pass

    fast = _graph_cost(mdn.MDN("2-FS"), x)
    composed = _graph_cost(mdn.MDN("2-FS", spike_grad=Reference()), x)
    assert fast[0] == 2, fast  # one node per step (this step's and the previous one's)
    assert fast[0] < composed[0] and fast[1] < composed[1] and fast[2] <= composed[2], (fast, composed)
