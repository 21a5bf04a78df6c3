"""The one decision of a call's path (mdn_snntorch.fused.dispatch.route, neuron.explain): every path, every
reason a path is passed over, and that the neurons and the fused op take the path it names."""

from __future__ import annotations

import warnings

import pytest
import snntorch as snn
import torch
from snntorch.functional import quant as snn_quant

import mdn_snntorch as mdn
from mdn_snntorch import functional as F
from mdn_snntorch import fused
from mdn_snntorch.fused import c_kernels, dispatch, ops, selfcheck


def seq(dtype=torch.float32, T=5, B=2, N=3):
    return torch.randn(T, B, N, generator=torch.Generator().manual_seed(0)).to(dtype)


def reasons(route: dispatch.Route) -> dict[str, str]:
    return dict(route.rejected)


# ---------------------------------------------------------------------------------------------------
# the single step
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_the_single_step_is_one_node_with_either_reset(cls, detach_reset):
    """One node in C where the kernels are built, else the PyTorch node; the reference step is passed over."""
    route = cls(detach_reset=detach_reset).explain(torch.randn(2, 3))
    if c_kernels.library() is None:
        assert route.path == "node" and list(reasons(route)) == ["node:c", "step"]
    else:
        assert route.path == "node:c" and list(reasons(route)) == ["node", "step"]
        assert "the C kernels run this step" in reasons(route)["node"]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(spike_grad=snn.surrogate.atan()), "is not the window surrogate"),
        (dict(surrogate_disable=True), "surrogate_disable=True"),
        (dict(inhibition=True), "inhibition=True"),
    ],
    ids=["atan", "surrogate_disable", "inhibition"],
)
@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_each_reason_sends_the_single_step_to_the_reference_step(cls, kwargs, words):
    route = cls(**kwargs).explain(torch.randn(2, 3))
    assert route.path == "step"
    assert words in reasons(route)["node"]
    assert dispatch.step_rejections(cls(**kwargs)) == [reasons(route)["node"]]


def test_the_step_route_is_the_step_the_neuron_runs(monkeypatch):
    """The neuron asks the same function: where the route says node, MDNStep.apply runs, else it does not."""
    calls = []
    real = F.MDNStep.apply
    monkeypatch.setattr(F.MDNStep, "apply", lambda *a: calls.append(1) or real(*a))
    for kwargs in (dict(), dict(detach_reset=False), dict(spike_grad=snn.surrogate.atan()), dict(inhibition=True)):
        neuron, x = mdn.MDN(**kwargs), torch.randn(2, 3)
        before = len(calls)
        neuron(x)
        assert (len(calls) > before) == (neuron.explain(x).path == "node"), kwargs


# ---------------------------------------------------------------------------------------------------
# a sequence
# ---------------------------------------------------------------------------------------------------
def test_a_float32_cpu_sequence_takes_the_c_kernel():
    if c_kernels.library() is None:
        pytest.skip("no C compiler here")
    route = mdn.MDN("2-FS").explain(seq(), sequence=True)
    assert route.path == "fused:c"
    why = reasons(route)
    assert why["fused:triton"] == "not a CUDA tensor"
    assert "the C kernel runs this call" in why["fused:torch"]
    assert "fused op where it applies" in why["reference"]
    assert "whole sequence runs in one call" in why["per-step"]
    text = str(route)
    assert text.splitlines()[0].startswith("MDN(theta=2-FS") and "fused:c (the fused op, C kernel)" in text
    assert "  not fused:triton: not a CUDA tensor" in text.splitlines()


def test_step_mode_multi_explains_the_sequence():
    assert mdn.FirstOrder(step_mode="multi").explain(seq()).path.startswith("fused:")


def test_half_precision_takes_the_pytorch_loop():
    route = mdn.MDN("2-FS", dtype=torch.bfloat16).explain(seq(torch.bfloat16), sequence=True)
    assert route.path == "fused:torch"
    assert reasons(route)["fused:c"] == "torch.bfloat16 (the C kernels take float32 and float64)"


