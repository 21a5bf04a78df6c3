"""The first-use self-check of the fused ops' kernels (mdn_snntorch.fused.selfcheck).

Its mechanism is tested on the CPU by injecting kernel modules: a correct one (a proxy of the PyTorch loop
or the C kernels, counting its calls), wrong ones (a flipped spike, a perturbed V, a wrong parameter
gradient) and one that raises. Through ``ops.resolve_kernel`` the C kernel slot is made a checked one
(``selfcheck.CHECKED``) and pointed at the injected module, so the whole path runs here as it would for
Triton on a GPU: warning text, fallback to the exact loop (results equal to ``use_kernel("torch")``),
one check per process, the environment switch, and ``torch.compile``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
import warnings

import pytest
import torch

from mdn_snntorch import functional as F
from mdn_snntorch import fused
from mdn_snntorch.fused import c_kernels, ops, selfcheck, torch_loop
from mdn_snntorch.pipeline.model import ThreeLayerSNN

FAKE = "mdn_snntorch_test_fake_kernels"
FUNCTIONS = ("mdn_forward", "mdn_backward", "first_order_forward", "first_order_backward")


def make_kernel(base=torch_loop, forward=None, backward=None, fail: Exception | None = None) -> types.ModuleType:
    """A kernel module delegating to ``base``, with its forward / backward results passed through
    ``forward(results)`` / ``backward(results)``; ``fail`` is raised by every call. ``calls`` counts them."""
    module = types.ModuleType(FAKE)
    module.calls = {name: 0 for name in FUNCTIONS}

    def wrap(name):
        def fn(*args):
            module.calls[name] += 1
            if fail is not None:
                raise fail
            out = list(getattr(base, name)(*args))
            edit = forward if name.endswith("forward") else backward
            return tuple(edit(out) if edit else out)

        return fn

    for name in FUNCTIONS:
        setattr(module, name, wrap(name))
    return module


def flip_first_spike(out):
    spikes = out[0].clone()
    spikes.view(-1)[7] = 1.0 - spikes.view(-1)[7]
    return [spikes, *out[1:]]


def perturb_final_v(out):
    return [out[0], out[1] + 1e-12 * out[1].abs().max(), *out[2:]]


def scale_param_grads(out):
    return [*out[:-1], out[-1] * (1 + 1e-3)]


@pytest.fixture
def checked(monkeypatch):
    """A clean verdict cache, with the C kernel slot checked like Triton and served by an injected module:
    ``install(module)`` puts it in place."""
    selfcheck.clear()
    monkeypatch.delenv(selfcheck.ENV_SKIP, raising=False)
    monkeypatch.setattr(selfcheck, "CHECKED", {"triton", "c"})

    def install(module):
        monkeypatch.setitem(sys.modules, FAKE, module)
        monkeypatch.setitem(ops._MODULES, "c", FAKE)
        return module

    yield install
    selfcheck.clear()


def drive(dtype=torch.float64, T=12, B=2, N=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(T, B, N, generator=g, dtype=dtype) + 0.6).requires_grad_()


def run_mdn(x, kernel="auto"):
    """Spikes, final V and the gradients of x and theta through the fused MDN op."""
    theta = [torch.full((x.shape[-1],), v, dtype=x.dtype, requires_grad=True) for v in (0.06, 0.219, -0.065, 0.003)]
    state = F.MDNState(torch.zeros(x.shape[1:], dtype=x.dtype), torch.full(x.shape[1:], 0.08, dtype=x.dtype))
    with fused.use_kernel(kernel):
        out = fused.mdn_multistep(x, state, F.MDNParameters(*theta), input_sigmoid=True)
    grads = torch.autograd.grad(
        (out.spikes * torch.arange(out.spikes.numel()).view(out.spikes.shape)).sum() + out.state.v.sum(), [x, *theta]
    )
    return out.spikes.detach(), out.state.v.detach(), grads


# ---------------------------------------------------------------------------------------------------
# the comparison itself
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("neuron", selfcheck.NEURONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_exact_kernels_pass(neuron, dtype):
    """No false alarm: the PyTorch loop itself and the C kernels (bitwise forward, gradients to rounding) pass."""
    assert selfcheck.check(torch_loop, neuron, dtype).ok
    if c_kernels.library() is not None:
        v = selfcheck.check(c_kernels, neuron, dtype)
        assert v.ok, v.detail


@pytest.mark.parametrize(
    "edit, neuron, words",
    [
        (dict(forward=flip_first_spike), "mdn", "forward spikes differs at 1 of 4800 elements (first at [0, 7]"),
        (dict(forward=flip_first_spike), "first_order", "forward spikes differs at 1 of 4800 elements"),
        (dict(forward=perturb_final_v), "mdn", "forward V_T differs at"),
        (dict(backward=scale_param_grads), "mdn", "gradient of parameters (a, b, c, d, V_th, scale) row 0 differs by"),
        (dict(backward=scale_param_grads), "first_order", "gradient of parameters (decay, V_th, reset, scale) row 0"),
    ],
)
def test_a_wrong_kernel_fails_and_says_where(edit, neuron, words):
    v = selfcheck.check(make_kernel(**edit), neuron, torch.float64)
    assert not v.ok
    assert "case 1 (dt=1.0, substeps=1" in v.detail or "case 1 (sigmoid=False" in v.detail
    assert words in v.detail


def test_a_kernel_that_raises_fails_with_the_error():
    v = selfcheck.check(make_kernel(fail=RuntimeError("ptxas fatal: Unresolved extern function")), "mdn", torch.float32)
    assert not v.ok
    assert v.detail == "it raised RuntimeError: ptxas fatal: Unresolved extern function"


def test_the_check_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    selfcheck.check(torch_loop, "mdn", torch.float32)
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------------------------------------------
# the guard: verdict per (kernel, neuron, dtype, device), warning, caching, switch
# ---------------------------------------------------------------------------------------------------
def test_passed_warns_once_and_caches_the_verdict(checked):
    bad = make_kernel(forward=flip_first_spike)
    with pytest.warns(RuntimeWarning) as record:
        assert not selfcheck.passed("triton", torch.float64, "cpu", "mdn", module=bad)
    (w,) = [r for r in record if "mdn_snntorch" in str(r.message)]
    text = str(w.message)
    assert text.startswith(
        "mdn_snntorch: the triton kernel of the fused mdn op does not match the exact PyTorch loop on cpu (float64)"
    )
    assert "forward spikes differs at 1 of 4800 elements" in text
    assert "Using the PyTorch-loop kernel instead" in text and "MDN_SNNTORCH_SKIP_SELFCHECK=1" in text
    calls = dict(bad.calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        for _ in range(3):
            assert not selfcheck.passed("triton", torch.float64, "cpu", "mdn", module=bad)
    assert bad.calls == calls  # checked once
    assert [(v.kernel, v.neuron, v.dtype, v.device, v.ok) for v in selfcheck.verdicts()] == [
        ("triton", "mdn", torch.float64, "cpu", False)
    ]


def test_verdicts_are_per_neuron_and_dtype(checked):
    good = make_kernel()
    assert selfcheck.passed("triton", torch.float32, "cpu", module=good)  # both neuron types
    assert selfcheck.passed("triton", torch.float64, "cpu", "first_order", module=good)
    keys = {(v.neuron, v.dtype) for v in selfcheck.verdicts()}
    assert keys == {("mdn", torch.float32), ("first_order", torch.float32), ("first_order", torch.float64)}


def test_unchecked_kernels_and_the_switch_skip_the_check(checked, monkeypatch):
    bad = make_kernel(fail=RuntimeError("boom"))
    assert selfcheck.passed("torch", torch.float32, "cpu", module=bad)  # not in CHECKED
    monkeypatch.setenv(selfcheck.ENV_SKIP, "1")
    assert selfcheck.passed("triton", torch.float32, "cpu", module=bad)
    assert sum(bad.calls.values()) == 0 and selfcheck.verdicts() == []
    monkeypatch.setenv(selfcheck.ENV_SKIP, "0")
    with pytest.warns(RuntimeWarning, match="it raised RuntimeError: boom"):
        assert not selfcheck.passed("triton", torch.float32, "cpu", module=bad)


# ---------------------------------------------------------------------------------------------------
# through the fused ops (the C slot standing in for Triton)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("edit", [dict(forward=flip_first_spike), dict(fail=RuntimeError("launch failed"))])
def test_a_wrong_kernel_is_replaced_by_the_exact_loop(checked, edit):
    checked(make_kernel(**edit))
    x = drive()
    with pytest.warns(RuntimeWarning, match="the c kernel of the fused mdn op does not match"):
        assert ops.resolve_kernel("cpu", torch.float64) == "torch"
    got = run_mdn(x)
    want = run_mdn(x, kernel="torch")
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    for a, b in zip(got[2], want[2]):
        assert torch.equal(a, b)


def test_a_correct_kernel_is_checked_once_then_used(checked):
    good = checked(make_kernel(base=c_kernels if c_kernels.library() is not None else torch_loop))
    x = drive()
    first = run_mdn(x)
    assert good.calls["mdn_forward"] == len(selfcheck.CASES["mdn"]) + 1  # the check's cases, then the op itself
    assert good.calls["first_order_forward"] == len(selfcheck.CASES["first_order"])  # resolve_kernel checks both types
    second = run_mdn(x)
    assert good.calls["mdn_forward"] == len(selfcheck.CASES["mdn"]) + 2  # no second check
    assert torch.equal(first[0], second[0])


def test_the_switch_trusts_the_kernel(checked, monkeypatch):
    bad = checked(make_kernel(forward=flip_first_spike))
    monkeypatch.setenv(selfcheck.ENV_SKIP, "1")
    assert ops.resolve_kernel("cpu", torch.float64) == "c"
    spikes = run_mdn(drive())[0]
    assert bad.calls["mdn_forward"] == 1  # no check, the op ran the (wrong) kernel
    assert not torch.equal(spikes, run_mdn(drive(), kernel="torch")[0])


def test_torch_compile_keeps_the_fallback(checked):
    """resolve_kernel is assume_constant_result: the check runs while the graph is traced, and the compiled
    graph runs the kernel it chose (here the exact loop, the injected kernel being wrong)."""
    checked(make_kernel(forward=flip_first_spike))
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = ThreeLayerSNN(8, 16, 4, "2-FS", dtype=torch.float64, check_input=False).double()
    x = (torch.rand(10, 3, 8) < 0.5).double()
    with pytest.warns(RuntimeWarning, match="does not match"):
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
    with fused.use_kernel("torch"):
        eager = model(x)
    assert torch.equal(compiled, eager)
    torch._dynamo.reset()


def test_the_command_prints_verdicts(capsys):
    if c_kernels.library() is None:
        pytest.skip("no C compiler")
    assert selfcheck.main(["--kernel", "c", "--dtype", "float32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "PASS c kernel, mdn, float32, cpu: OK (equal to the PyTorch loop)",
        "PASS c kernel, first_order, float32, cpu: OK (equal to the PyTorch loop)",
        "0 of 2 checks failed",
    ]


@pytest.mark.slow
def test_the_triton_kernels_pass_under_the_interpreter():
    pytest.importorskip("triton")
    proc = subprocess.run(
        [sys.executable, "-m", "mdn_snntorch.fused.selfcheck", "--kernel", "triton", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TRITON_INTERPRET": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 of 4 checks failed"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_triton_kernels_pass_on_this_gpu(dtype):
    from mdn_snntorch.fused import triton_kernels

    for neuron in selfcheck.NEURONS:
        v = selfcheck.check(triton_kernels, neuron, dtype, "cuda")
        assert v.ok, v.detail
