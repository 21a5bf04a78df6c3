"""Whole-sequence mode: ``step_mode="multi"`` neurons and ``TimeDistributed`` layers in ``nn.Sequential``."""

from __future__ import annotations

import pytest
import snntorch as snn
import snntorch.functional as SF
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch import fused

F64 = torch.float64


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_multi_mode_forward_is_multi_step_with_snntorch_returns(cls):
    x = torch.randn(9, 3, 5, dtype=F64)
    hidden = cls(step_mode="multi", init_hidden=True, dtype=F64)
    spikes = hidden(x)
    assert torch.is_tensor(spikes) and torch.equal(spikes, cls(dtype=F64).multi_step(x))
    out = cls(step_mode="multi", init_hidden=True, output=True, dtype=F64)(x)
    traces = cls(dtype=F64).multi_step(x, return_traces=True)
    assert len(out) == len(traces) and all(torch.equal(a, b) for a, b in zip(out, traces))
    explicit = cls(step_mode="multi", dtype=F64)
    out = explicit(x)  # init_hidden=False: spikes and state traces, the final state stays in the module
    assert len(out) == len(traces) and torch.equal(out[-1][-1], explicit.mem)


def test_multi_mode_takes_initial_states_like_the_single_step():
    x = torch.randn(6, 2, 4, dtype=F64)
    stepper = mdn.MDN("2-RS", dtype=F64)
    for x_t in x[:3]:
        _, u, mem = stepper(x_t)
    rest = torch.stack([stepper(x_t)[0] for x_t in x[3:]])
    seq = mdn.MDN("2-RS", step_mode="multi", dtype=F64)
    spk, _, _ = seq(x[3:], u, mem)
    assert torch.equal(spk, rest)
    with pytest.raises(TypeError, match="init_hidden"):
        mdn.MDN(step_mode="multi", init_hidden=True)(x, u, mem)


def test_bad_step_mode():
    with pytest.raises(ValueError, match="step_mode"):
        mdn.MDN(step_mode="m")


def tutorial6(neuron, multi: bool, dtype=F64):
    """snnTorch tutorial 6's conv net (Conv2d(1,12,5)-MaxPool-neuron-Conv2d(12,64,5)-MaxPool-neuron-Linear-neuron)."""
    torch.manual_seed(0)
    convs = [nn.Conv2d(1, 12, 5), nn.Conv2d(12, 64, 5), nn.Linear(64 * 4 * 4, 10)]
    convs = [c.to(dtype) for c in convs]
    kw = dict(step_mode="multi") if multi else {}
    wrap = mdn.TimeDistributed if multi else nn.Sequential
    return nn.Sequential(
        wrap(convs[0], nn.MaxPool2d(2)),
        neuron(init_hidden=True, **kw),
        wrap(convs[1], nn.MaxPool2d(2)),
        neuron(init_hidden=True, **kw),
        wrap(nn.Flatten(), convs[2]),
        neuron(init_hidden=True, output=True, **kw),
    )


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_tutorial6_conv_net_whole_sequence_equals_the_per_step_loop(cls, monkeypatch):
    calls = []
    for name in ("mdn_multistep", "first_order_multistep"):
        original = getattr(fused, name)
        monkeypatch.setattr(fused, name, lambda *a, _f=original, **k: calls.append(1) or _f(*a, **k))
    x = torch.rand(6, 4, 1, 28, 28, dtype=F64)
    per_step, whole = tutorial6(lambda **k: cls(dtype=F64, **k), False), tutorial6(lambda **k: cls(dtype=F64, **k), True)
    whole.load_state_dict(per_step.state_dict())
    mdn.reset(per_step)
    loop = torch.stack([per_step(x_t)[0] for x_t in x])
    assert calls == []
    out = whole(x)
    assert len(calls) == 3, "every neuron layer runs the fused time loop"
    assert out[0].shape == (6, 4, 10) and torch.equal(out[0], loop)
    # and it trains: the loss reaches the first conv layer through the fused op
    loss = SF.mse_count_loss()(out[0], torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert whole[0][0].weight.grad.abs().sum() > 0


def test_multi_mode_state_carries_over_until_reset():
    net = nn.Sequential(mdn.TimeDistributed(nn.Linear(3, 4)), mdn.MDN("2-FS", step_mode="multi", init_hidden=True))
    x = torch.randn(5, 2, 3)
    first = net(x)
    mdn.reset(net)
    second = net(x)
    assert torch.equal(second, first)
    second.sum().backward()
    with pytest.raises(mdn.StaleStateError, match=r"mdn\.reset\(net\)"):
        net(x).sum().backward()  # the state of the first sequence's graph, freed by its backward


def test_time_distributed_folds_time_into_the_batch():
    torch.manual_seed(0)
    layers = [nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)]
    td = mdn.TimeDistributed(*layers).eval()
    x = torch.randn(4, 2, 2, 6, 6)
    y = td(x)
    assert y.shape == (4, 2, 5)
    ref = torch.stack([nn.Sequential(*layers).eval()(x_t) for x_t in x])
    torch.testing.assert_close(y, ref)
    assert isinstance(td, nn.Sequential) and len(td) == 5
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        td(torch.randn(5))