def test_a_forced_kernel_is_named():
    with fused.use_kernel("torch"):
        route = mdn.MDN().explain(seq(), sequence=True)
    assert route.path == "fused:torch" and reasons(route)["fused:c"] == "use_kernel('torch')"


SEQUENCE_REASONS = [
    (dict(spike_grad=snn.surrogate.atan()), "is not the window surrogate"),
    (dict(surrogate_disable=True), "surrogate_disable=True"),
    (dict(inhibition=True), "inhibition=True"),
    (dict(backend="reference"), "backend='reference'"),
]


@pytest.mark.parametrize("kwargs, words", SEQUENCE_REASONS, ids=["atan", "surrogate_disable", "inhibition", "backend"])
@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_each_reason_sends_a_sequence_to_the_reference_loop(cls, kwargs, words):
    route = cls(**kwargs).explain(seq(), sequence=True)
    assert route.path == "reference"
    why = reasons(route)
    assert all(words in why[k] for k in ("fused:c", "fused:triton", "fused:torch")), why


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_the_undetached_reset_takes_the_fused_op(cls):
    """The kernels run both resets: detach_reset=False is no reason to leave the fused op."""
    route = cls(detach_reset=False).explain(seq(), sequence=True)
    assert route.path == "fused:c", route
    assert not any("reset" in why for why in reasons(route).values()), route


def test_use_reference_is_a_reason():
    with mdn.use_reference():
        route = mdn.MDN().explain(seq(), sequence=True)
    assert route.path == "reference" and reasons(route)["fused:c"] == "inside mdn.use_reference()"


def test_a_state_of_another_dtype_is_a_reason():
    neuron = mdn.MDN("2-FS", dtype=torch.float64)
    neuron.multi_step(seq(torch.float64))
    neuron.mem = neuron.mem.float()
    route = neuron.explain(seq(torch.float64), sequence=True)
    assert route.path == "reference" and "differs from the input's steps" in reasons(route)["fused:c"]


def test_a_parameter_that_varies_along_the_batch_is_a_reason():
    neuron = mdn.MDN("init", param_shape=(2, 3), learn_theta=True)  # one theta per row of a batch of 2
    route = neuron.explain(seq(), sequence=True)
    assert route.path == "reference" and "varies along the batch" in reasons(route)["fused:c"]


@pytest.mark.parametrize(
    "neuron, words",
    [
        (mdn.MDN(state_quant=snn_quant.state_quant(num_bits=8, uniform=True)), "state_quant"),
        (mdn.RMDN(linear_features=3), "a recurrent neuron"),
        (mdn.RFirstOrder(all_to_all=False, V=0.5), "a recurrent neuron"),
    ],
    ids=["state_quant", "RMDN", "RFirstOrder"],
)
def test_per_step_sequences(neuron, words):
    route = neuron.explain(seq(), sequence=True)
    assert route.path == ("per-step:node" if c_kernels.library() is None else "per-step:node:c")
    why = reasons(route)
    assert all(words in why[k] for k in ("fused:c", "fused:triton", "fused:torch", "reference"))


def test_backend_fused_refuses_naming_every_reason():
    neuron = mdn.MDN(inhibition=True, spike_grad=snn.surrogate.atan(), backend="fused")
    for call in (lambda: neuron.explain(seq(), sequence=True), lambda: neuron.multi_step(seq())):
        with pytest.raises(ValueError, match="backend='fused'.*not the window surrogate.*inhibition=True"):
            call()


