"""Bad input gets clear errors; presets and meta-neuron libraries."""

import json
import math

import pytest
import torch

import mdn_snntorch as mdn
from mdn_snntorch import meta_neurons


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(theta=(0.1, torch.zeros(3), 0.0, 0.0), num_neurons=5), ValueError, r"theta_b has shape \(3,\)"),
        (
            dict(theta=(torch.zeros(4), torch.zeros(3), 0.0, 0.0)),
            ValueError,
            r"disagree on the number of neurons: theta_a \(4,\), theta_b \(3,\)",
        ),
        (dict(theta=(0.1, 0.2, 0.3)), TypeError, "theta must be"),
        (dict(theta=(0.1, math.nan, 0.0, 0.0)), ValueError, "theta_b is not finite"),
        (dict(theta="2-XX"), KeyError, "valid names: 2-FS, 2-RS, 2-SDS, 2-WDS, init, 1st-order"),
        (dict(theta="1st-order"), ValueError, "use mdn_snntorch.FirstOrder"),
        (dict(dt=-1.0), ValueError, "dt must be"),
        (dict(dt=math.inf), ValueError, "dt must be"),
        (dict(substeps=0), ValueError, "substeps"),
        (dict(num_neurons=0), ValueError, "num_neurons"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        mdn.MDN(**kwargs)


def test_first_order_decay_shape_errors():
    with pytest.raises(ValueError, match=r"decay has shape \(2, 2\); expected \(\) or \(num_neurons,\) = \(3,\)"):
        mdn.FirstOrder(decay=torch.ones(2, 2), num_neurons=3)
    neuron = mdn.FirstOrder(decay=torch.full((2, 2), 0.8))  # any shape is accepted, like snnTorch's beta ...
    neuron(torch.zeros(5, 2, 2))
    with pytest.raises(ValueError, match=r"FirstOrder.decay has shape \(2, 2\), which does not broadcast"):
        neuron(torch.zeros(5, 3, 2))  # ... but it must broadcast against the input without changing it


@pytest.mark.parametrize("neuron", [mdn.MDN("2-FS"), mdn.FirstOrder()], ids=["MDN", "FirstOrder"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_refused(neuron, bad):
    x = torch.zeros(2, 3)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        neuron(x)
    with pytest.raises(ValueError, match="NaN or inf"):
        neuron.multi_step(x[None])


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="floating-point"):
        mdn.MDN()(torch.ones(2, 3, dtype=torch.long))


def test_per_neuron_theta_checks_the_input_size():
    neuron = mdn.MDN("2-FS", num_neurons=4)
    assert neuron.theta_a.shape == (4,)
    with pytest.raises(ValueError, match=r"num_neurons=4.*shape \(2, 3\)"):
        neuron(torch.zeros(2, 3))


def test_per_neuron_theta_from_tensors_infers_num_neurons_and_acts_per_neuron():
    a = torch.tensor([0.06, -0.009])
    theta = (a, torch.tensor([0.219, 0.246]), torch.tensor([-0.065, -0.058]), torch.tensor([0.003, 0.065]))
    pair = mdn.MDN(theta, dtype=torch.float64)
    assert pair.num_neurons == 2
    x = torch.randn(40, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    both = pair.multi_step(x)
    torch.testing.assert_close(both[..., 0], mdn.MDN("2-FS", dtype=torch.float64).multi_step(x[..., 0]))
    torch.testing.assert_close(both[..., 1], mdn.MDN("2-SDS", dtype=torch.float64).multi_step(x[..., 1]))


def test_float64_construction_keeps_exact_preset_values():
    neuron = mdn.MDN("2-FS", dtype=torch.float64)
    assert neuron.theta_a.item() == 0.060 and neuron.theta_c.item() == -0.065


def test_input_sigmoid_false_takes_the_current_as_given():
    x = torch.rand(10, 2, 3)
    raw = mdn.MDN("2-RS", input_sigmoid=False).multi_step(torch.sigmoid(x))
    torch.testing.assert_close(raw, mdn.MDN("2-RS").multi_step(x))


def test_presets_match_table_2():
    assert meta_neurons.get("2-FS").theta == (0.060, 0.219, -0.065, 0.003)
    assert meta_neurons.get("2-RS").theta == (0.060, 0.219, -0.010, 0.050)
    assert meta_neurons.get("2-SDS").theta == (-0.009, 0.246, -0.058, 0.065)
    assert meta_neurons.get("2-WDS").theta == (0.005, 0.158, -0.058, 0.065)
    assert meta_neurons.get("init").theta == (0.02, 0.2, 0.0, 0.08)
    assert meta_neurons.get("1st-order").order == 1 and meta_neurons.get("1st-order").decay == 0.8


@pytest.mark.parametrize("name", meta_neurons.names())
def test_every_preset_builds_its_module(name):
    module = mdn.make_neuron(name)
    assert isinstance(module, mdn.FirstOrder if meta_neurons.get(name).order == 1 else mdn.MDN)


def test_library_round_trip(tmp_path):
    neurons = [
        meta_neurons.get("2-FS"),
        meta_neurons.MetaNeuron("gen-0", 2, (0.01, 0.2, -0.05, 0.04), provenance={"cluster": [0, 1]}),
        meta_neurons.get("1st-order"),
    ]
    path = mdn.save_library(tmp_path / "lib.json", neurons, provenance={"source": "test"})
    lib = mdn.load_library(path)
    assert lib.neurons == neurons
    assert lib.get("gen-0").provenance == {"cluster": [0, 1]}
    assert lib.provenance == {"source": "test"}
    assert isinstance(mdn.make_neuron(lib.get("gen-0")), mdn.MDN)
    assert not list(tmp_path.glob("*.tmp")), "the temporary file is renamed away"


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"format": "something-else", "version": 1, "neurons": []}, "not a meta-neuron library"),
        ({"format": "mdn-meta-neuron-library", "version": 99, "neurons": []}, "version 99 is not supported"),
        ({"format": "mdn-meta-neuron-library", "version": 1}, "missing field 'neurons'"),
        (
            {"format": "mdn-meta-neuron-library", "version": 1, "neurons": [{"name": "x", "order": 2}]},
            r"neurons\[0\].*missing field 'theta'",
        ),
        (
            {"format": "mdn-meta-neuron-library", "version": 1, "neurons": [{"order": 2, "theta": [0, 0, 0, 0]}]},
            "missing field 'name'",
        ),
    ],
)
def test_library_errors_name_the_file_and_the_problem(tmp_path, doc, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match) as info:
        mdn.load_library(path)
    assert str(path) in str(info.value)


def test_library_not_json_and_missing_file(tmp_path):
    (tmp_path / "x.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        mdn.load_library(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mdn.load_library(tmp_path / "missing.json")
