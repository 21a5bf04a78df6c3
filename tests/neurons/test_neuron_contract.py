"""The snnTorch neuron contract. Every test runs on our neurons AND on snnTorch's own
(``snn.Synaptic`` for MDN, ``snn.Leaky`` for FirstOrder): the same assertions must pass for both."""

import pytest
import snntorch as snn
import snntorch.functional as SF
import torch
from torch import nn

import mdn_snntorch as mdn

# name -> (factory(**kwargs), number of states returned, learnable-parameter flags)
NEURONS = {
    "MDN": (
        lambda **kw: mdn.MDN("2-FS", **kw),
        2,
        {"learn_theta": ("theta_a", "theta_b", "theta_c", "theta_d"), "learn_threshold": ("threshold",)},
    ),
    "snn.Synaptic": (
        lambda **kw: snn.Synaptic(alpha=0.9, beta=0.8, **kw),
        2,
        {"learn_alpha": ("alpha",), "learn_threshold": ("threshold",)},
    ),
    "FirstOrder": (lambda **kw: mdn.FirstOrder(**kw), 1, {"learn_decay": ("decay",), "learn_threshold": ("threshold",)}),
    "snn.Leaky": (lambda **kw: snn.Leaky(beta=0.8, **kw), 1, {"learn_beta": ("beta",), "learn_threshold": ("threshold",)}),
}
NAMES = list(NEURONS)
STATE_ARGS = {2: ("syn_or_u", "mem"), 1: ("mem",)}


def drive(steps=12, batch=3, n=5, seed=0):
    return torch.randn(steps, batch, n, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


@pytest.mark.parametrize("name", NAMES)
def test_forward_returns_spikes_then_states_with_membrane_last(name):
    factory, n_states, _ = NEURONS[name]
    neuron = factory()
    out = neuron(drive()[0])
    assert isinstance(out, tuple) and len(out) == 1 + n_states
    assert out[-1] is neuron.mem
    assert all(o.shape == (3, 5) for o in out)


@pytest.mark.parametrize("name", NAMES)
def test_init_hidden_returns_spikes_only_and_output_returns_all(name):
    factory, n_states, _ = NEURONS[name]
    spk = factory(init_hidden=True)(drive()[0])
    assert torch.is_tensor(spk) and spk.shape == (3, 5)
    out = factory(init_hidden=True, output=True)(drive()[0])
    assert isinstance(out, tuple) and len(out) == 1 + n_states


@pytest.mark.parametrize("name", NAMES)
def test_passing_states_with_init_hidden_raises_type_error(name):
    factory, n_states, _ = NEURONS[name]
    neuron = factory(init_hidden=True)
    x = drive()[0]
    with pytest.raises(TypeError):
        neuron(x, *([torch.zeros_like(x)] * n_states))


@pytest.mark.parametrize("name", NAMES)
def test_explicit_states_are_used_and_carried(name):
    factory, n_states, _ = NEURONS[name]
    x = drive()
    carried = factory()
    for xt in x:
        carried(xt)
    explicit = factory()
    states = None
    for xt in x:
        out = explicit(xt) if states is None else explicit(xt, *states)
        states = out[1:]
    torch.testing.assert_close(carried.mem, states[-1])


@pytest.mark.parametrize("name", NAMES)
def test_sequential_with_init_hidden(name):
    factory, n_states, _ = NEURONS[name]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), factory(init_hidden=True), nn.Linear(7, 4), factory(init_hidden=True, output=True))
    outs = [net(xt) for xt in drive()]
    assert all(len(o) == 1 + n_states and o[0].shape == (3, 4) for o in outs)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_persists_parameters_not_state(name):
    factory, _, learn_flags = NEURONS[name]
    flag, params = next(iter(learn_flags.items()))
    source = factory(**{flag: True})
    with torch.no_grad():
        for p in params:
            getattr(source, p).add_(0.0123)
    source(drive()[0])
    sd = source.state_dict()
    assert "mem" not in sd, "the membrane state must not be persisted"
    assert all(p in sd for p in params)
    target = factory(**{flag: True})
    target.load_state_dict(sd)
    for p in params:
        torch.testing.assert_close(getattr(target, p), getattr(source, p))


@pytest.mark.parametrize("name", NAMES)
def test_learn_flags_make_parameters(name):
    factory, _, learn_flags = NEURONS[name]
    for flag, params in learn_flags.items():
        neuron = factory(**{flag: True})
        named = dict(neuron.named_parameters())
        for p in params:
            assert p in named and named[p].requires_grad
        frozen = dict(factory().named_parameters())
        assert not any(p in frozen for p in params)