@pytest.fixture
def spy(monkeypatch):
    calls = []
    for name in ("mdn_multistep", "first_order_multistep"):
        real = getattr(fused, name)
        monkeypatch.setattr(
            fused, name, lambda *a, _real=real, **k: calls.append(ops.resolve_kernel("cpu", a[0].dtype)) or _real(*a, **k)
        )
    return calls


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(dtype=torch.float64), dict(detach_reset=False), *(k for k, _ in SEQUENCE_REASONS)],
    ids=["float32", "float64", "undetached", "atan", "surrogate_disable", "inhibition", "backend"],
)
def test_the_neurons_take_the_route_they_explain(spy, cls, kwargs):
    neuron = cls(**kwargs)
    x = seq(kwargs.get("dtype", torch.float32))
    route = neuron.explain(x, sequence=True)
    neuron.multi_step(x)
    assert spy == ([route.path.removeprefix("fused:")] if route.path.startswith("fused:") else [])


# ---------------------------------------------------------------------------------------------------
# the kernels: unavailable ones, the warning, the self-check
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def no_c_library(monkeypatch):
    """A process where the C kernels are looked for anew and the one-time warnings were not shown yet."""
    monkeypatch.setattr(c_kernels, "_state", {})
    monkeypatch.setattr(dispatch, "_warned", set())
    yield monkeypatch


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda m: m.setenv("MDN_SNNTORCH_NO_CEXT", "1"), "MDN_SNNTORCH_NO_CEXT is set"),
        (lambda m: m.setattr(c_kernels, "_compiler", lambda: None), "no C compiler was found"),
    ],
    ids=["NO_CEXT", "no-compiler"],
)
def test_missing_c_kernels_warn_once_naming_the_reason_and_the_cost(no_c_library, setup, words):
    setup(no_c_library)
    x = seq(torch.float64)
    with pytest.warns(RuntimeWarning, match=words) as record:
        out = mdn.MDN("2-FS", dtype=torch.float64).multi_step(x)
    (warning,) = [w for w in record if "mdn_snntorch" in str(w.message)]
    assert "PyTorch-loop kernel instead: the same results, about 2x slower" in str(warning.message)
    assert torch.equal(out, mdn.MDN("2-FS", dtype=torch.float64, backend="reference").multi_step(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        mdn.MDN("2-FS", dtype=torch.float64).multi_step(x)
    route = mdn.MDN("2-FS", dtype=torch.float64).explain(x, sequence=True)
    assert route.path == "fused:torch" and words in reasons(route)["fused:c"]


def test_a_failed_build_is_a_reason(no_c_library, tmp_path):
    no_c_library.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
    no_c_library.setenv("CC", "false")  # exists, always fails
    with pytest.warns(RuntimeWarning, match="building the CPU kernels failed") as record:
        mdn.MDN().multi_step(seq())
    (warning,) = [w for w in record if "mdn_snntorch" in str(w.message)]  # one warning: the reason and the cost
    assert "the same results, about 2x slower" in str(warning.message)
    route = mdn.MDN().explain(seq(), sequence=True)
    assert route.path == "fused:torch" and "building or loading them failed" in reasons(route)["fused:c"]


def test_triton_missing_on_a_gpu_is_a_reason(no_c_library):
    from mdn_snntorch.fused import triton_kernels

    no_c_library.setattr(triton_kernels, "available", lambda: False)
    with pytest.warns(RuntimeWarning, match="triton is not installed"):
        kernel, rejected = dispatch.kernel_route("cuda", torch.float32)
    assert kernel == "torch" and dict(rejected) == {
        "c": "not a CPU tensor",
        "triton": "triton is not installed (pip install triton)",
    }


def test_a_kernel_that_fails_its_self_check_is_a_reason(monkeypatch):
    if c_kernels.library() is None:
        pytest.skip("no C compiler here")
    monkeypatch.setattr(selfcheck, "passed", lambda kernel, *a: kernel != "c")
    kernel, rejected = dispatch.kernel_route("cpu", torch.float32)
    assert kernel == "torch" and "self-check" in dict(rejected)["c"]


def test_an_impossible_forced_kernel_raises():
    with fused.use_kernel("triton"), pytest.raises(RuntimeError, match="use_kernel\\('triton'\\).*not a CUDA tensor"):
        dispatch.kernel_route("cpu", torch.float32)
