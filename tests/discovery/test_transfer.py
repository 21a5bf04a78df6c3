"""``freeze``: a copy of a network whose MDN layers run one meta neuron, theta frozen, everything else kept."""

import pytest
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch.discovery import collect_theta, freeze
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.surrogate import Window

T, B = 6, 3


def conv_net(theta="init", learn=True, shared=False) -> nn.Sequential:
    """Conv2d-MaxPool-MDN x 2, Linear-MDN; per-channel theta (``shared``: one theta per layer)."""

    def neuron(shape, **kwargs):
        shape = {} if shared else {"param_shape": shape}
        return mdn.MDN(theta, learn_theta=learn, step_mode="multi", init_hidden=True, **shape, **kwargs)

    return nn.Sequential(
        mdn.TimeDistributed(nn.Conv2d(1, 3, 3, padding=1), nn.MaxPool2d(2)),
        neuron((3, 1, 1), input_sigmoid=False),
        mdn.TimeDistributed(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2)),
        neuron((4, 1, 1), input_sigmoid=False, spike_grad=mdn.window(0.3), threshold=0.4),
        mdn.TimeDistributed(nn.Flatten(), nn.Linear(4 * 2 * 2, 5)),
        neuron((5,), output=True, substeps=2),
    )


def trained(net: nn.Module, steps: int = 3, seed: int = 0) -> nn.Module:
    """A few Adam steps on random data: weights and theta away from their initial values, state left with a graph."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        mdn.reset(net)
        spk = net(torch.rand(T, B, 1, 8, 8))[0]
        loss = (spk.mean(0) - 0.3).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    mdn.reset(net)
    net(torch.rand(T, B, 1, 8, 8))  # the neuron states now hang on an autograd graph
    return net


def weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in net.state_dict().items() if not k.split(".")[-1].startswith("theta_")}


def spikes(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    mdn.reset(net)
    with torch.no_grad():
        return net(x)[0]


def test_no_trainable_theta_is_left_and_the_model_is_untouched():
    net = trained(conv_net())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    frozen = freeze(net, "2-FS")
    assert [n for n, _ in frozen.named_parameters() if "theta" in n] == []
    with pytest.raises(ValueError, match="no learnable MDN layer"):
        collect_theta(frozen)
    for layer in (frozen[1], frozen[3], frozen[5]):
        assert not layer.learn_theta and layer.name == "2-FS"
        assert [float(t.flatten()[0]) for t in layer.theta] == pytest.approx([0.060, 0.219, -0.065, 0.003])
        assert all(not t.requires_grad for t in layer.theta)
    assert [tuple(frozen[i].theta_a.shape) for i in (1, 3, 5)] == [(3, 1, 1), (4, 1, 1), (5,)]  # the layers' shapes
    # the original still learns its own theta
    assert len(collect_theta(net)) == 3 + 4 + 5 and all(isinstance(t, nn.Parameter) for t in net[1].theta)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("shared", [False, True], ids=["per-channel", "shared"])
def test_frozen_net_matches_a_hand_built_net_of_that_preset_spike_for_spike(shared):
    net = trained(conv_net())
    frozen = freeze(net, "2-WDS")
    hand = conv_net("2-WDS", learn=False, shared=shared)
    missing, unexpected = hand.load_state_dict(weights(net), strict=False)
    assert all(k.split(".")[-1].startswith("theta_") for k in missing) and not unexpected
    assert {k: v for k, v in weights(frozen).items()}.keys() == weights(net).keys()
    assert all(torch.equal(v, weights(net)[k]) for k, v in weights(frozen).items())  # the other weights are kept
    x = (torch.rand(40, B, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    out = spikes(frozen, x)
    assert out.sum() > 0 and torch.equal(out, spikes(hand, x))


def test_snntorch_options_step_mode_and_state_handling_are_kept():
    net = trained(conv_net())
    frozen = freeze(net, MetaNeuron("mine", 2, (0.05, 0.2, -0.05, 0.01)))
    for i in (1, 3, 5):
        a, b = net[i], frozen[i]
        for attr in ("init_hidden", "output", "step_mode", "input_sigmoid", "dt", "substeps", "detach_reset", "param_shape"):
            assert getattr(b, attr) == getattr(a, attr), attr
        assert type(b.spike_grad) is Window and b.spike_grad.width == a.spike_grad.width
        assert torch.equal(b.threshold, a.threshold) and torch.equal(b.graded_spikes_factor, a.graded_spikes_factor)
        assert b.mem.grad_fn is None and not b.mem.any() and a.mem.grad_fn is not None  # the copy starts from V = 0
    assert frozen[3].spike_grad.width == 0.3 and frozen[5].substeps == 2 and frozen[3].threshold.item() == pytest.approx(0.4)
    assert frozen[1].name == "mine" and frozen[1].theta_c.flatten().tolist() == pytest.approx([-0.05] * 3)
    # it trains like any network: gradients reach the weights, nothing reaches theta
    spk = frozen(torch.rand(T, B, 1, 8, 8))[0]
    spk.sum().backward()
    assert frozen[0][0].weight.grad is not None


def test_float64_gives_the_presets_exact_values():
    frozen = freeze(conv_net(), "2-FS").double()
    assert frozen[5].theta_a.dtype == torch.float64 and frozen[5].theta_a[0].item() == 0.060
    assert frozen[1].theta_d.flatten()[0].item() == 0.003


def test_only_the_named_layers_and_the_recurrent_connections_kept():
    """An RMDN layer: frozen by name, its recurrent weights kept; it then fires like a hand-built RMDN('2-FS')."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(4, 6),
        mdn.RMDN("init", linear_features=6, num_neurons=6, learn_theta=True, init_hidden=True),
        nn.Linear(6, 2),
        mdn.MDN("init", num_neurons=2, learn_theta=True, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[1].recurrent.weight.mul_(3.0)
    frozen = freeze(net, "2-FS", layers=["1"])
    assert collect_theta(frozen).layers == {"3": 2}  # the output layer still learns
    assert torch.equal(frozen[1].recurrent.weight, net[1].recurrent.weight) and frozen[1].recurrent.weight.requires_grad
    hand = nn.Sequential(
        nn.Linear(4, 6), mdn.RMDN("2-FS", linear_features=6, num_neurons=6, init_hidden=True), nn.Linear(6, 2),
        mdn.MDN("init", num_neurons=2, learn_theta=True, init_hidden=True, output=True),
    )  # fmt: skip
    hand.load_state_dict(frozen.state_dict())
    x = torch.randn(20, B, 4, generator=torch.Generator().manual_seed(2))

    def run(n):
        mdn.reset(n)
        with torch.no_grad():
            return torch.stack([n(x_t)[0] for x_t in x])

    assert torch.equal(run(frozen), run(hand))


def test_theta_per_row_keeps_its_shape():
    layer = mdn.MDN("init", param_shape=(4, 3), learn_theta=True)
    frozen = freeze(layer, "2-RS")
    assert frozen.theta_a.shape == (4, 3) and frozen.name == "2-RS"


def test_a_data_parallel_wrapper_comes_back_unwrapped():
    net = conv_net()
    frozen = freeze(nn.DataParallel(net), "2-FS")
    assert isinstance(frozen, nn.Sequential) and not frozen[1].learn_theta


@pytest.mark.parametrize(
    "neuron, match",
    [("1st-order", "'1st-order' is order 1"), ("learnable", "not 'learnable'"), ("2-XX", "unknown meta-neuron preset '2-XX'")],
)
def test_bad_neurons_and_models(neuron, match):
    with pytest.raises(ValueError, match=match):
        freeze(conv_net(), neuron)
    with pytest.raises(ValueError, match=r"Sequential has no MDN layer \(MDN or RMDN\)"):
        freeze(nn.Sequential(nn.Linear(2, 2), mdn.FirstOrder()), "2-FS")
    with pytest.raises(ValueError, match=r"layer\(s\) '0' of Sequential are not a MDN layer"):
        freeze(conv_net(), "2-FS", layers=["0"])
