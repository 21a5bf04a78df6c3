"""ThreeLayerSNN: parameter groups, spec round trip (also for library neurons), bf16 autocast."""

import torch

from mdn_snntorch import MDN, FirstOrder
from mdn_snntorch.meta_neurons import MetaNeuron
from mdn_snntorch.pipeline.model import ThreeLayerSNN


def test_theta_and_weight_parameters_partition_the_parameters():
    net = ThreeLayerSNN(6, 5, 3, neuron="learnable")
    theta, weights = net.theta_parameters(), net.weight_parameters()
    assert len(theta) == 8 and len(weights) == 4
    assert {id(p) for p in theta} | {id(p) for p in weights} == {id(p) for p in net.parameters()}
    assert ThreeLayerSNN(6, 5, 3, neuron="2-FS").theta_parameters() == []


def test_spec_round_trip_rebuilds_the_same_network():
    custom = MetaNeuron("lib-1", 2, (0.05, 0.2, -0.02, 0.01))
    net = ThreeLayerSNN(6, 5, 3, neuron=custom, output_neuron="1st-order", substeps=2)
    twin = ThreeLayerSNN.from_spec(net.spec())
    twin.load_state_dict(net.state_dict())
    assert isinstance(twin.hidden, MDN) and twin.hidden.substeps == 2 and isinstance(twin.output, FirstOrder)
    assert float(twin.hidden.theta_c) == torch.tensor(-0.02).item() and twin.neuron_spec == "lib-1"
    x = (torch.rand(7, 4, 6) < 0.5).float()
    assert torch.equal(net(x), twin(x))


def test_bf16_autocast_keeps_the_dynamics_in_float32():
    torch.manual_seed(0)
    net = ThreeLayerSNN(6, 5, 3)
    x = (torch.rand(7, 4, 6) < 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, hidden = net(x, return_hidden=True)
    assert out.dtype == hidden.dtype == torch.float32
    assert net.hidden.mem.dtype == torch.float32