@pytest.mark.parametrize(
    "loss", [SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2), SF.ce_rate_loss()], ids=["mse_count", "ce_rate"]
)
@pytest.mark.parametrize("name", NAMES)
def test_snntorch_losses_accept_the_stacked_output(name, loss):
    factory, _, _ = NEURONS[name]
    torch.manual_seed(0)
    fc = nn.Linear(5, 4)
    neuron = factory()
    spikes = torch.stack([neuron(fc(xt))[0] for xt in drive()])
    value = loss(spikes, torch.tensor([0, 1, 3]))
    assert value.numel() == 1 and torch.isfinite(value).all()
    value.backward()
    assert fc.weight.grad is not None


class TwoLayer(nn.Module):
    def __init__(self, factory):
        super().__init__()
        self.fc = nn.Linear(5, 5)
        self.block = nn.Sequential(factory(init_hidden=True), nn.Linear(5, 5), factory(init_hidden=True))

    def forward(self, x):
        return self.block(self.fc(x))


@pytest.mark.parametrize("name", NAMES)
def test_reset_resets_nested_neurons_of_one_net_only(name):
    factory, _, _ = NEURONS[name]
    torch.manual_seed(0)
    net_a, net_b = TwoLayer(factory), TwoLayer(factory)
    x = drive()
    fresh = [net_a(xt) for xt in x]
    for xt in x:
        net_b(xt)
    b_states = [m.mem.clone() for m in net_b.modules() if isinstance(m, snn.SpikingNeuron)]

    mdn.reset(net_a)
    again = [net_a(xt) for xt in x]
    for f, a in zip(fresh, again):
        torch.testing.assert_close(f, a)
    after = [m.mem for m in net_b.modules() if isinstance(m, snn.SpikingNeuron)]
    for before, now in zip(b_states, after):
        torch.testing.assert_close(before, now)


@pytest.mark.parametrize("name", NAMES)
def test_zero_graph_breaks(name):
    factory, _, _ = NEURONS[name]
    torch._dynamo.reset()
    net = nn.Sequential(nn.Linear(5, 6), factory(init_hidden=True))
    explanation = torch._dynamo.explain(net)(drive()[0])
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_reset_hidden_and_detach_hidden_reach_every_mdn_instance():
    a, b = mdn.MDN("2-RS"), mdn.MDN("2-WDS")
    w = torch.ones(3, 5, requires_grad=True)
    for xt in drive():
        a(xt * w)
        b(xt * w)
    mdn.MDN.detach_hidden()
    assert not a.mem.requires_grad and not b.u.requires_grad
    mdn.MDN.reset_hidden()
    for n in (a, b):
        assert torch.all(n.mem == 0) and torch.all(n.u == 0.08)


def test_state_follows_input_dtype_and_is_lazily_shaped():
    neuron = mdn.MDN("2-FS", dtype=torch.float64)
    assert neuron.mem.numel() == 0
    spk, u, mem = neuron(torch.zeros(2, 3, dtype=torch.float64))
    assert mem.shape == (2, 3) and mem.dtype == u.dtype == spk.dtype == torch.float64
    spk, u, mem = neuron(torch.zeros(4, 3, dtype=torch.float64))
    assert mem.shape == (4, 3), "a new input shape re-initialises the state"


def test_multi_step_continues_from_the_single_step_state():
    x = drive()
    neuron = mdn.MDN("2-RS")
    stepwise = torch.stack([neuron(xt)[0] for xt in x])
    neuron.reset_mem()
    first = neuron.multi_step(x[:5])
    rest = neuron.multi_step(x[5:])
    torch.testing.assert_close(torch.cat([first, rest]), stepwise)


def test_graded_spikes_scale_the_output_but_not_the_dynamics():
    x = drive()
    plain, graded = mdn.MDN("2-FS"), mdn.MDN("2-FS", graded_spikes_factor=2.5)
    s1, s2 = plain.multi_step(x), graded.multi_step(x)
    torch.testing.assert_close(s2, 2.5 * s1)
    torch.testing.assert_close(graded.mem, plain.mem)


def test_inhibition_lets_only_the_strongest_neuron_fire():
    with pytest.warns(UserWarning):
        neuron = mdn.MDN("2-FS", inhibition=True)
    spikes = neuron.multi_step(drive() + 3.0)
    assert spikes.sum() > 0
    assert spikes.sum(dim=-1).max() <= 1


def test_surrogate_disable_keeps_the_dtype():
    neuron = mdn.MDN("2-FS", surrogate_disable=True, dtype=torch.float64)
    spk, _, _ = neuron(torch.ones(2, 2, dtype=torch.float64) * 5)
    assert spk.dtype == torch.float64
