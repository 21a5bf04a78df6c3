"""Gradients: the window surrogate (paper Eq. 6), learnable theta, the detached reset, gradcheck."""

import pytest
import snntorch as snn
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch import functional as F
from mdn_snntorch import meta_neurons
from mdn_snntorch.surrogate import window


@pytest.mark.parametrize("width", [0.1, 0.5, 1.0])
def test_window_forward_is_strict_heaviside_and_backward_is_the_window(width):
    x = torch.tensor([-2.0, -width, -width / 2, 0.0, width / 2, width, 2.0], dtype=torch.float64, requires_grad=True)
    spikes = window(width)(x)
    assert spikes.tolist() == [0, 0, 0, 0, 1, 1, 1]
    spikes.backward(torch.full_like(x, 3.0))
    expected = 3.0 * (x.detach().abs() < width).double()
    assert torch.equal(x.grad, expected)  # exactly 1{|x| < w}, height 1: 0 at |x| == w


def test_window_bad_width():
    with pytest.raises(ValueError, match="width"):
        window(0.0)


def test_window_works_as_spike_grad_of_snntorch_neurons():
    lif = snn.Leaky(beta=0.9, spike_grad=window(0.5))
    x = torch.full((4,), 0.7, requires_grad=True)
    spk, mem = lif(x)  # mem = 0.7, mem - threshold(1.0) = -0.3 is inside the window
    spk.sum().backward()
    assert torch.equal(x.grad, torch.ones(4))


def test_window_does_not_break_graphs():
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(window())(torch.randn(8))
    assert explanation.graph_break_count == 0


def test_learnable_theta_and_weights_all_get_finite_nonzero_gradients():
    torch.manual_seed(0)
    fc = nn.Linear(6, 16)
    neuron = mdn.MDN("init", num_neurons=16, learn_theta=True)
    x = (torch.rand(30, 8, 6) < 0.4).float()
    spikes = neuron.multi_step(fc(x))
    loss = ((spikes.mean(0) - 0.3) ** 2).sum()
    loss.backward()
    for name in ("theta_a", "theta_b", "theta_c", "theta_d"):
        grad = getattr(neuron, name).grad
        assert grad is not None and grad.shape == (16,), name
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert torch.isfinite(fc.weight.grad).all() and fc.weight.grad.abs().sum() > 0


def test_reset_uses_the_detached_spike():
    """At a firing step V' = theta_c and U' = U_euler + theta_d: neither depends on this step's
    current (U's Euler update uses the old V), so with a detached spike their gradient w.r.t. the
    current is exactly 0, while theta_c and theta_d get gradient 1."""
    theta = F.MDNParameters(*(torch.tensor(t, dtype=torch.float64, requires_grad=True) for t in meta_neurons.get("2-RS").theta))
    current = torch.tensor([0.95], dtype=torch.float64, requires_grad=True)
    state = F.MDNState(torch.tensor([0.45], dtype=torch.float64), torch.tensor([0.08], dtype=torch.float64))
    spikes, new = F.mdn_step(current, state, theta)
    assert spikes.item() == 1.0
    d_current, d_c, d_d = torch.autograd.grad(new.v.sum() + new.u.sum(), (current, theta.theta_c, theta.theta_d))
    assert d_current.item() == 0.0
    assert d_c.item() == 1.0 and d_d.item() == 1.0


def test_spike_gradient_reaches_the_current_through_the_surrogate():
    state = F.MDNState(torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.08], dtype=torch.float64))
    current = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    spikes, _ = F.mdn_step(current, state, F.MDNParameters(*meta_neurons.get("2-FS").theta))
    (grad,) = torch.autograd.grad(spikes.sum(), current)
    assert grad.item() == 1.0  # V' = 0.3 + (0.09 - 0.3 - 0.08 + 0.5) = 0.51: in the window, dV'/dI = dt = 1


def _mdn_states(current, v0, u0, a, b, c, d, steps=6):
    theta = F.MDNParameters(a, b, c, d)
    state = F.MDNState(v0, u0)
    for _ in range(steps):
        _, state = F.mdn_step(current, state, theta)
    return state.v, state.u


def test_gradcheck_mdn_state_through_spikes_and_resets():
    torch.manual_seed(3)
    current = torch.rand(5, dtype=torch.float64) * 0.6 + 0.3
    v0 = torch.rand(5, dtype=torch.float64) * 0.3
    u0 = torch.full((5,), 0.08, dtype=torch.float64)
    theta = [torch.tensor(t, dtype=torch.float64) for t in meta_neurons.get("2-RS").theta]
    inputs = [t.requires_grad_() for t in (current, v0, u0, *theta)]

    # the pre-reset V must stay clear of the threshold for finite differences to be valid
    state, pre = F.MDNState(v0.detach(), u0.detach()), []
    for _ in range(6):
        v_next = state.v + state.v**2 - state.v - state.u + current.detach()
        pre.append(v_next)
        _, state = F.mdn_step(current.detach(), state, F.MDNParameters(*(t.detach() for t in theta)))
    pre = torch.stack(pre)
    assert (pre > 0.5).any(), "some neuron must fire so the reset path is checked"
    assert ((pre - 0.5).abs() > 1e-3).all()

    assert torch.autograd.gradcheck(_mdn_states, inputs)


def test_gradcheck_first_order_state():
    current = torch.tensor([0.1, 0.3, 0.45, 0.2], dtype=torch.float64, requires_grad=True)
    decay = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)

    def run(current, decay):
        v = torch.zeros_like(current)
        for _ in range(5):
            _, v = F.first_order_step(current, v, decay=decay)
        return v

    assert torch.autograd.gradcheck(run, (current, decay))
