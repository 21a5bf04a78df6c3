"""The small traps of docs/snntorch.md: exact preset values across dtype changes, firing on zero input,
FirstOrder as snn.Leaky, and the 2-SDS stability-horizon warning."""

from __future__ import annotations

import warnings

import pytest
import snntorch as snn
import torch

import mdn_snntorch as mdn
from mdn_snntorch import meta_neurons

F64 = torch.float64


CONVERSIONS = [lambda m: m.double(), lambda m: m.to(F64), lambda m: m.to(dtype=F64)]


@pytest.mark.parametrize("convert", CONVERSIONS, ids=["double", "to", "to-dtype"])
def test_dtype_conversion_keeps_the_presets_exact(convert):
    for name in ("2-FS", "2-RS", "2-SDS", "2-WDS", "init"):
        neuron = convert(mdn.MDN(name))
        assert tuple(t.item() for t in neuron.theta) == meta_neurons.get(name).theta
        assert all(t.dtype == F64 for t in neuron.theta) and neuron.threshold.dtype == F64
    first = convert(mdn.FirstOrder(threshold=0.3, reset=0.1))
    assert (first.decay.item(), first.threshold.item(), first.reset_value.item()) == (0.8, 0.3, 0.1)
    back = mdn.MDN("2-FS", dtype=F64).float()
    assert back.theta_a.dtype == torch.float32 and back.theta_a.item() == torch.tensor(0.06).item()


def test_converted_module_equals_one_built_in_float64():
    x = torch.randn(40, 3, 4, dtype=F64)
    for name in ("2-SDS", "1st-order"):
        a = mdn.make_neuron(name).double().multi_step(x, return_traces=True)
        b = mdn.make_neuron(name, dtype=F64).multi_step(x, return_traces=True)
        assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_float64_input_to_a_float32_module_uses_the_exact_values():
    x = torch.randn(30, 2, 3, dtype=F64)
    mixed = mdn.MDN("2-RS").multi_step(x)
    assert torch.equal(mixed, mdn.MDN("2-RS", dtype=F64).multi_step(x))
    step = mdn.FirstOrder()
    assert torch.equal(torch.stack([step(x_t)[0] for x_t in x]), mdn.FirstOrder(dtype=F64).multi_step(x))


def test_learnable_and_tensor_theta_convert_their_values():
    learn = mdn.MDN("2-FS", learn_theta=True).double()
    assert learn.theta_a.item() == torch.tensor(0.06).item()  # the trained float32 value, widened
    given = mdn.MDN(tuple(torch.tensor(v) for v in (0.06, 0.219, -0.065, 0.003))).double()
    assert given.theta_a.item() == torch.tensor(0.06).item()


ZERO_INPUT_RATE = {"2-FS": 0.5, "2-RS": 0.2, "2-SDS": 0.03, "2-WDS": 0.05, "init": 0.07, "1st-order": 0.5}


@pytest.mark.parametrize("name", list(ZERO_INPUT_RATE))
def test_zero_input_fires_through_the_sigmoid_and_is_silent_without_it(name):
    """sigmoid(0) = 0.5: with the paper's input sigmoid a silent input is a current of 0.5 (rates over 100 steps,
    as docs/snntorch.md states); input_sigmoid=False takes the current as given and stays silent, like every LIF."""
    x = torch.zeros(100, 1, 1, dtype=F64)
    assert mdn.make_neuron(name, dtype=F64).multi_step(x).mean().item() == pytest.approx(ZERO_INPUT_RATE[name])
    assert mdn.make_neuron(name, dtype=F64, input_sigmoid=False).multi_step(x).sum() == 0
    assert snn.Leaky(beta=0.8)(x[0])[0].sum() == 0


@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_first_order_without_sigmoid_fires_exactly_like_snn_leaky_with_zero_reset(dtype, reset_delay):
    """FirstOrder(input_sigmoid=False) and snn.Leaky(beta=0.8, threshold=0.5, reset_mechanism="zero") give the same
    spikes from the zero state (Leaky's beta in the input's dtype: a float beta is stored as float32). The states
    differ by convention: FirstOrder's mem is post-reset, Leaky's (with reset_delay=True) pre-reset."""
    x = (torch.randn(300, 16, 32, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2).to(dtype)
    lif = snn.Leaky(beta=torch.tensor(0.8, dtype=dtype), threshold=0.5, reset_mechanism="zero", reset_delay=reset_delay)
    first = mdn.FirstOrder(input_sigmoid=False, dtype=dtype)
    ours, theirs = [], []
    for x_t in x:
        ours.append(first(x_t)[0])
        spk, mem = lif(x_t)
        theirs.append(spk)
        if not reset_delay:
            assert torch.equal(mem, first.mem)
    ours, theirs = torch.stack(ours), torch.stack(theirs)
    assert 0.1 < ours.mean() < 0.5 and torch.equal(ours, theirs)
    assert torch.equal(mdn.FirstOrder(input_sigmoid=False, dtype=dtype).multi_step(x), theirs)


def test_2sds_warns_once_past_its_horizon():
    x = torch.zeros(100, 2, 3)
    sds = mdn.MDN("2-SDS")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sds.multi_step(x)  # 100 steps: fine
    with pytest.warns(RuntimeWarning, match=r"theta_a < 0.*horizon of about 120 steps"):
        sds.multi_step(x)  # 200 steps since the reset
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sds.multi_step(x)  # once per neuron
        for neuron in (mdn.MDN("2-FS"), mdn.MDN("2-SDS", substeps=4), mdn.FirstOrder()):
            neuron.multi_step(torch.zeros(300, 1, 1))
        step = mdn.MDN("2-SDS")  # per-step use resets the count with mdn.reset
        for _ in range(3):
            mdn.reset(step)
            for x_t in x:
                step(x_t)
    with pytest.warns(RuntimeWarning, match="horizon"):
        for x_t in torch.zeros(121, 1):
            step(x_t)
    with pytest.warns(RuntimeWarning, match="horizon"):  # per-neuron theta: any theta_a < 0 counts
        mdn.MDN((torch.tensor([0.06, -0.009]), 0.2, -0.06, 0.06)).multi_step(torch.zeros(130, 1, 2))