def test_time_distributed_refuses_neurons():
    with pytest.raises(TypeError, match="step_mode='multi'"):
        mdn.TimeDistributed(nn.Linear(2, 2), mdn.MDN())
    with pytest.raises(TypeError, match="keeps a state"):
        mdn.TimeDistributed(snn.Leaky(beta=0.9))


class Contiguous(nn.Module):
    """A custom layer that needs the default layout (like a hand-written ``x.view(len(x), -1)``)."""

    def forward(self, x):
        assert x.is_contiguous()
        return x.view(len(x), -1)


def test_time_distributed_chunks_and_layouts_give_the_same_values():
    torch.manual_seed(0)
    layers = [nn.Conv2d(2, 4, 3).double(), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5).double()]
    x = torch.randn(7, 3, 2, 8, 8, dtype=F64)
    whole = mdn.TimeDistributed(*layers, max_chunk_bytes=None, channels_last=False)(x)
    chunked = mdn.TimeDistributed(*layers, max_chunk_bytes=3 * 2 * 64 * 8 * 2)(x)  # 2 steps per chunk, channels-last
    torch.testing.assert_close(chunked, whole, rtol=1e-14, atol=1e-14)
    conv = mdn.TimeDistributed(*layers[:2])
    out = conv(x)
    assert out.is_contiguous() and conv._use_channels_last(x) and conv._steps_per_chunk(x) == 7
    assert mdn.TimeDistributed(*layers[:2], max_chunk_bytes=2 * 3 * 2 * 64 * 8)._steps_per_chunk(x) == 2


def test_time_distributed_keeps_custom_layers_and_batch_statistics_safe():
    x = torch.randn(6, 2, 3, 4, 4)
    custom = mdn.TimeDistributed(nn.Conv2d(3, 3, 1), Contiguous(), max_chunk_bytes=100)
    assert not custom._use_channels_last(x) and custom(x).shape == (6, 2, 48)
    bn = mdn.TimeDistributed(nn.BatchNorm2d(3), max_chunk_bytes=100)
    assert bn._steps_per_chunk(x) == 6  # training: statistics over all T x B samples
    y = bn(x)
    torch.testing.assert_close(y.transpose(0, 2).reshape(3, -1).mean(1), torch.zeros(3), atol=1e-6, rtol=0)
    assert bn.eval()._steps_per_chunk(x) == 1


def flat_net(multi: bool):
    """A flat per-step conv net, or its whole-sequence form with one TimeDistributed per stateless layer."""
    torch.manual_seed(1 if multi else 0)  # other initial weights: only a state-dict transfer makes them equal
    wrap = mdn.TimeDistributed if multi else (lambda layer: layer)
    kw = dict(step_mode="multi") if multi else {}
    return nn.Sequential(
        wrap(nn.Conv2d(1, 4, 3, dtype=F64)),
        wrap(nn.MaxPool2d(2)),
        mdn.MDN("init", param_shape=(4, 1, 1), learn_theta=True, init_hidden=True, dtype=F64, **kw),
        wrap(nn.Flatten()),
        wrap(nn.Linear(4 * 3 * 3, 5, dtype=F64)),
        mdn.MDN("2-FS", init_hidden=True, output=True, dtype=F64, **kw),
    )


@pytest.mark.parametrize("direction", ["per-step to whole", "whole to per-step"])
def test_trained_weights_move_between_a_per_step_net_and_its_time_distributed_form(direction):
    per_step, whole = flat_net(False), flat_net(True)
    assert list(per_step.state_dict()) == list(whole.state_dict())  # '0.weight', not '0.0.weight'
    source, target = (per_step, whole) if direction == "per-step to whole" else (whole, per_step)
    with torch.no_grad():
        source[2].theta_a.add_(0.01)  # "trained": differs from the initial values
    result = target.load_state_dict(source.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.rand(6, 3, 1, 8, 8, dtype=F64)
    mdn.reset(per_step)
    loop = torch.stack([per_step(x_t)[0] for x_t in x])
    assert torch.equal(whole(x)[0], loop) and loop.sum() > 0


def test_state_dicts_with_the_wrapped_keys_of_earlier_versions_still_load():
    whole = flat_net(True)
    old = {(f"{k[0]}.0{k[1:]}" if k[0] in "04" else k): v.clone() for k, v in flat_net(False).state_dict().items()}
    assert "0.0.weight" in old
    whole.load_state_dict(old)
    assert torch.equal(whole[0][0].weight, old["0.0.weight"])
    assert list(mdn.TimeDistributed(nn.Linear(2, 2), nn.ReLU()).state_dict()) == ["0.weight", "0.bias"]  # several: numbered
