"""RMDN and RFirstOrder against a plain reference loop (functional.mdn_step / first_order_step with the
recurrent current added before the sigmoid): spikes and states exact in float64, gradients to rounding."""

from __future__ import annotations

import pytest
import snntorch as snn
import snntorch.functional  # noqa: F401 (snn.functional)
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch import functional as F
from mdn_snntorch import meta_neurons

F64 = torch.float64


def reference_rmdn(x, recurrent, theta, first_order=False):
    """I_t = sigmoid(x_t + R(S_{t-1})), then the functional step: spikes and post-reset mem ``[T, ...]``."""
    spk = torch.zeros_like(x[0])
    state = torch.zeros_like(x[0]) if first_order else F.initial_state(x[0])
    spikes, mems = [], []
    for x_t in x:
        current = torch.sigmoid(x_t + recurrent(spk))
        if first_order:
            spk, state = F.first_order_step(current, state, decay=theta)
            mems.append(state)
        else:
            spk, state = F.mdn_step(current, state, F.MDNParameters(*theta))
            mems.append(state.v)
        spikes.append(spk)
    return torch.stack(spikes), torch.stack(mems)


CASES = {
    "linear": (dict(linear_features=6), (8, 3, 6)),
    "conv": (dict(conv2d_channels=2, kernel_size=3), (8, 2, 2, 5, 5)),
    "one-to-one": (dict(all_to_all=False, V=torch.linspace(-0.5, 1.0, 6)), (8, 3, 6)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("order", [2, 1])
@pytest.mark.parametrize("path", ["single", "multi_step", "step_mode"])
def test_recurrent_neurons_match_the_reference_loop(case, order, path):
    kwargs, shape = CASES[case]
    torch.manual_seed(0)
    cls = mdn.RMDN if order == 2 else mdn.RFirstOrder
    neuron = cls(**kwargs, dtype=F64, step_mode="multi" if path == "step_mode" else "single")
    x = (torch.randn(shape, dtype=F64) * 2).requires_grad_()
    if path == "single":
        outs = [neuron(x_t) for x_t in x]
        spikes, mem = torch.stack([o[0] for o in outs]), torch.stack([o[-1] for o in outs])
    elif path == "multi_step":
        spikes, *_, mem = neuron.multi_step(x, return_traces=True)
    else:
        spikes, *_, mem = neuron(x)
    theta = 0.8 if order == 1 else meta_neurons.get("2-FS").theta
    ref_spikes, ref_mem = reference_rmdn(x, neuron.recurrent, theta, first_order=order == 1)
    assert torch.equal(spikes, ref_spikes) and torch.equal(mem, ref_mem)
    assert 0 < spikes.mean() < 1
    w = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    params = [x, *neuron.recurrent.parameters()]
    got = torch.autograd.grad((spikes * w).sum() + (mem * w).sum(), params)
    want = torch.autograd.grad((ref_spikes * w).sum() + (ref_mem * w).sum(), params)
    for g, r in zip(got, want):
        assert (g - r).abs().max() <= 1e-12 * r.abs().max()
    assert all(g.abs().sum() > 0 for g in got[1:]), "the recurrent weights learn"


def test_recurrence_changes_the_dynamics():
    x = torch.randn(10, 3, 6, dtype=F64)
    plain = mdn.MDN("2-FS", dtype=F64).multi_step(x)
    rec = mdn.RMDN("2-FS", all_to_all=False, V=-2.0, dtype=F64).multi_step(x)
    assert not torch.equal(plain, rec) and rec.sum() < plain.sum()  # self-inhibition


def test_rleaky_vocabulary_and_errors():
    n = mdn.RMDN("2-RS", linear_features=5, learn_recurrent=False)
    assert isinstance(n.recurrent, nn.Linear) and not any(p.requires_grad for p in n.recurrent.parameters())
    c = mdn.RMDN(conv2d_channels=4, kernel_size=(3, 5))
    assert c.recurrent.padding == (1, 2)
    v = mdn.RFirstOrder(all_to_all=False, V=torch.ones(3), learn_recurrent=True)
    assert isinstance(v.recurrent.V, nn.Parameter)
    with pytest.raises(TypeError, match="linear_features"):
        mdn.RMDN()
    with pytest.raises(TypeError, match="both"):
        mdn.RMDN(conv2d_channels=4)
    with pytest.raises(TypeError, match="not both"):
        mdn.RMDN(linear_features=4, kernel_size=3)
    with pytest.raises(TypeError, match="V"):
        mdn.RMDN(all_to_all=False, linear_features=4)


def test_returns_states_and_init_helpers_like_rsynaptic_and_rleaky():
    x = torch.randn(3, 4)
    n = mdn.RMDN(linear_features=4)
    spk, u, mem = n.init_rmdn()
    out = n(x, spk, u, mem)
    assert len(out) == 3 and out[2] is n.mem and out[0] is n.spk
    spk, u, mem = out
    assert len(n(x, spk, u, mem)) == 3
    assert torch.is_tensor(mdn.RMDN(linear_features=4, init_hidden=True)(x))
    f = mdn.RFirstOrder(linear_features=4)
    spk, mem = f.init_rfirst_order()
    assert len(f(x, spk, mem)) == 2
    with pytest.raises(TypeError):
        mdn.RMDN(linear_features=4, init_hidden=True)(x, spk, u, mem)
    # snnTorch's RSynaptic / RLeaky return the same structure
    assert len(snn.RSynaptic(alpha=0.9, beta=0.8, linear_features=4)(x)) == 3
    assert len(snn.RLeaky(beta=0.8, linear_features=4)(x)) == 2


def test_reset_clears_the_spike_state_too():
    n = mdn.RMDN(linear_features=4, init_hidden=True)
    x = torch.randn(5, 3, 4) + 2
    first = torch.stack([n(x_t) for x_t in x])
    assert n.spk.abs().sum() > 0
    mdn.reset(n)
    assert torch.equal(n.spk, torch.zeros(3, 4)) and torch.equal(n.u, torch.full((3, 4), 0.08))
    assert torch.equal(torch.stack([n(x_t) for x_t in x]), first)


def test_recurrent_net_in_sequential_trains():
    """Thirty Adam steps on a fixed batch lower snnTorch's count loss by more than a fifth, and the recurrent
    weights move (their gradients are checked against the reference loop above)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(8, 16), mdn.RMDN(linear_features=16, init_hidden=True), nn.Linear(16, 4), mdn.MDN(init_hidden=True, output=True)
    )
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = torch.rand(10, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    loss_fn = snn.functional.mse_count_loss()
    start = net[1].recurrent.weight.detach().clone()
    losses = []
    for _ in range(30):
        mdn.reset(net)
        loss = loss_fn(torch.stack([net(x_t)[0] for x_t in x]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert (net[1].recurrent.weight - start).abs().max() > 0.05
