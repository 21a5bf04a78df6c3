"""``collect_theta``: every neuron of every learnable MDN layer of any network is one point, named by its layer."""

import numpy as np
import pytest
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch.discovery import ThetaPoints, collect_theta, theta_layers
from mdn_snntorch.pipeline.model import ThreeLayerSNN


def numbered(layer: mdn.MDN, start: float) -> mdn.MDN:
    """Set theta_a to start, start + 1, ... over the layer's flattened theta; b, c, d stay at the initial values."""
    with torch.no_grad():
        layer.theta_a.copy_(start + torch.arange(layer.theta_a.numel(), dtype=torch.float32).reshape(layer.theta_a.shape))
    return layer


def conv_net() -> nn.Sequential:
    """Conv2d-MaxPool-MDN x 2, Linear-MDN, per-channel learnable theta; the output layer learnable per neuron."""
    return nn.Sequential(
        mdn.TimeDistributed(nn.Conv2d(1, 3, 3, padding=1), nn.MaxPool2d(2)),
        numbered(mdn.MDN("init", param_shape=(3, 1, 1), learn_theta=True, step_mode="multi", init_hidden=True), 0),
        mdn.TimeDistributed(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2)),
        numbered(mdn.MDN("init", param_shape=(4, 1, 1), learn_theta=True, step_mode="multi", init_hidden=True), 10),
        mdn.TimeDistributed(nn.Flatten(), nn.Linear(4 * 2 * 2, 5)),
        numbered(mdn.MDN("init", num_neurons=5, learn_theta=True, step_mode="multi", init_hidden=True, output=True), 20),
    )


def test_conv_and_linear_layers_give_one_point_per_channel_and_per_neuron():
    net = conv_net()
    points = collect_theta(net)
    assert isinstance(points, ThetaPoints) and points.theta.dtype == np.float64 and points.theta.shape == (3 + 4 + 5, 4)
    assert points.layers == {"1": 3, "3": 4, "5": 5}  # the names of nn.Sequential's children, in order
    assert points.layer.tolist() == ["1"] * 3 + ["3"] * 4 + ["5"] * 5
    assert points.index.tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert points.theta[:, 0].tolist() == [0, 1, 2, 10, 11, 12, 13, 20, 21, 22, 23, 24]
    assert np.allclose(points.theta[:, 1:], [0.2, 0.0, 0.08])
    # the net runs on [T, B, 1, 8, 8] as it is: the per-channel theta broadcast as in training
    assert net(torch.rand(4, 2, 1, 8, 8))[0].shape == (4, 2, 5)
    assert collect_theta(net, layers=["3"]).layers == {"3": 4}
    assert points.of("5").theta[:, 0].tolist() == [20, 21, 22, 23, 24]


def test_theta_per_batch_row_gives_rows_times_neurons_points():
    rows = 4
    net = ThreeLayerSNN(6, 5, 3, neuron="learnable", theta_rows=rows)
    numbered(net.hidden, 0)
    numbered(net.output, 100)
    points = collect_theta(net)
    assert points.theta.shape == (rows * (5 + 3), 4) and points.layers == {"hidden": rows * 5, "output": rows * 3}
    assert points.theta[:, 0].tolist() == list(range(20)) + list(range(100, 112))  # hidden then output, row by row
    assert np.allclose(points.theta[:, 1:], [0.2, 0.0, 0.08])  # the initial values of the untouched b, c, d
    assert len(collect_theta(ThreeLayerSNN(6, 5, 3, neuron="learnable"))) == 5 + 3


class Custom(nn.Module):
    """A hand-written module: a recurrent MDN inside a block, and a frozen output layer that is not collected."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.block = nn.ModuleDict({"rec": mdn.RMDN("init", linear_features=6, num_neurons=6, learn_theta=True)})
        self.out = nn.Linear(6, 2)
        self.readout = mdn.MDN("2-FS")  # frozen: no point

    def forward(self, x):
        spk, _, _ = self.block["rec"](self.inp(x))
        return self.readout(self.out(spk))


def test_recurrent_layers_in_custom_modules_by_their_dotted_names():
    net = Custom()
    numbered(net.block["rec"], 5)
    points = collect_theta(net)
    assert points.layers == {"block.rec": 6} and points.theta[:, 0].tolist() == [5, 6, 7, 8, 9, 10]
    assert list(theta_layers(net, learnable=False)) == ["block.rec", "readout"]
    with pytest.raises(ValueError, match=r"layer\(s\) 'readout' of Custom are not a learnable MDN layer.*'block.rec'"):
        collect_theta(net, layers=["readout"])


def test_a_data_parallel_wrapper_is_looked_through(tmp_path):
    """DistributedDataParallel on the CPU (gloo, one process): the points and names are those of the wrapped net."""
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        net = conv_net()
        wrapped = nn.parallel.DistributedDataParallel(net)
        plain, through = collect_theta(net), collect_theta(wrapped)
        assert through.layers == plain.layers == {"1": 3, "3": 4, "5": 5}
        assert np.array_equal(through.theta, plain.theta)
        assert collect_theta(nn.DataParallel(net), layers=["5"]).layers == {"5": 5}
    finally:
        dist.destroy_process_group()


def test_a_model_that_is_itself_a_layer():
    layer = mdn.MDN("init", num_neurons=3, learn_theta=True)
    assert collect_theta(layer).layers == {"": 3}


@pytest.mark.parametrize(
    "model",
    [nn.Sequential(nn.Linear(4, 4), mdn.MDN("2-FS")), nn.Sequential(nn.Linear(4, 4), nn.ReLU()), mdn.FirstOrder()],
    ids=["frozen-mdn", "no-neuron", "first-order"],
)
def test_a_model_without_a_learnable_layer_is_one_clear_error(model):
    with pytest.raises(ValueError, match=r"has no learnable MDN layer \(MDN or RMDN with learn_theta=True\)$"):
        collect_theta(model)


def test_bad_layer_names_and_points():
    net = conv_net()
    with pytest.raises(ValueError, match=r"layer\(s\) '7' of Sequential are not a learnable MDN layer .*: '1', '3', '5'"):
        collect_theta(net, layers=["7"])
    with pytest.raises(TypeError, match="not the string '1'"):
        collect_theta(net, layers="1")
    with pytest.raises(ValueError, match="no points of layer"):
        collect_theta(net).of("hidden")
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        ThetaPoints(np.zeros((3, 2)), ["x"] * 3, range(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        ThetaPoints(np.full((1, 4), np.nan), ["x"], [0])


def test_points_of_several_networks_are_pooled_in_order():
    a, b = collect_theta(conv_net()), collect_theta(ThreeLayerSNN(6, 5, 3, neuron="learnable"))
    pooled = ThetaPoints.concatenate([a, b])
    assert len(pooled) == len(a) + len(b) and pooled.layers == {"1": 3, "3": 4, "5": 5, "hidden": 5, "output": 3}
    assert np.array_equal(pooled.theta[: len(a)], a.theta)
