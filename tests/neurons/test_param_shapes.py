"""Broadcastable theta and decay (docs/snntorch.md#parameter-shapes): any shape that broadcasts against one
step of the input without changing it, as snnTorch broadcasts ``beta``; ``num_neurons`` as the shorthand
for the last dimension of ``[B, N]``; the fused time loop expands them exactly."""

from __future__ import annotations

import pytest
import torch

import mdn_snntorch as mdn
from mdn_snntorch import fused

F64 = torch.float64


def conv_drive(T=12, B=3, C=4, H=5, W=6, seed=0, dtype=F64):
    return torch.randn(T, B, C, H, W, generator=torch.Generator().manual_seed(seed)).to(dtype) * 2


def test_per_channel_theta_acts_per_channel():
    """theta (C, 1, 1) on [B, C, H, W]: channel c behaves exactly as a shared-theta neuron with channel c's values."""
    theta = [torch.tensor(v, dtype=F64).view(2, 1, 1) for v in ([0.06, -0.009], [0.219, 0.246], [-0.065, -0.058], [0.003, 0.065])]
    pair = mdn.MDN(theta, dtype=F64)
    assert pair.param_shape == (2, 1, 1) and pair.num_neurons is None
    x = conv_drive(C=2)
    both = pair.multi_step(x)
    torch.testing.assert_close(both[:, :, 0], mdn.MDN("2-FS", dtype=F64).multi_step(x[:, :, 0]), rtol=0, atol=0)
    torch.testing.assert_close(both[:, :, 1], mdn.MDN("2-SDS", dtype=F64).multi_step(x[:, :, 1]), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("param_shape", [(4, 1, 1), (4, 5, 6), (1, 1, 6), (5, 1)], ids=["channel", "pixel", "column", "row"])
def test_learnable_per_channel_theta_fused_equals_reference(dtype, param_shape):
    x = conv_drive(dtype=dtype)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    results = {}
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        neuron = mdn.MDN("2-RS", param_shape=param_shape, learn_theta=True, dtype=dtype, backend=backend)
        with torch.no_grad():
            neuron.theta_a.add_(torch.rand(param_shape, dtype=dtype) * 0.02)
            neuron.theta_c.add_(torch.rand(param_shape, dtype=dtype) * 0.02)
        xx = x.clone().requires_grad_()
        spk, u, v = neuron.multi_step(xx, return_traces=True)
        ((spk * w).sum() + (v * w).sum() + (u * w).sum()).backward()
        results[backend] = (spk, u, v, xx.grad, *(getattr(neuron, n).grad for n in ("theta_a", "theta_b", "theta_c", "theta_d")))
    fused_out, ref = results["fused"], results["reference"]
    for a, b in zip(fused_out[:3], ref[:3]):
        assert torch.equal(a, b)
    rtol = 1e-12 if dtype == torch.float64 else 1e-4
    for a, b in zip(fused_out[3:], ref[3:]):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= rtol * b.abs().max()
    assert fused_out[4].shape == param_shape


def test_per_channel_theta_takes_the_fused_op(monkeypatch):
    calls = []
    original = fused.mdn_multistep
    monkeypatch.setattr(fused, "mdn_multistep", lambda *a, **k: calls.append(1) or original(*a, **k))
    mdn.MDN("2-FS", param_shape=(4, 1, 1)).multi_step(conv_drive(dtype=torch.float32))
    assert calls == [1]


def test_theta_varying_over_the_batch_falls_back_to_the_reference_loop(monkeypatch):
    """A shape (B, N) broadcasts against [B, N] but varies along the batch: the reference loop runs it."""
    calls = []
    original = fused.mdn_multistep
    monkeypatch.setattr(fused, "mdn_multistep", lambda *a, **k: calls.append(1) or original(*a, **k))
    neuron = mdn.MDN("2-FS", param_shape=(3, 4), dtype=F64)
    x = torch.randn(6, 3, 4, dtype=F64)
    out = neuron.multi_step(x)
    assert calls == []
    assert torch.equal(out, mdn.MDN("2-FS", dtype=F64).multi_step(x)) and calls == [1]


def test_first_order_per_channel_decay_single_and_multi_step():
    decay = torch.tensor([0.5, 0.8, 0.95, 0.99], dtype=F64).view(4, 1, 1)
    x = conv_drive()
    multi = mdn.FirstOrder(decay, learn_decay=True, dtype=F64)
    out = multi.multi_step(x)
    out.sum().backward()
    assert multi.decay.grad.shape == (4, 1, 1)
    single = mdn.FirstOrder(decay, dtype=F64)
    assert torch.equal(torch.stack([single(x_t)[0] for x_t in x]), out)
    ref = mdn.FirstOrder(decay, dtype=F64, backend="reference")
    assert torch.equal(ref.multi_step(x), out)


def test_num_neurons_is_the_last_dimension_of_a_2d_input_only():
    neuron = mdn.MDN("2-FS", num_neurons=8)
    assert neuron.param_shape == (8,) and neuron.theta_a.shape == (8,)
    neuron(torch.zeros(4, 8))  # [B, N]
    neuron(torch.zeros(8))  # unbatched
    neuron.multi_step(torch.zeros(5, 4, 8))  # [T, B, N]
    with pytest.raises(ValueError, match=r"more than one feature dimension.*param_shape=\(C, 1, 1\)"):
        neuron(torch.zeros(4, 12, 8, 8))  # the old silent trap: theta along the image width
    with pytest.raises(ValueError, match=r"more than one feature dimension"):
        neuron.multi_step(torch.zeros(5, 4, 3, 8))
    with pytest.raises(ValueError, match=r"num_neurons=12, but its input has shape \(4, 8\)"):
        mdn.MDN("2-FS", num_neurons=12)(torch.zeros(4, 8))


def test_explicit_shapes_and_their_errors():
    mdn.MDN("2-FS", param_shape=(1, 1, 8))(torch.zeros(4, 12, 8, 8))  # deliberately along the last axis
    with pytest.raises(ValueError, match=r"theta_a has shape \(12, 1, 1\), which does not broadcast"):
        mdn.MDN("2-FS", param_shape=(12, 1, 1))(torch.zeros(4, 8, 8, 8))
    with pytest.raises(ValueError, match="disagree"):
        mdn.MDN("2-FS", num_neurons=4, param_shape=(4, 1))
    with pytest.raises(ValueError, match="param_shape must be positive"):
        mdn.MDN("2-FS", param_shape=(0,))
    with pytest.raises(ValueError, match=r"theta_b has shape \(3,\); expected a shape that broadcasts to \(4, 1, 1\)"):
        mdn.MDN((0.1, torch.zeros(3), 0.0, 0.0), param_shape=(4, 1, 1))


def test_make_neuron_learnable_with_a_param_shape():
    neuron = mdn.make_neuron("learnable", param_shape=(12, 1, 1))
    assert isinstance(neuron, mdn.MDN) and neuron.learn_theta and neuron.theta_d.shape == (12, 1, 1)
    first = mdn.make_neuron("1st-order", param_shape=(12, 1, 1), learn_decay=True)
    assert first.decay.shape == (12, 1, 1)
