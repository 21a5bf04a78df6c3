"""The fused multi-step op (mdn_snntorch.fused) against the reference autograd loop (functional.py).

Agreement is checked for spikes, final state, traces and every gradient (input, initial state, theta_a..d
per neuron and shared, threshold, graded-spikes factor), for each kernel that runs here: C and the
PyTorch loop on CPU, Triton under its interpreter (CPU), Triton on a GPU when one is present.

Tolerances (docs/model.md#tolerances). The forward of the C and PyTorch-loop kernels performs the
reference's float operations in the same order without fused multiply-adds, so spikes and states are
compared for exact equality. The backward computes the same products but sums them in another order (per
element over time, then over the batch, in float64 for the C kernel), so gradients agree to rounding:
float64 within 1e-12 of the largest gradient entry, float32 within 1e-4 (measured over the parity cases:
at most 2.7e-14 and 3.1e-6; the margin covers BPTT amplifying last-bit differences through
|1 + dt (2V - 1)| factors).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import snntorch as snn
import torch
from snntorch.functional import quant as snn_quant

import mdn_snntorch as mdn
from mdn_snntorch import functional as F
from mdn_snntorch import fused, meta_neurons
from mdn_snntorch.fused import c_kernels, ops
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.surrogate import window

PRESETS = ["2-FS", "2-RS", "2-SDS", "2-WDS", "init"]
CPU_KERNELS = ["c", "torch"] if c_kernels.library() is not None else ["torch"]
RTOL = {torch.float64: 1e-12, torch.float32: 1e-4}
CUDA = torch.cuda.is_available()


def assert_close_grads(got, want, what=""):
    """Each gradient within RTOL[its dtype] of the largest entry of the expected one (snnTorch keeps the
    threshold and graded-spikes factor in float32 even in a float64 model: those are float32-close)."""
    for i, (g, w) in enumerate(zip(got, want)):
        assert (g is None) == (w is None), f"{what} grad {i}: one is None"
        if g is None:
            continue
        scale = max(w.abs().max().item(), 1e-30)
        err = (g - w).abs().max().item()
        assert err <= RTOL[w.dtype] * scale, f"{what} grad {i}: max error {err:.3g} vs scale {scale:.3g}"


def random_drive(T, B, N, dtype, seed, device="cpu"):
    """Pre-sigmoid input with slow and fast parts: neurons cross threshold often, and often land inside
    the surrogate window without firing."""
    g = torch.Generator().manual_seed(seed)
    slow = torch.sin(torch.linspace(0, 6, T)).view(T, 1, 1) * 2
    x = slow + torch.randn(T, B, N, generator=g) * 1.5 + torch.randn(1, B, N, generator=g)
    return x.to(dtype=dtype, device=device)


def run_functional(impl, x, theta, threshold, gsf, v0, u0, dt, substeps, traces, sigmoid_in_op=True, detach_reset=True):
    """(outputs, gradients) of a weighted sum of every output, through the fused op (applying the sigmoid
    itself, or given ``torch.sigmoid(x)``) or the reference loop; ``detach_reset=False``: the undetached reset."""
    leaves = [x, *theta, threshold, gsf, v0, u0]
    if impl == "reference":
        out = F.mdn_multistep(
            torch.sigmoid(x),
            F.MDNState(v0, u0),
            F.MDNParameters(*theta),
            threshold=threshold,
            dt=dt,
            substeps=substeps,
            spike_fn=window(0.5),
            return_traces=traces,
            detach_reset=detach_reset,
        )
        spikes = out.spikes * gsf
    else:
        with fused.use_kernel(impl):
            out = fused.mdn_multistep(
                x if sigmoid_in_op else torch.sigmoid(x),
                F.MDNState(v0, u0),
                F.MDNParameters(*theta),
                threshold=threshold,
                dt=dt,
                substeps=substeps,
                width=0.5,
                graded_spikes_factor=gsf,
                input_sigmoid=sigmoid_in_op,
                return_traces=traces,
                detach_reset=detach_reset,
            )
        spikes = out.spikes
    outs = [spikes, out.state.v, out.state.u] + ([out.v, out.u] if traces else [])
    g = torch.Generator().manual_seed(7)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype).to(o.device)).sum() for o in outs)
    return [o.detach() for o in outs], torch.autograd.grad(loss, leaves)


def functional_case(preset, dtype, per_neuron, T=40, B=3, N=6, seed=0, device="cpu"):
    a, b, c, d = meta_neurons.get(preset).theta
    g = torch.Generator().manual_seed(seed + 1)
    if per_neuron:  # spread the neurons around the preset
        theta = [(v + 0.01 * torch.randn(N, generator=g, dtype=torch.float64)).to(dtype) for v in (a, b, c, d)]
    else:
        theta = [torch.tensor(v, dtype=dtype) for v in (a, b, c, d)]
    x = random_drive(T, B, N, dtype, seed, device)
    theta = [t.to(device).requires_grad_() for t in theta]
    threshold = torch.tensor(0.5, dtype=dtype, device=device, requires_grad=True)
    gsf = torch.tensor(1.0, dtype=dtype, device=device, requires_grad=True)
    v0 = (0.1 * torch.randn(B, N, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device).requires_grad_()
    u0 = torch.full((B, N), 0.08, dtype=dtype, device=device).requires_grad_()
    return x.requires_grad_(), theta, threshold, gsf, v0, u0


@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("dt, substeps", [(1.0, 1), (0.5, 3)])
def test_fused_mdn_matches_reference_every_preset(kernel, dtype, preset, dt, substeps):
    case = functional_case(preset, dtype, per_neuron=True, seed=PRESETS.index(preset))
    ref_out, ref_grads = run_functional("reference", *case, dt, substeps, True)
    out, grads = run_functional(kernel, *case, dt, substeps, True)
    assert ref_out[0].sum() > 0 and (ref_out[0] == 0).any(), "the case should both fire and not fire"
    for o, r in zip(out, ref_out):
        assert torch.equal(o, r)  # bitwise: same operations in the same order
    assert_close_grads(grads, ref_grads, f"{kernel} {preset}")
    assert all(g.abs().sum() > 0 for g in grads[:6]), "input, theta and threshold all get gradient"


@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("preset", ["2-FS", "2-SDS"])
@pytest.mark.parametrize("dt, substeps", [(1.0, 1), (0.5, 3)])
def test_fused_mdn_undetached_reset_matches_reference(kernel, dtype, preset, dt, substeps):
    """The undetached reset (the spike's gradient through V' (1 - S) + S c and U' + S d): the same outputs as
    the detached one, bitwise, and the reference loop's gradients of every input, which differ from the
    detached reset's."""
    case = functional_case(preset, dtype, per_neuron=True, seed=11)
    ref_out, ref_grads = run_functional("reference", *case, dt, substeps, True, detach_reset=False)
    out, grads = run_functional(kernel, *case, dt, substeps, True, detach_reset=False)
    detached_out, detached_grads = run_functional(kernel, *case, dt, substeps, True)
    for o, r, d in zip(out, ref_out, detached_out):
        assert torch.equal(o, r) and torch.equal(o, d)
    assert_close_grads(grads, ref_grads, f"{kernel} {preset} undetached")
    scale = ref_grads[0].abs().max()
    assert (grads[0] - detached_grads[0]).abs().max() > 100 * RTOL[dtype] * scale, "the reset's gradient is not the detached one"


@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_first_order_undetached_reset_matches_reference(kernel, dtype):
    """The 1st-order neuron's undetached reset V' (1 - S) + S V_reset, with a learnable decay and reset value."""
    x = random_drive(40, 3, 6, dtype, seed=12).requires_grad_()
    decay = torch.full((6,), 0.2, dtype=dtype, requires_grad=True)
    reset = torch.full((6,), -0.1, dtype=dtype, requires_grad=True)
    v0 = torch.zeros(3, 6, dtype=dtype)
    ref = F.first_order_multistep(
        torch.sigmoid(x), v0, decay=decay, reset=reset, spike_fn=window(0.5), detach_reset=False, return_traces=True
    )
    with fused.use_kernel(kernel):
        out = fused.first_order_multistep(
            x, v0, decay=decay, reset=reset, input_sigmoid=True, detach_reset=False, return_traces=True
        )
    assert torch.equal(out.spikes, ref.spikes) and torch.equal(out.v, ref.v)
    weights = torch.randn(ref.spikes.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    grads = [torch.autograd.grad((o.spikes * weights).sum() + o.v.sum(), [x, decay, reset]) for o in (out, ref)]
    assert_close_grads(*grads, f"{kernel} first order undetached")


@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("neuron", ["mdn", "first-order"])
@pytest.mark.parametrize("detach_reset", [True, False], ids=["detached", "undetached"])
@pytest.mark.parametrize("sigmoid", [True, False], ids=["sigmoid", "linear"])
@pytest.mark.parametrize("learn", [True, False], ids=["param-grads", "no-param-grads"])
def test_every_combination_of_reset_sigmoid_and_parameter_gradients(kernel, neuron, detach_reset, sigmoid, learn):
    """The C backward is compiled once per combination of the undetached reset, the input sigmoid and the parameter
    gradients: each combination gives the reference loop's outputs bitwise and its gradients, the parameters' included
    (and none where they are not asked for)."""
    dtype = torch.float64
    g = torch.Generator().manual_seed(21)
    x = (torch.randn(30, 3, 6, generator=g, dtype=dtype) * 1.5 + (0.5 if sigmoid else 0.3)).requires_grad_()
    current = torch.sigmoid(x) if sigmoid else x
    v0 = torch.zeros(3, 6, dtype=dtype)
    if neuron == "mdn":
        theta = [(v + 0.01 * torch.randn(6, generator=g, dtype=dtype)).requires_grad_(learn) for v in (0.06, 0.219, -0.065, 0.05)]
        u0 = torch.full((3, 6), 0.08, dtype=dtype)
        common = dict(threshold=0.5, return_traces=True, detach_reset=detach_reset)
        ref = F.mdn_multistep(current, F.MDNState(v0, u0), F.MDNParameters(*theta), spike_fn=window(0.5), **common)
        with fused.use_kernel(kernel):
            out = fused.mdn_multistep(x, F.MDNState(v0, u0), F.MDNParameters(*theta), input_sigmoid=sigmoid, **common)
        params = theta
    else:
        decay = torch.full((6,), 0.3, dtype=dtype).requires_grad_(learn)
        reset = torch.full((6,), -0.1, dtype=dtype).requires_grad_(learn)
        common = dict(decay=decay, reset=reset, return_traces=True, detach_reset=detach_reset)
        ref = F.first_order_multistep(current, v0, spike_fn=window(0.5), **common)
        with fused.use_kernel(kernel):
            out = fused.first_order_multistep(x, v0, input_sigmoid=sigmoid, **common)
        params = [decay, reset]
    assert torch.equal(out.spikes, ref.spikes) and torch.equal(out.v, ref.v)
    assert ref.spikes.sum() > 0 and (ref.spikes == 0).any()
    weights = torch.randn(ref.spikes.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    leaves = [x, *params] if learn else [x]
    grads = [torch.autograd.grad((o.spikes * weights).sum() + o.v.sum(), leaves) for o in (out, ref)]
    assert_close_grads(*grads, f"{kernel} {neuron} detach={detach_reset} sigmoid={sigmoid} learn={learn}")
    assert all(gr.abs().sum() > 0 for gr in grads[0])


@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("traces", [False, True])
def test_shared_scalar_theta_and_no_traces(kernel, traces):
    case = functional_case("2-RS", torch.float64, per_neuron=False, seed=3)
    ref_out, ref_grads = run_functional("reference", *case, 1.0, 1, traces)
    out, grads = run_functional(kernel, *case, 1.0, 1, traces)
    for o, r in zip(out, ref_out):
        assert torch.equal(o, r)
    assert_close_grads(grads, ref_grads, kernel)
    assert grads[1].shape == ()  # a shared theta gets a shared gradient


@pytest.mark.parametrize("openmp", [True, False], ids=["openmp", "pthreads"])
def test_c_kernel_multithreaded_shape_matches_the_torch_loop(openmp, monkeypatch, tmp_path):
    """Large enough for the C kernels to split the elements over threads (and over several blocks), with
    the OpenMP build (the default) and the pthreads build (used where the compiler has no OpenMP)."""
    cc = c_kernels._compiler()
    if cc is None or c_kernels.library() is None:
        pytest.skip("no C compiler here: the PyTorch loop is the CPU kernel")
    if not openmp:
        monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
        lib = ctypes.CDLL(str(c_kernels._build(cc, c_kernels.CFLAGS)))
        c_kernels._declare(lib)
        monkeypatch.setitem(c_kernels._state, "lib", lib)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # more threads than this machine's cores is fine
    case = functional_case("2-FS", torch.float64, per_neuron=True, T=20, B=64, N=130, seed=5)
    assert 20 * 64 * 130 >= c_kernels._PARALLEL_MIN_WORK
    for substeps in (1, 2):
        out_c, grads_c = run_functional("c", *case, 1.0, substeps, True)
        out_t, grads_t = run_functional("torch", *case, 1.0, substeps, True)
        for o, r in zip(out_c, out_t):
            assert torch.equal(o, r)
        assert_close_grads(grads_c, grads_t, f"substeps={substeps}")


def test_gradcheck_smooth_outputs():
    """gradcheck (float64) of the state outputs, which are smooth in every input as long as no perturbation
    moves V' across the threshold: checked below. The spike output is left out (its true derivative is 0
    almost everywhere; the surrogate's is compared to the reference loop's autograd above)."""
    T, B, N = 6, 2, 3
    x, theta, threshold, gsf, v0, u0 = functional_case("2-FS", torch.float64, per_neuron=True, T=T, B=B, N=N, seed=11)
    x = (x.detach() * 0.3).requires_grad_()
    with torch.no_grad():  # precondition: every V' stays at least 1e-3 away from the threshold; some fire
        v, u, fired = v0.clone(), u0.clone(), 0
        for cur in torch.sigmoid(x):
            vp = v + (v * v - v - u + cur)
            assert (vp - 0.5).abs().min() > 1e-3
            s = (vp > 0.5).double()
            fired += s.sum()
            u = u + theta[0] * (theta[1] * v - u) + theta[3] * s
            v = torch.where(s > 0, theta[2], vp)
        assert fired > 0  # so the resets (theta_c, theta_d) are in the checked gradients

    def states(x, a, b, c, d, v0, u0):
        out = fused.mdn_multistep(
            x, F.MDNState(v0, u0), F.MDNParameters(a, b, c, d), threshold=threshold, input_sigmoid=True, return_traces=True
        )
        return out.state.v, out.state.u, out.v, out.u

    for kernel in CPU_KERNELS:
        with fused.use_kernel(kernel):
            assert torch.autograd.gradcheck(states, (x, *theta, v0, u0))


@pytest.mark.parametrize("learnable", [True, False])
@pytest.mark.parametrize("sigmoid, traces, substeps", [(False, False, 1), (True, True, 2)])
def test_opcheck_mdn(sigmoid, traces, substeps, learnable):
    T, B, N = 4, 2, 3
    x = torch.randn(T, B, N, dtype=torch.float64, requires_grad=True)
    v0 = torch.zeros(B, N, dtype=torch.float64, requires_grad=True)
    u0 = torch.full((B, N), 0.08, dtype=torch.float64, requires_grad=True)
    params = torch.tensor([0.06, 0.219, -0.065, 0.003, 0.5, 1.0], dtype=torch.float64).view(6, 1).repeat(1, N)
    for kernel, every in [("torch", 1), ("torch", 3)] + [("c", 2)] * ("c" in CPU_KERNELS):
        args = (x, v0, u0, params.requires_grad_(learnable), 1.0, substeps, 0.5, sigmoid, traces, kernel, every)
        torch.library.opcheck(ops.mdn_forward_op, args)


@pytest.mark.parametrize("learnable", [True, False])
@pytest.mark.parametrize("sigmoid, traces", [(False, True), (True, False)])
def test_opcheck_first_order(sigmoid, traces, learnable):
    T, B, N = 4, 2, 3
    x = torch.randn(T, B, N, dtype=torch.float64, requires_grad=True)
    v0 = torch.zeros(B, N, dtype=torch.float64, requires_grad=True)
    params = torch.tensor([0.8, 0.5, 0.0, 1.0], dtype=torch.float64).view(4, 1).repeat(1, N).requires_grad_(learnable)
    for kernel, every in [("torch", 3)] + [("c", 1)] * ("c" in CPU_KERNELS):
        torch.library.opcheck(ops.first_order_forward_op, (x, v0, params, 0.5, sigmoid, traces, kernel, every))


@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("order", [2, 1])
def test_fixed_parameters_skip_their_sums_and_change_no_other_gradient(kernel, order, monkeypatch):
    """Neurons whose parameters need no gradient (fixed meta neurons) run a backward without the parameters'
    sums; the gradients of the input and of the initial state are the same bits as when the parameters learn."""
    T, B, N = 12, 3, 5
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, N, dtype=torch.float32, generator=g) * 2
    if order == 2:
        values = torch.tensor([0.06, 0.219, -0.065, 0.003, 0.5, 1.0]).view(6, 1).repeat(1, N)
        states, name = (torch.zeros(B, N), torch.full((B, N), 0.08)), "mdn_backward"
    else:
        values = torch.tensor([0.8, 0.5, 0.0, 1.0]).view(4, 1).repeat(1, N)
        states, name = (torch.zeros(B, N),), "first_order_backward"
    module = ops._module(kernel)
    asked, real = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args: asked.append(args[-1]) or real(*args))

    def grads(learnable: bool):
        leaves = [x.clone().requires_grad_(), *[s.clone().requires_grad_() for s in states]]
        params = values.clone().requires_grad_(learnable)
        if order == 2:
            out = ops.mdn_forward_op(*leaves, params, 1.0, 1, 0.5, True, False, kernel, 4)
        else:
            out = ops.first_order_forward_op(*leaves, params, 0.5, True, False, kernel, 4)
        loss = (out[0] * torch.linspace(-1, 1, N)).sum() + out[1].sum()
        return torch.autograd.grad(loss, leaves + [params] * learnable)

    learning, fixed = grads(True), grads(False)
    assert asked == [True, False]  # the backward was told whether to sum the parameters' gradients
    assert len(fixed) == len(learning) - 1 and learning[-1].abs().sum() > 0
    for a, b in zip(learning, fixed):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------
# the neuron modules: same results through either backend
# ---------------------------------------------------------------------------------------------------
def module_run(neuron, x, traces, steps=2):
    """Two consecutive multi_step calls (the second starts from the first's final state, in the graph),
    then the gradients of everything learnable and of the input."""
    x = x.clone().requires_grad_()
    outs = []
    for chunk in x.chunk(steps):
        out = neuron.multi_step(chunk, return_traces=traces)
        outs += list(out) if traces else [out]
    outs += [getattr(neuron, name) for name in neuron._state_names]
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    params = [p for _, p in sorted(neuron.named_parameters())]
    return [o.detach() for o in outs], torch.autograd.grad(loss, [x, *params])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("preset", PRESETS)
def test_mdn_module_backends_agree(dtype, preset):
    N = 5
    kwargs = dict(
        num_neurons=N, learn_theta=True, learn_threshold=True, learn_graded_spikes_factor=True, dt=0.5, substeps=2, dtype=dtype
    )
    x = random_drive(30, 4, N, dtype, seed=PRESETS.index(preset))
    results = {}
    for backend in ("fused", "reference"):
        neuron = mdn.MDN(preset, backend=backend, **kwargs)
        results[backend] = module_run(neuron, x, traces=True)
    for o, r in zip(results["fused"][0], results["reference"][0]):
        assert torch.equal(o, r)
    assert_close_grads(results["fused"][1], results["reference"][1], preset)
    assert len(results["fused"][1]) == 7  # input, graded factor, theta_a..d, threshold


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("learn_decay, per_neuron, traces", [(True, True, True), (True, False, False), (False, False, True)])
def test_first_order_module_backends_agree(dtype, learn_decay, per_neuron, traces):
    N = 6
    decay = torch.linspace(0.5, 0.9, N) if per_neuron else 0.8
    kwargs = dict(learn_decay=learn_decay, learn_threshold=True, learn_graded_spikes_factor=True, dtype=dtype)
    x = random_drive(30, 4, N, dtype, seed=9)
    results = {}
    for backend in ("fused", "reference"):
        results[backend] = module_run(mdn.FirstOrder(decay, backend=backend, **kwargs), x, traces)
    for o, r in zip(results["fused"][0], results["reference"][0]):
        assert torch.equal(o, r)
    assert_close_grads(results["fused"][1], results["reference"][1], "1st-order")


def test_functional_first_order_reset_value_gradient():
    T, B, N = 25, 3, 4
    x = random_drive(T, B, N, torch.float64, seed=2).requires_grad_()
    decay = torch.full((N,), 0.8, dtype=torch.float64, requires_grad=True)
    reset = torch.tensor(-0.05, dtype=torch.float64, requires_grad=True)
    v0 = torch.zeros(B, N, dtype=torch.float64, requires_grad=True)
    ref = F.first_order_multistep(x, v0, decay=decay, reset=reset, return_traces=True)
    got = fused.first_order_multistep(x, v0, decay=decay, reset=reset, return_traces=True)
    assert torch.equal(ref.spikes, got.spikes) and torch.equal(ref.v, got.v) and torch.equal(ref.state, got.state)
    w = torch.randn(T, B, N, dtype=torch.float64)
    leaves = (x, decay, reset, v0)
    want = torch.autograd.grad((ref.spikes * w).sum() + (ref.v * w).sum() + ref.state.sum(), leaves)
    have = torch.autograd.grad((got.spikes * w).sum() + (got.v * w).sum() + got.state.sum(), leaves)
    assert_close_grads(have, want)
    assert want[2] != 0


# ---------------------------------------------------------------------------------------------------
# which path runs
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def spy(monkeypatch):
    calls = {"mdn": 0, "first_order": 0}

    def wrap(name, fn):
        def counted(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return counted

    monkeypatch.setattr(fused, "mdn_multistep", wrap("mdn", fused.mdn_multistep))
    monkeypatch.setattr(fused, "first_order_multistep", wrap("first_order", fused.first_order_multistep))
    return calls


def test_auto_backend_takes_the_fused_op(spy):
    x = torch.randn(5, 2, 3)
    mdn.MDN("2-FS").multi_step(x)
    mdn.FirstOrder().multi_step(x)
    assert spy == {"mdn": 1, "first_order": 1}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_resolve_kernel_gives_the_routes_answer(dtype, monkeypatch):
    """The op's kernel is the one kernel_route decides, whatever the forced kernel, also where the C kernels are
    not loaded yet or are self-checked (its shortcut for the common case takes none of those)."""
    for choice in ("auto", "torch", "c"):
        with fused.use_kernel(choice):
            if choice == "c" and dtype not in (torch.float32, torch.float64):
                continue
            assert ops.resolve_kernel("cpu", dtype) == fused.dispatch.kernel_route("cpu", dtype)[0]
    assert ops.resolve_kernel("cpu", dtype) == ("c" if dtype in (torch.float32, torch.float64) else "torch")
    monkeypatch.setattr(c_kernels, "_state", {})  # not built yet: built by the route
    assert ops.resolve_kernel("cpu", dtype) == fused.dispatch.kernel_route("cpu", dtype)[0]


@pytest.mark.parametrize("shapes", [[(), (), (6,), (1,), (6,), ()], [()] * 6, [(6,)] * 6])
def test_the_usual_parameters_are_stacked_as_the_general_path_stacks_them(shapes, monkeypatch):
    """One value or one per neuron on [T, B, N] takes a short path to the stack: the same values and the same
    gradients as the general path's shape analysis gives."""
    x = torch.rand(3, 2, 6, dtype=torch.float64)
    w = torch.rand(6, 6, dtype=torch.float64)
    results = []
    for short in (True, False):
        monkeypatch.setattr(ops, "_one_or_per_neuron", lambda values, inputs, _s=short: _s)
        g = torch.Generator().manual_seed(4)
        values = [torch.rand(s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]
        stack = ops._per_neuron(values, x)
        results.append((stack.detach(), torch.autograd.grad((stack * w).sum(), values)))
    (s1, g1), (s2, g2) = results
    assert s1.shape == (6, 6) and torch.equal(s1, s2)
    assert all(torch.equal(a, b) and a.shape == b.shape for a, b in zip(g1, g2))
    monkeypatch.undo()
    zeros = lambda *shape, dtype=torch.float64: torch.zeros(shape, dtype=dtype)  # noqa: E731
    assert ops._one_or_per_neuron([zeros(), zeros(1), zeros(6)], x)
    assert not ops._one_or_per_neuron([zeros(2, 6)], x)  # varies over the batch: the general path refuses it
    assert not ops._one_or_per_neuron([zeros(6, dtype=torch.float32)], x)  # another dtype: converted there
    assert not ops._one_or_per_neuron([zeros(6)], x[..., None])  # not [T, B, N]
    assert not ops._one_or_per_neuron([0.5], x)  # a python float


def _change(param: torch.Tensor, how: str, value: float) -> None:
    """A parameter changed without autograd's knowledge: through ``.data``, in place or by a new tensor."""
    if how == "data-in-place":
        param.data.fill_(value)
    else:
        param.data = torch.full_like(param, value)


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
@pytest.mark.parametrize("how", ["data-in-place", "data-replaced"])
@pytest.mark.parametrize("param_shape", [(6,), (3, 1, 1)], ids=["per-neuron", "per-channel"])
def test_a_parameter_changed_through_data_is_seen_by_the_next_call(cls, how, param_shape):
    """A change no version counter sees (``p.data.fill_(...)``, ``p.data = other``, as weight constraints do) reaches
    the next single step (the remembered C step) and the next sequence, which equal a fresh neuron's with the new
    value, bit for bit. The kernels read a per-neuron threshold where it lies and a per-channel one from a copy
    expanded to the feature shape."""
    shape = (2, 6) if param_shape == (6,) else (2, 3, 2, 2)
    x = torch.rand(4, *shape) * 2
    make = lambda: cls(threshold=torch.full(param_shape, 0.5), learn_threshold=True)  # noqa: E731
    neuron, twin = make(), make()
    for _ in range(3):  # the C step remembered
        neuron.reset_mem()
        neuron(x[0])
    before = neuron(x[0])
    with torch.no_grad():
        _change(neuron.threshold, how, 5.0)  # far above the membrane: no neuron fires
        twin.threshold.fill_(5.0)
    assert neuron.explain(x[0]).path == "node:c"
    neuron.reset_mem(), twin.reset_mem()
    got, want = neuron(x[0]), twin(x[0])
    assert before[0].any() and not want[0].any()  # the change matters
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    neuron.reset_mem(), twin.reset_mem()
    assert torch.equal(neuron.multi_step(x), twin.multi_step(x))


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_a_graded_spikes_factor_changed_through_data_reaches_the_pytorch_node(cls):
    """The PyTorch node leaves the factor's multiplication out while the factor is 1: a factor changed to 2 through
    ``.data`` scales the next step's spikes, as a fresh neuron's factor of 2 does."""
    x = torch.rand(2, 6) + 1.5  # a drive every neuron fires on
    with fused.use_kernel("torch"):
        neuron = cls()
        assert neuron.explain(x).path == "node"
        neuron(x)
        neuron.graded_spikes_factor.data.fill_(2.0)
        neuron.reset_mem()
        got, want = neuron(x), cls(graded_spikes_factor=2.0)(x)
    assert got[0].max() == 2.0 and all(torch.equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(inhibition=True),
        dict(spike_grad=snn.surrogate.atan()),
        dict(surrogate_disable=True),
        dict(state_quant=snn_quant.state_quant(num_bits=8, uniform=True)),
    ],
    ids=["inhibition", "atan", "surrogate_disable", "state_quant"],
)
@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_unsupported_configurations_fall_back_exactly(spy, cls, kwargs):
    torch.manual_seed(0)
    x = torch.randn(12, 3, 4, dtype=torch.float64)
    auto = cls(**kwargs, dtype=torch.float64)
    ref = cls(**kwargs, dtype=torch.float64, backend="reference")
    out_auto, out_ref = auto.multi_step(x), ref.multi_step(x)
    assert spy == {"mdn": 0, "first_order": 0}
    assert torch.equal(out_auto, out_ref)
    with pytest.raises(ValueError, match="backend='fused'"):
        cls(**kwargs, backend="fused").multi_step(x)


def test_state_of_another_dtype_falls_back(spy):
    neuron = mdn.MDN("2-FS", dtype=torch.float64)
    neuron.multi_step(torch.randn(3, 2, 4, dtype=torch.float64))
    neuron.mem = neuron.mem.float()  # a state handed in with a different dtype than the input
    neuron.multi_step(torch.randn(3, 2, 4, dtype=torch.float64))
    assert spy["mdn"] == 1


def test_use_reference_and_backend_switch(spy):
    x = torch.randn(4, 2, 3)
    with mdn.use_reference():
        mdn.MDN("2-RS").multi_step(x)
        mdn.MDN("2-RS", backend="fused").multi_step(x)  # an explicit "fused" is not overridden
        with mdn.use_reference(False):
            mdn.FirstOrder().multi_step(x)
    mdn.MDN("2-RS", backend="reference").multi_step(x)
    assert spy == {"mdn": 1, "first_order": 1}
    with pytest.raises(ValueError, match="backend"):
        mdn.MDN("2-RS", backend="fast")


def test_c_build_failure_falls_back_to_the_torch_loop(monkeypatch, tmp_path):
    """A compiler that fails: a warning, no library, and the op still runs (through the PyTorch loop)."""
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # exists, always fails
    monkeypatch.setattr(c_kernels, "_state", {})
    with pytest.warns(RuntimeWarning, match="building the CPU kernels failed"):
        assert c_kernels.library() is None
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    assert fused.resolve_kernel(x.device.type, x.dtype) == "torch"
    out = mdn.MDN("2-FS", dtype=torch.float64).multi_step(x)
    assert torch.equal(out, mdn.MDN("2-FS", dtype=torch.float64, backend="reference").multi_step(x))


def test_c_build_is_cached(monkeypatch, tmp_path):
    if c_kernels._compiler() is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
    flags = c_kernels.CFLAGS + c_kernels.OPENMP
    path = c_kernels._build(c_kernels._compiler(), flags)
    assert path.parent == tmp_path and path.exists()
    mtime = path.stat().st_mtime_ns
    assert c_kernels._build(c_kernels._compiler(), flags) == path and path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


@pytest.mark.parametrize("openmp", [True, False], ids=["openmp", "pthreads"])
def test_c_source_compiles_on_its_own(openmp):
    """The shipped C file (with the header it includes twice) is plain C11, warning-free, for both builds."""
    cc = c_kernels._compiler()
    if cc is None:
        pytest.skip("no C compiler here")
    flags = ["-fsyntax-only", "-std=c11", "-Wall", "-Wextra", "-Werror", *(c_kernels.OPENMP if openmp else ())]
    proc = subprocess.run([cc, *flags, str(c_kernels.SOURCE_DIR / c_kernels.SOURCE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_c_sources_are_package_data():
    """Every C source next to c_kernels.py is matched by the package-data globs of pyproject.toml."""
    names = c_kernels.sources()
    assert c_kernels.SOURCE in names and any(n.endswith(".h") for n in names)
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["mdn_snntorch.fused"]
    package = Path(c_kernels.__file__).parent
    shipped = {p.name for g in globs for p in package.glob(g)}
    assert set(names) <= shipped


def test_c_build_is_keyed_by_the_source(monkeypatch, tmp_path):
    """The same sources elsewhere reuse the cached library; an edited source builds a new one."""
    cc = c_kernels._compiler()
    if cc is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path / "cache"))
    flags = ("-O0", "-fPIC", "-shared", "-pthread")  # quick to build: only the cache key matters here
    original = c_kernels._build(cc, flags)
    copy = shutil.copytree(c_kernels.SOURCE_DIR, tmp_path / "src")
    assert c_kernels._build(cc, flags, copy) == original  # keyed by content, not by location
    source = copy / c_kernels.SOURCE
    source.write_text(source.read_text() + "\nint edited_source(void) { return 42; }\n")
    edited = c_kernels._build(cc, flags, copy)
    assert edited != original and edited.exists() and original.exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([original.name, edited.name])
    assert ctypes.CDLL(str(edited)).edited_source() == 42  # built from the edited text


# ---------------------------------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------------------------------
def test_model_with_fused_neurons_has_no_graph_breaks():
    torch._dynamo.reset()
    model = ThreeLayerSNN(8, 16, 4, "2-FS", check_input=False)
    explanation = torch._dynamo.explain(model)(torch.rand(5, 3, 8))
    assert explanation.graph_break_count == 0
    code = "\n".join(g.code for g in explanation.graphs)
    assert code.count("mdn_snntorch.mdn_forward") == 2  # both layers are single fused nodes


def test_compiled_model_matches_eager():
    """torch.compile through AOT autograd (the aot_eager backend: the op's fake kernels and autograd
    formula are traced; inductor's C++ codegen is left to the benchmark, it takes minutes here)."""
    torch.manual_seed(0)
    model = ThreeLayerSNN(8, 16, 4, "2-WDS", output_neuron="1st-order", check_input=False).double()
    x = (torch.rand(10, 3, 8) < 0.5).double()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    outs, grads = [], []
    for m in (model, compiled):
        model.zero_grad()
        out = m(x)
        (out * torch.arange(out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.equal(outs[0], outs[1])
    assert_close_grads(grads[1], grads[0], "compiled")


# ---------------------------------------------------------------------------------------------------
# the Triton kernels: their logic under Triton's CPU interpreter, and on a GPU when there is one
# ---------------------------------------------------------------------------------------------------
_INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import os, torch
    os.environ["TRITON_INTERPRET"] = "1"
    from mdn_snntorch import fused, functional as F
    from mdn_snntorch.fused import triton_kernels
    from mdn_snntorch.surrogate import window
    from mdn_snntorch.fused import ops
    ops.resolve_kernel = lambda device, dtype: "triton"  # the Triton kernels, interpreted on CPU
    torch.manual_seed(0)
    T, B, N = 9, 3, 5
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        for dt, sub, detach in ((1.0, 1, True), (0.5, 3, True), (1.0, 1, False), (0.5, 3, False)):
            x = (torch.randn(T, B, N, dtype=dtype) * 2 + 0.5).requires_grad_()
            theta = [(torch.full((N,), v, dtype=dtype) + 0.01 * torch.randn(N, dtype=dtype)).requires_grad_()
                     for v in (0.06, 0.219, -0.065, 0.003)]
            th = torch.tensor(0.5, dtype=dtype, requires_grad=True)
            gsf = torch.tensor(1.5, dtype=dtype, requires_grad=True)
            v0 = torch.zeros(B, N, dtype=dtype, requires_grad=True)
            u0 = torch.full((B, N), 0.08, dtype=dtype, requires_grad=True)
            leaves = [x, *theta, th, gsf, v0, u0]
            ref = F.mdn_multistep(torch.sigmoid(x), F.MDNState(v0, u0), F.MDNParameters(*theta), threshold=th,
                                  dt=dt, substeps=sub, spike_fn=window(0.5), return_traces=True, detach_reset=detach)
            got = fused.mdn_multistep(x, F.MDNState(v0, u0), F.MDNParameters(*theta), threshold=th, dt=dt,
                                      substeps=sub, graded_spikes_factor=gsf, input_sigmoid=True, return_traces=True,
                                      detach_reset=detach)
            pairs = [(got.spikes, ref.spikes * gsf), (got.state.v, ref.state.v), (got.state.u, ref.state.u),
                     (got.v, ref.v), (got.u, ref.u)]
            assert torch.equal(got.spikes, ref.spikes * gsf), (dtype, dt, sub)
            w = [torch.randn_like(r) for _, r in pairs]
            g1 = torch.autograd.grad(sum((a * wi).sum() for (a, _), wi in zip(pairs, w)), leaves)
            g2 = torch.autograd.grad(sum((b * wi).sum() for (_, b), wi in zip(pairs, w)), leaves)
            for a, b in zip(g1, g2):
                assert (a - b).abs().max() <= tol * b.abs().max(), (dtype, dt, sub)
            for a, b in pairs[1:]:
                assert (a - b).abs().max() <= tol, (dtype, dt, sub)
        # 1st-order neuron
        decay = torch.full((N,), 0.8, dtype=dtype, requires_grad=True)
        for detach in (True, False):
            ref = F.first_order_multistep(torch.sigmoid(x), v0, decay=decay, threshold=th, return_traces=True,
                                          detach_reset=detach)
            got = fused.first_order_multistep(x, v0, decay=decay, threshold=th, input_sigmoid=True, return_traces=True,
                                              detach_reset=detach)
            assert torch.equal(got.spikes, ref.spikes)
            leaves = [x, decay, th, v0]
            g1 = torch.autograd.grad((got.spikes * x).sum() + got.v.sum() + got.state.sum(), leaves)
            g2 = torch.autograd.grad((ref.spikes * x).sum() + ref.v.sum() + ref.state.sum(), leaves)
            for a, b in zip(g1, g2):
                assert (a - b).abs().max() <= tol * b.abs().max(), (dtype, detach)
    print("triton interpreter ok")
    """
)


@pytest.mark.slow
def test_triton_kernels_under_the_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _INTERPRETER_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "triton interpreter ok" in proc.stdout


def test_triton_kernels_compile_for_hopper_without_fma():
    """Every kernel variant compiles (no GPU needed: Triton's own LLVM and ptxas) to sm_90 machine code,
    with the launch options of mdn_snntorch/fused/triton_kernels.py; without the sigmoid (whose exp may use library FMAs) the
    PTX has no fused multiply-add, so the recurrence rounds like PyTorch's separate eager ops."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mdn_snntorch.fused import triton_kernels

    variants = [
        (triton_kernels._mdn_fwd_kernel, dict(TRACES=True)),
        (triton_kernels._mdn_bwd_kernel, dict(HAS_GS=True, HAS_GVTR=True, HAS_GUTR=True, HAS_GVT=True, HAS_GUT=True)),
        (triton_kernels._fo_fwd_kernel, dict(TRACES=True)),
        (triton_kernels._fo_bwd_kernel, dict(HAS_GS=True, HAS_GVTR=True, HAS_GVT=True)),
    ]
    for kernel, flags in variants:
        for substeps in (1, 2) if "SUBSTEPS" in kernel.arg_names else (None,):
            for sigmoid, dtype in ((False, "fp32"), (False, "fp64"), (True, "fp32")):
                constexprs = dict(flags, SIGMOID=sigmoid, BLOCK=triton_kernels.BLOCK) | (
                    {"SUBSTEPS": substeps} if substeps else {}
                )
                signature = {
                    n: "constexpr" if n in constexprs else "i32" if n in ("T", "M", "N", "LAST") else "*" + dtype
                    for n in kernel.arg_names
                }
                source = ASTSource(kernel, signature, {(kernel.arg_names.index(k),): v for k, v in constexprs.items()})
                try:
                    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=dict(triton_kernels.OPTIONS))
                except RuntimeError as e:  # pragma: no cover - a triton without its CUDA toolchain
                    pytest.skip(f"triton cannot compile for CUDA here: {e}")
                assert compiled.asm["cubin"]
                if not sigmoid:
                    assert "fma." not in compiled.asm["ptx"], (str(kernel), constexprs, dtype)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dt, substeps", [(1.0, 1), (0.5, 3)])
def test_triton_on_gpu_matches_reference(dtype, dt, substeps):
    case = functional_case("2-WDS", dtype, per_neuron=True, T=50, B=16, N=100, seed=4, device="cuda")
    ref_out, ref_grads = run_functional("reference", *case, dt, substeps, True)
    # given the same current, the kernels (no FMA) repeat the reference's float operations exactly
    out, grads = run_functional("triton", *case, dt, substeps, True, sigmoid_in_op=False)
    for o, r in zip(out, ref_out):
        assert torch.equal(o, r)
    assert_close_grads(grads, ref_grads, "triton")
    # with the sigmoid inside the kernel, I may differ from torch.sigmoid's in the last bit: spikes may
    # differ where V' grazes the threshold, rarely
    out, grads = run_functional("triton", *case, dt, substeps, True)
    assert (out[0] != ref_out[0]).float().mean() < 1e-3
    if torch.equal(out[0], ref_out[0]):
        assert_close_grads(grads, ref_grads, "triton, sigmoid inside")


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_triton_model_compiles_on_gpu():
    torch.manual_seed(0)
    model = ThreeLayerSNN(32, 64, 10, "2-FS", check_input=False).cuda()
    x = (torch.rand(10, 8, 32, device="cuda") < 0.5).float()
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)(x)
    assert (eager != compiled).float().mean() < 1e-2
    compiled.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_use_kernel_rejects_unknown_and_impossible_choices():
    with pytest.raises(ValueError, match="kernel"):
        with fused.use_kernel("fortran"):
            pass
    if not CUDA:
        with fused.use_kernel("triton"), pytest.raises(RuntimeError, match="CUDA"):
            fused.mdn_multistep(
                torch.randn(3, 2), F.MDNState(torch.zeros(2), torch.zeros(2)), F.MDNParameters(0.1, 0.2, 0.0, 0.1)
            )


def test_layers_of_snntorch_style_shapes():
    """[T, B, C, H, W] inputs with per-channel-free (shared) theta, and a [T, N] input without batch."""
    x = random_drive(6, 2, 12, torch.float64, seed=1).view(6, 2, 3, 2, 2)
    a, b = mdn.MDN("2-SDS", dtype=torch.float64), mdn.MDN("2-SDS", dtype=torch.float64, backend="reference")
    assert torch.equal(a.multi_step(x), b.multi_step(x))
    x1 = x[:, 0, 0, 0]
    assert torch.equal(
        mdn.FirstOrder(dtype=torch.float64).multi_step(x1),
        mdn.FirstOrder(dtype=torch.float64, backend="reference").multi_step(x1),
    )


def test_half_precision_runs_the_torch_loop_kernel_exactly():
    """bfloat16 (and float16) have no C / Triton kernel: the PyTorch-loop kernel runs them, repeating the
    reference's operations in the same dtype, so the forward is bitwise the reference's."""
    x = random_drive(24, 3, 5, torch.bfloat16, seed=8)
    assert fused.resolve_kernel("cpu", torch.bfloat16) == "torch"
    outs = [mdn.MDN("2-RS", dtype=torch.bfloat16, backend=b).multi_step(x, return_traces=True) for b in ("fused", "reference")]
    for a, b in zip(*outs):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b)
    assert outs[0][0].sum() > 0
