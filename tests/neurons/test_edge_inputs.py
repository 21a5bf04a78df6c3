"""Edges of the API: empty sequences and batches on every path, non-finite settings refused when a layer is
built, a non-finite membrane reported once, theta tensors that require grad, and FirstOrder given an MDN name."""

from __future__ import annotations

import warnings

import pytest
import torch
from snntorch.functional import quant as snn_quant
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch import functional as F
from mdn_snntorch import fused, meta_neurons
from mdn_snntorch.fused import c_kernels, ops
from mdn_snntorch.surrogate import window

F64 = torch.float64
EMPTY = [(0, 3), (4, 0), (0, 0)]  # (T, B) with N = 5
KERNELS = ["c", "torch", "triton"] if c_kernels.library() is not None else ["torch", "triton"]


# ---------------------------------------------------------------------------------------------------
# T = 0 and batch 0: empty results, the state left as it is, everywhere
# ---------------------------------------------------------------------------------------------------
def _mdn_inputs(T, B):
    v0 = torch.randn(B, 5, dtype=F64, requires_grad=True)
    u0 = torch.full((B, 5), 0.08, dtype=F64, requires_grad=True)
    return torch.randn(T, B, 5, dtype=F64), F.MDNState(v0, u0), F.MDNParameters(*meta_neurons.get("2-RS").theta)


def _check_empty(trace, x, state):
    assert trace.spikes.shape == x.shape and trace.spikes.numel() == 0
    assert trace.v.shape == x.shape and (getattr(trace, "u", None) is None or trace.u.shape == x.shape)
    final = trace.state if torch.is_tensor(trace.state) else trace.state.v
    start = state if torch.is_tensor(state) else state.v
    assert torch.equal(final, start)
    if x.shape[1]:  # the final state is the initial one: its gradient reaches the initial state as is
        (grad,) = torch.autograd.grad(final.sum(), start)
        assert torch.equal(grad, torch.ones_like(start))


@pytest.mark.parametrize("T, B", EMPTY)
def test_empty_sequences_in_the_reference_loops(T, B):
    x, state, theta = _mdn_inputs(T, B)
    _check_empty(F.mdn_multistep(x, state, theta, return_traces=True), x, state)
    _check_empty(F.first_order_multistep(x, state.v, return_traces=True), x, state.v)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("T, B", EMPTY)
def test_empty_sequences_in_the_fused_op_with_each_kernel(kernel, T, B, monkeypatch):
    """The op runs no kernel on an empty problem; with the Triton kernel chosen (as on a GPU) it is the same."""
    x, state, theta = _mdn_inputs(T, B)
    if kernel == "triton":
        monkeypatch.setattr(ops, "resolve_kernel", lambda device, dtype: "triton")
        choice = fused.use_kernel("auto")
    else:
        choice = fused.use_kernel(kernel)
    with choice:
        _check_empty(fused.mdn_multistep(x, state, theta, input_sigmoid=True, return_traces=True), x, state)
        _check_empty(fused.first_order_multistep(x, state.v, input_sigmoid=True, return_traces=True), x, state.v)


def _neurons():
    quant = snn_quant.state_quant(num_bits=8, uniform=True)
    return {
        "MDN": mdn.MDN("2-FS"),
        "MDN-reference": mdn.MDN("2-FS", backend="reference"),
        "MDN-fused": mdn.MDN("2-FS", backend="fused"),
        "MDN-state_quant": mdn.MDN("2-FS", state_quant=quant),
        "FirstOrder": mdn.FirstOrder(),
        "FirstOrder-reference": mdn.FirstOrder(backend="reference"),
        "FirstOrder-state_quant": mdn.FirstOrder(state_quant=quant),
        "RMDN": mdn.RMDN(linear_features=5),
        "RFirstOrder": mdn.RFirstOrder(all_to_all=False, V=0.5),
    }


@pytest.mark.parametrize("name", list(_neurons()))
@pytest.mark.parametrize("T, B", EMPTY)
def test_empty_sequences_in_every_neuron(name, T, B):
    neuron = _neurons()[name]
    x = torch.randn(T, B, 5)
    outs = neuron.multi_step(x, return_traces=True)
    assert all(o.shape == x.shape for o in outs)
    assert neuron.mem.shape == (B, 5) and neuron._steps == T  # the steps of an empty batch count
    assert neuron.multi_step(x).shape == x.shape
    neuron.step_mode = "multi"
    assert neuron(x)[0].shape == x.shape


@pytest.mark.parametrize("name", list(_neurons()))
def test_an_empty_batch_in_the_single_step(name):
    neuron = _neurons()[name]
    spk, *states = neuron(torch.randn(0, 5))
    assert spk.shape == (0, 5) and all(s.shape == (0, 5) for s in states)


# ---------------------------------------------------------------------------------------------------
# settings refused when the layer is built
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: mdn.MDN(threshold=float("nan")), "MDN: threshold must be finite"),
        (lambda: mdn.MDN(threshold=torch.tensor(float("inf"))), "MDN: threshold must be finite"),
        (lambda: mdn.MDN(graded_spikes_factor=float("nan")), "MDN: graded_spikes_factor must be finite"),
        (lambda: mdn.FirstOrder(graded_spikes_factor=float("-inf")), "FirstOrder: graded_spikes_factor must be finite"),
        (lambda: mdn.RMDN(linear_features=3, threshold=float("inf")), "RMDN: threshold must be finite"),
        (lambda: mdn.MDN(v0=float("nan")), "MDN: v0 must be finite"),
        (lambda: mdn.MDN(u0=float("inf")), "MDN: u0 must be finite"),
        (lambda: mdn.FirstOrder(reset=float("nan")), "FirstOrder: reset must be finite"),
        (lambda: mdn.MDN(threshold="high"), "MDN: threshold must be a finite number"),
    ],
)
def test_non_finite_settings_are_refused_when_built(build, words):
    with pytest.raises(ValueError, match=words):
        build()


# ---------------------------------------------------------------------------------------------------
# a non-finite membrane: one warning naming the layer and the step
# ---------------------------------------------------------------------------------------------------
DIVERGING = (1e30, 0.2, 0.0, 0.08)  # theta_a = 1e30: U, then V, leave the floats within a few steps


def first_bad_step(x: torch.Tensor) -> int:
    """The first step (1-based) after which the reference loop's post-reset membrane is not finite."""
    trace = F.mdn_multistep(torch.sigmoid(x), F.initial_state(x[0]), F.MDNParameters(*DIVERGING), return_traces=True)
    bad = (~torch.isfinite(trace.v)).flatten(1).any(1)
    return int(bad.nonzero()[0]) + 1


def _nonfinite_warnings(run) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in record if "membrane potential is not finite" in str(w.message)]


X = torch.randn(12, 2, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "run",
    [
        lambda n: [n(x_t) for x_t in X],
        lambda n: n.multi_step(X),
        lambda n: n.multi_step(X, return_traces=True),
        lambda n: (n.multi_step(X[:2]), n.multi_step(X[2:])),  # the step counts across calls
    ],
    ids=["single-steps", "multi_step", "multi_step-traces", "two-calls"],
)
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_a_non_finite_membrane_warns_once_naming_the_layer_and_the_step(run, backend):
    step = first_bad_step(X)
    assert 1 < step < len(X)
    neuron = mdn.MDN(DIVERGING, backend=backend)
    messages = _nonfinite_warnings(lambda: (run(neuron), run(neuron)))
    assert len(messages) == 1, messages
    assert messages[0].startswith("MDN(theta=custom, shared") and f"after step {step} since its state was reset" in messages[0]


def test_the_recurrent_neurons_warn_too():
    messages = _nonfinite_warnings(lambda: mdn.RMDN(DIVERGING, all_to_all=False, V=0.0).multi_step(X))
    assert len(messages) == 1 and messages[0].startswith("RMDN(")


def test_a_given_non_finite_state_is_named():
    neuron = mdn.FirstOrder()
    messages = _nonfinite_warnings(lambda: neuron(torch.zeros(2, 4), torch.full((2, 4), float("nan"))))
    assert len(messages) == 1 and "in the state it starts from" in messages[0]


def test_check_input_false_checks_nothing():
    assert _nonfinite_warnings(lambda: mdn.MDN(DIVERGING, check_input=False).multi_step(X)) == []
    assert _nonfinite_warnings(lambda: mdn.MDN("2-FS").multi_step(X)) == []  # a finite run says nothing


# ---------------------------------------------------------------------------------------------------
# theta tensors that require grad: trained as given or refused
# ---------------------------------------------------------------------------------------------------
def test_theta_that_requires_grad_is_refused_without_learn_theta():
    theta = (torch.tensor(0.02, requires_grad=True), 0.2, 0.0, 0.08)
    with pytest.raises(ValueError, match="theta_a requires grad.*learn_theta=False.*pass learn_theta=True"):
        mdn.MDN(theta)
    with pytest.raises(ValueError, match="decay requires grad.*learn_decay=True"):
        mdn.FirstOrder(torch.tensor(0.8, requires_grad=True))


def test_theta_parameters_are_trained_as_given():
    """The very nn.Parameter the user holds gets the gradient, and it is the numerical one."""
    theta = [nn.Parameter(torch.full((4,), v, dtype=F64)) for v in (0.06, 0.219, -0.065, 0.003)]
    neuron = mdn.MDN(theta, learn_theta=True, dtype=F64)
    assert all(getattr(neuron, n) is p for n, p in zip(("theta_a", "theta_b", "theta_c", "theta_d"), theta))
    x = torch.randn(6, 2, 4, dtype=F64, generator=torch.Generator().manual_seed(1)) - 1.5  # few spikes

    def loss():
        mdn.reset(neuron)
        return neuron.multi_step(x, return_traces=True)[2].sum()  # the membrane trace

    loss().backward()
    eps = 1e-6
    with torch.no_grad():
        theta[1][2] += eps
        up = loss()
        theta[1][2] -= 2 * eps
        down = loss()
        theta[1][2] += eps
    numerical = (up - down).item() / (2 * eps)
    assert abs(numerical) > 0.1
    assert theta[1].grad[2].item() == pytest.approx(numerical, rel=1e-6)


def test_requires_grad_theta_that_cannot_be_registered_as_given_is_refused():
    with pytest.raises(ValueError, match="theta_a requires grad but cannot be registered as given.*shape \\(4,\\)"):
        mdn.MDN((nn.Parameter(torch.tensor(0.02)), *(torch.full((4,), v) for v in (0.2, 0.0, 0.08))), learn_theta=True)
    with pytest.raises(ValueError, match="this is a Tensor"):
        mdn.MDN(tuple(torch.full((4,), v, requires_grad=True) for v in (0.02, 0.2, 0.0, 0.08)), learn_theta=True)
    neuron = mdn.MDN(tuple(torch.full((4,), v) for v in (0.02, 0.2, 0.0, 0.08)), learn_theta=True)  # plain values: copied
    assert isinstance(neuron.theta_a, nn.Parameter)


# ---------------------------------------------------------------------------------------------------
# FirstOrder given a name
# ---------------------------------------------------------------------------------------------------
def test_first_order_given_an_mdn_name_names_mdn():
    with pytest.raises(ValueError, match=r"'2-FS' is a 2nd-order meta neuron; use mdn_snntorch.MDN\('2-FS'\)"):
        mdn.FirstOrder("2-FS")
    with pytest.raises(ValueError, match="use mdn_snntorch.MDN"):
        mdn.FirstOrder(meta_neurons.get("2-SDS"))
    with pytest.raises(ValueError, match="unknown neuron '2-XX'"):
        mdn.FirstOrder("2-XX")
    assert float(mdn.FirstOrder("1st-order").decay) == pytest.approx(0.8)


def test_the_node_runs_the_undetached_reset_like_the_reference():
    """With detach_reset=False the single step is one node too: forward bitwise, gradients to rounding."""
    x = torch.randn(20, 3, 4, dtype=F64, generator=torch.Generator().manual_seed(2)) * 1.5
    theta = [torch.full((4,), v, dtype=F64, requires_grad=True) for v in (0.06, 0.219, -0.065, 0.05)]
    outs = []
    for node in (True, False):
        xx, state, spikes, vs = x.clone().requires_grad_(), F.initial_state(x[0]), [], []
        for x_t in xx:
            if node:
                s, state = F.fused_mdn_step(
                    x_t, state, F.MDNParameters(*theta), input_sigmoid=True, substeps=2, detach_reset=False
                )
            else:
                s, state = F.mdn_step(
                    torch.sigmoid(x_t), state, F.MDNParameters(*theta), substeps=2, spike_fn=window(), detach_reset=False
                )
            spikes.append(s)
            vs.append(state.v)
        spikes, vs = torch.stack(spikes), torch.stack(vs)
        loss = (spikes * torch.linspace(-1, 1, 4, dtype=F64)).sum() + vs.sum() + state.u.sum()
        outs.append((spikes, vs, torch.autograd.grad(loss, [xx, *theta])))
    (s1, v1, g1), (s2, v2, g2) = outs
    assert torch.equal(s1, s2) and torch.equal(v1, v2) and s1.sum() > 0
    for a, b in zip(g1, g2):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max()
