"""The single step in C (mdn_snntorch.fused.c_step, the path "node:c") against the PyTorch node it replaces
(functional.MDNStep / FirstOrderStep, the path "node") and the reference step (functional.mdn_step): the same
spikes and states bit for bit, gradients to rounding (float64 within 1e-12 of the largest entry, float32 within
1e-4: docs/model.md#tolerances), over every option; where the neurons take it and where not; the backward's
mask of wanted parameter gradients; the finiteness check it does in its forward pass; independence of threads."""

from __future__ import annotations

import warnings

import pytest
import torch

import mdn_snntorch as mdn
from mdn_snntorch import fused
from mdn_snntorch.fused import c_kernels, c_step, dispatch
from mdn_snntorch.surrogate import window

pytestmark = pytest.mark.skipif(c_kernels.library() is None, reason="no C compiler here")

RTOL = {torch.float64: 1e-12, torch.float32: 1e-4}


class Reference(type(window())):
    """The window surrogate under another type: the neuron falls back to the reference step (path "step")."""


def drive(T, shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, *shape, generator=g) * 1.5 + 0.5).to(dtype)


def run(make, x, kernel="auto"):
    """A neuron made by ``make`` run step by step over ``x`` with the states passed explicitly (tutorial style):
    its path, the spikes and states stacked, and the gradients of a weighted sum of them (input, then the
    parameters by name)."""
    with fused.use_kernel(kernel):
        neuron = make()
        xx = x.clone().requires_grad_()
        path = neuron.explain(xx[0]).path
        states = neuron.reset_mem()
        states = states if isinstance(states, tuple) else (states,)
        outs = []
        for x_t in xx:
            spk, *states = neuron(x_t, *states)
            outs.append(torch.stack([spk, *states]))
        out = torch.stack(outs)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
        params = [p for _, p in sorted(neuron.named_parameters())]
        return path, out, torch.autograd.grad((out * w).sum(), [xx, *params])


def assert_grads_close(got, want):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, f"grad {i}"
        scale = max(w.abs().max().item(), 1e-30)
        err = (g - w).abs().max().item()
        assert err <= RTOL[w.dtype] * scale, f"grad {i}: max error {err:.3g} vs scale {scale:.3g}"


def assert_same_step(make, x):
    """node:c equals the PyTorch node bitwise forward and to rounding backward, and the reference step bitwise."""
    (p_c, out_c, g_c), (p_node, out_node, g_node) = run(make, x), run(make, x, kernel="torch")
    assert (p_c, p_node) == ("node:c", "node")
    assert torch.equal(out_c, out_node)
    assert out_c[:, 0].sum() > 0 and (out_c[:, 0] == 0).any()  # some spikes, not all
    assert_grads_close(g_c, g_node)
    return out_c, g_c


MDN_OPTIONS = {
    "preset": dict(theta="2-FS"),
    "substeps": dict(theta="2-RS", dt=0.7, substeps=3),
    "no-sigmoid": dict(theta="2-FS", input_sigmoid=False),
    "undetached": dict(theta="2-FS", detach_reset=False),
    "undetached-substeps": dict(theta="2-RS", detach_reset=False, substeps=2, dt=0.5),
    "graded": dict(theta="2-FS", graded_spikes_factor=1.5),
    "learnable": dict(
        theta="init",
        num_neurons=700,
        learn_theta=True,
        learn_threshold=True,
        graded_spikes_factor=1.5,
        learn_graded_spikes_factor=True,
    ),  # fmt: skip
    "learnable-undetached": dict(theta="init", num_neurons=700, learn_theta=True, learn_threshold=True, detach_reset=False),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("options", list(MDN_OPTIONS.values()), ids=list(MDN_OPTIONS))
def test_the_mdn_c_step_is_the_pytorch_node(dtype, options):
    make = lambda: mdn.MDN(**options, dtype=dtype)  # noqa: E731
    out, grads = assert_same_step(make, drive(12, (3, 700), dtype))  # 2,100 elements: rows of 700 neurons, two blocks each
    reference = run(lambda: mdn.MDN(**options, dtype=dtype, spike_grad=Reference()), drive(12, (3, 700), dtype))
    assert reference[0] == "step" and torch.equal(out, reference[1])
    assert_grads_close(grads, reference[2])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "shape, param_shape",
    [((150, 7), (7,)), ((3, 700), (700,)), ((4, 3, 5, 5), (3, 1, 1)), ((4, 3, 5, 5), (3, 5, 5)), ((6, 2, 9), (1, 9))],
    ids=["per-neuron-7", "per-neuron-700", "per-channel", "per-pixel", "leading-1"],
)
def test_per_neuron_and_per_channel_theta_in_c(dtype, shape, param_shape):
    """Per-neuron theta (different per neuron) of periods shorter and longer than the kernels' blocks of 512, per
    channel (expanded for the kernels), per pixel, and a shape with a leading 1; their gradients come back in their
    own shapes."""
    theta = [torch.tensor(t, dtype=dtype).expand(param_shape).clone() for t in (0.06, 0.219, -0.065, 0.05)]
    theta[0] = theta[0] + torch.linspace(-0.01, 0.02, theta[0].numel(), dtype=dtype).view(param_shape)
    make = lambda: mdn.MDN([torch.nn.Parameter(t.clone()) for t in theta], param_shape=param_shape, learn_theta=True, dtype=dtype)  # noqa: E731
    _, grads = assert_same_step(make, drive(10, shape, dtype))
    assert all(g.shape == param_shape and g.abs().sum() > 0 for g in grads[1:])


@pytest.mark.parametrize("neuron", ["mdn", "first-order"])
@pytest.mark.parametrize("detach_reset", [True, False], ids=["detached", "undetached"])
@pytest.mark.parametrize("input_sigmoid", [True, False], ids=["sigmoid", "linear"])
@pytest.mark.parametrize("learn", [True, False], ids=["param-grads", "no-param-grads"])
def test_every_combination_of_reset_sigmoid_and_parameter_gradients_in_c(neuron, detach_reset, input_sigmoid, learn):
    """The C step's backward is compiled once per combination of the undetached reset, the input sigmoid and the
    parameter gradients: each is the PyTorch node's, the parameters' gradients included where they are learnable."""
    opts = dict(detach_reset=detach_reset, input_sigmoid=input_sigmoid, dtype=torch.float64)
    if neuron == "mdn":
        make = lambda: mdn.MDN(theta="init", num_neurons=700, learn_theta=learn, learn_threshold=learn, **opts)  # noqa: E731
    else:
        make = lambda: mdn.FirstOrder(num_neurons=700, learn_decay=learn, learn_threshold=learn, **opts)  # noqa: E731
    _, grads = assert_same_step(make, drive(12, (3, 700), torch.float64))
    assert len(grads) == (1 + (5 if neuron == "mdn" else 2) if learn else 1)
    assert all(g.abs().sum() > 0 for g in grads)


FIRST_ORDER_OPTIONS = {
    "default": dict(),
    "undetached": dict(detach_reset=False),
    "no-sigmoid": dict(input_sigmoid=False),
    "learnable": dict(
        learn_decay=True, num_neurons=700, learn_threshold=True, graded_spikes_factor=2.0, learn_graded_spikes_factor=True
    ),  # fmt: skip
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("options", list(FIRST_ORDER_OPTIONS.values()), ids=list(FIRST_ORDER_OPTIONS))
def test_the_first_order_c_step_is_the_pytorch_node(dtype, options):
    make = lambda: mdn.FirstOrder(**options, dtype=dtype)  # noqa: E731
    assert_same_step(make, drive(12, (3, 700), dtype))


# ---------------------------------------------------------------------------------------------------
# where the path is taken
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def spy(monkeypatch):
    calls = []
    for node in (c_step.MDNCStep, c_step.FirstOrderCStep):
        real = node.apply
        monkeypatch.setattr(node, "apply", lambda *a, _real=real: calls.append(1) or _real(*a))
    return calls


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_the_neurons_run_the_c_step_where_explain_says(spy, cls):
    x = torch.randn(4, 5)
    for kwargs in (dict(), dict(dtype=torch.float64), dict(dtype=torch.bfloat16), dict(spike_grad=Reference())):
        neuron = cls(**kwargs)
        xs = x.to(kwargs.get("dtype", torch.float32))
        before = len(spy)
        neuron(xs)
        assert (len(spy) > before) == (neuron.explain(xs).path == "node:c"), kwargs


@pytest.fixture
def packings(monkeypatch):
    """The calls of c_step.step_params: one each time a neuron decides (again) how its C step runs."""
    calls = []
    real = c_step.step_params
    monkeypatch.setattr(c_step, "step_params", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_the_c_step_is_decided_once_and_again_when_what_it_depends_on_changes(spy, packings, cls):
    """The path and the packed parameters are remembered from the first C step: the next steps of the same shape
    and dtype skip them; another shape or dtype, a forced kernel, another surrogate or a parameter changed or
    replaced decides again (and each such step runs what explain says)."""
    neuron = cls()
    for _ in range(4):
        neuron(torch.randn(4, 5))
    assert len(packings) == 1 and len(spy) == 4
    neuron(torch.randn(3, 5))  # another shape
    neuron(torch.randn(3, 5))
    assert len(packings) == 2
    with fused.use_kernel("torch"):
        neuron(torch.randn(3, 5))
        assert len(spy) == 6 and neuron.explain(torch.randn(3, 5)).path == "node"
    neuron(torch.randn(3, 5))  # back to the remembered C step
    assert len(packings) == 2 and len(spy) == 7
    with torch.no_grad():
        neuron.threshold.add_(0.1)  # in place: its version changes
    neuron(torch.randn(3, 5))
    assert len(packings) == 3
    neuron.register_buffer("threshold", torch.tensor(0.3))  # replaced
    neuron(torch.randn(3, 5))
    assert len(packings) == 4
    neuron.reset_mem()
    neuron.spike_grad = Reference()  # the reference step from now on
    neuron(torch.randn(3, 5))
    assert len(spy) == 9 and neuron.explain(torch.randn(3, 5)).path == "step"
    neuron.double()
    neuron.spike_grad = mdn.window()
    neuron.reset_mem()
    neuron(torch.randn(3, 5, dtype=torch.float64))
    assert len(packings) == 5 and len(spy) == 10


def test_a_remembered_c_step_reads_parameters_changed_in_place():
    """Per-channel theta are expanded into a copy for the kernels: a change in place (as an optimizer's) is packed
    again before the next step, which equals the PyTorch node's step with the new values, bit for bit."""
    theta = [torch.full((3, 1, 1), t) for t in (0.06, 0.219, -0.065, 0.05)]
    make = lambda: mdn.MDN([torch.nn.Parameter(t.clone()) for t in theta], param_shape=(3, 1, 1), learn_theta=True)  # noqa: E731
    x = drive(3, (2, 3, 4, 4), torch.float32)
    outs = []
    for kernel in ("auto", "torch"):
        neuron = make()
        neuron(x[0]), neuron(x[1])
        with torch.no_grad():
            neuron.theta_a.mul_(3.0)
        with fused.use_kernel(kernel):
            assert neuron.explain(x[2]).path == ("node:c" if kernel == "auto" else "node")
            outs.append(neuron(x[2]))
    assert all(torch.equal(a, b) for a, b in zip(*outs))
    assert not torch.equal(outs[0][2], make()(x[0])[2])  # (the states differ from a first step's)


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_a_neuron_that_ran_a_c_step_can_be_copied_and_saved(cls, tmp_path):
    """The remembered C step stays with its neuron: a deep copy, a pickle and torch.save of a neuron that ran one
    work, and each copy's next step equals the original's."""
    import copy
    import pickle

    neuron, x = cls(), torch.randn(2, 4, 5)
    neuron(x[0])
    torch.save(neuron, tmp_path / "neuron.pt")
    copies = [copy.deepcopy(neuron), pickle.loads(pickle.dumps(neuron)), torch.load(tmp_path / "neuron.pt", weights_only=False)]
    want = neuron(x[1])
    for twin in copies:
        got = twin(x[1])
        assert twin.explain(x[1]).path == "node:c" and all(torch.equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_a_neuron_pickled_before_the_remembered_step_existed_still_runs(cls):
    """A neuron unpickled from a version without the remembered C step (its attribute absent) makes it on first use
    and gives a fresh neuron's results."""
    old, x = cls(), torch.randn(3, 4, 5)
    del old.__dict__["_c_plan"]
    new = cls()
    assert all(torch.equal(a, b) for a, b in zip(old(x[0]), new(x[0])))
    assert torch.equal(old.multi_step(x), new.multi_step(x))


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda m: m.setattr(dispatch, "config", {**dispatch.config, "kernel": "torch"}), "use_kernel('torch')"),
        (lambda m: (m.setattr(c_kernels, "_state", {}), m.setenv("MDN_SNNTORCH_NO_CEXT", "1")), "MDN_SNNTORCH_NO_CEXT is set"),
        (lambda m: m.setattr(torch.compiler, "is_compiling", lambda: True), "under torch.compile"),
    ],
    ids=["use_kernel", "NO_CEXT", "compiling"],
)
def test_each_reason_keeps_the_pytorch_node(monkeypatch, setup, words):
    neuron, x = mdn.MDN("2-FS"), torch.randn(4, 5)
    setup(monkeypatch)
    why = dispatch.c_step_rejection(neuron, x, *neuron._step_operands(x))
    assert words in why
    if words != "under torch.compile":  # explain itself runs eagerly
        route = neuron.explain(x)
        assert route.path == "node" and words in dict(route.rejected)["node:c"]


def test_a_forced_c_kernel_that_cannot_run_a_single_step_raises_as_for_sequences(monkeypatch):
    """use_kernel("c") does not quietly run a single step elsewhere: without the kernels, or for a dtype they do
    not take, the step raises as the fused ops do, naming the reason."""
    with fused.use_kernel("c"), pytest.raises(RuntimeError, match="take float32 and float64"):
        mdn.MDN("2-FS", dtype=torch.bfloat16)(torch.randn(4, 5, dtype=torch.bfloat16))
    monkeypatch.setattr(c_kernels, "_state", {})
    monkeypatch.setenv("MDN_SNNTORCH_NO_CEXT", "1")
    for neuron in (mdn.MDN("2-FS"), mdn.FirstOrder()):
        with fused.use_kernel("c"), pytest.raises(RuntimeError, match="MDN_SNNTORCH_NO_CEXT is set"):
            neuron(torch.randn(4, 5))
        with fused.use_kernel("c"), pytest.raises(RuntimeError, match="MDN_SNNTORCH_NO_CEXT is set"):
            neuron.multi_step(torch.randn(3, 4, 5))
        neuron(torch.randn(4, 5))  # unforced, the step runs the PyTorch node


def test_half_precision_and_a_state_of_another_dtype_keep_the_pytorch_node():
    route = mdn.MDN("2-FS", dtype=torch.bfloat16).explain(torch.randn(4, 5, dtype=torch.bfloat16))
    assert route.path == "node" and "take float32 and float64" in dict(route.rejected)["node:c"]
    neuron = mdn.MDN("2-FS")
    neuron(torch.randn(4, 5))
    neuron.mem = neuron.mem.double()
    route = neuron.explain(torch.randn(4, 5))
    assert route.path == "node" and "the state differs from the input" in dict(route.rejected)["node:c"]
    spk, u, mem = neuron(torch.randn(4, 5))  # and runs there, promoting as the PyTorch node always did
    assert mem.dtype == torch.float64


def test_a_compiled_neuron_runs_the_pytorch_node_without_graph_breaks():
    torch._dynamo.reset()
    net = torch.nn.Sequential(torch.nn.Linear(5, 6), mdn.MDN("2-FS", init_hidden=True))
    explanation = torch._dynamo.explain(net)(torch.randn(3, 5))
    assert explanation.graph_break_count == 0, explanation.break_reasons


# ---------------------------------------------------------------------------------------------------
# the backward's mask, the finiteness check, threads
# ---------------------------------------------------------------------------------------------------
def _node_grads(dtype, wanted: set[int]):
    """MDNCStep over one step of [20, 30] with parameter q requiring grad for q in ``wanted``: all its gradients."""
    g = torch.Generator().manual_seed(3)
    x, v, u = (torch.randn(20, 30, generator=g, dtype=dtype) * s + o for s, o in ((1.5, 0.5), (0.3, 0.2), (0.05, 0.08)))
    values = [torch.tensor(p, dtype=dtype) for p in (0.06, 0.219, -0.065, 0.05)] + [torch.full((30,), 0.5, dtype=dtype)]
    values.append(torch.tensor(1.5, dtype=dtype))
    params = [p.clone().requires_grad_(q in wanted) for q, p in enumerate(values)]
    x, v, u = (t.requires_grad_() for t in (x, v, u))
    packed = c_step.step_params(params, (30,))
    outs = c_step.MDNCStep.apply(x, v, u, *params, packed, 1.0, 1, 0.5, True, False, c_step.Finite(False, False))
    weights = [torch.randn(o.shape, generator=g, dtype=dtype) for o in outs]
    targets = [x, v, u, *(p for q, p in enumerate(params) if q in wanted)]
    return torch.autograd.grad(sum((o * w).sum() for o, w in zip(outs, weights)), targets)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_asked_for_are_those_of_the_full_backward(dtype):
    """The mask only skips: any subset of the parameters gets exactly the gradients the full backward gives them."""
    full = _node_grads(dtype, set(range(6)))
    assert all(g.abs().sum() > 0 for g in full)
    for wanted in ({1}, {0, 4}, {2, 3, 5}, set()):
        some = _node_grads(dtype, wanted)
        assert all(torch.equal(a, b) for a, b in zip(some[:3], full[:3]))
        assert all(torch.equal(a, full[3 + q]) for a, q in zip(some[3:], sorted(wanted)))


def test_the_kernel_leaves_the_rows_nobody_asked_for_unwritten():
    g = torch.Generator().manual_seed(0)
    I, v, u, gs = (torch.rand(4, 8, generator=g) for _ in range(4))
    params = c_step.step_params([torch.tensor(p) for p in (0.06, 0.219, -0.065, 0.05, 0.5, 1.0)], (8,))
    args = (I, v, u, params.rows, params.N, params.shared, gs, None, None, 1.0, 1, 0.5, True, False)
    *_, all_rows = c_kernels.mdn_step_backward(*args, c_kernels.ALL_MDN)
    *_, two = c_kernels.mdn_step_backward(*args, 0b010010)
    assert torch.equal(two[[1, 4]], all_rows[[1, 4]])
    assert c_kernels.mdn_step_backward(*args, 0)[3] is None


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_input_raises_in_c(cls, bad):
    neuron = cls()
    x = torch.randn(4, 5)
    assert neuron.explain(x).path == "node:c"
    neuron(x)
    x[2, 3] = bad
    mem = neuron.mem
    with pytest.raises(ValueError, match="input contains NaN or inf"):
        neuron(x)
    assert neuron.mem is mem  # the state is left as it was
    cls(check_input=False)(x)  # unchecked: runs


def _counted_step(neuron: str, dtype, shape, check_x: bool, check_v: bool, threads: int):
    """One C forward step on ``shape`` with NaN and inf planted in the input (7 values) and in the membrane it
    starts from (5), spread over the blocks: the two counts, and the outputs."""
    g = torch.Generator().manual_seed(5)
    x, v = torch.randn(*shape, generator=g, dtype=dtype), torch.randn(*shape, generator=g, dtype=dtype) * 0.1
    M, N = x.numel(), shape[-1]
    bad = torch.tensor([float("nan"), float("inf"), -float("inf")] * 3, dtype=dtype)
    x.view(-1)[[0, N - 1, N, 511, 512, M // 2, M - 1]] = bad[:7]
    v.view(-1)[[3, N + 1, M // 3, M - 2, 2 * M // 3]] = bad[:5]
    I, u = torch.sigmoid(x), torch.zeros_like(v)
    counts = c_step.Finite(check_x, check_v).counts
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if neuron == "mdn":
            p = c_step.step_params([torch.tensor(q, dtype=dtype) for q in (0.06, 0.219, -0.065, 0.05, 0.5, 1.0)], (N,))
            out = c_kernels.mdn_step_forward(x, I, v, u, p.rows, p.N, p.shared, 1.0, 1, check_x, check_v, counts)
        else:
            p = c_step.step_params([torch.tensor(q, dtype=dtype) for q in (0.9, 0.5, 0.0, 1.0)], (N,))
            out = c_kernels.first_order_step_forward(x, I, v, p.rows, p.N, p.shared, check_x, check_v, counts)
    finally:
        torch.set_num_threads(before)
    return (counts[0], counts[1]), out


@pytest.mark.parametrize("neuron", ["mdn", "first-order"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(64, 700), (400, 60)])  # blocks within a row; blocks of whole rows
def test_the_c_step_counts_each_non_finite_value_in_its_own_loop(neuron, dtype, shape):
    """The forward counts the input's and the membrane's non-finite values within the step's loop, each only where
    asked for, the same on one thread and on two; the outputs do not depend on what was counted."""
    _, want = _counted_step(neuron, dtype, shape, False, False, 1)
    for check_x, check_v in ((True, True), (True, False), (False, True), (False, False)):
        for threads in (1, 2):
            counts, out = _counted_step(neuron, dtype, shape, check_x, check_v, threads)
            assert counts == (7 if check_x else 0, 5 if check_v else 0), (check_x, check_v, threads)
            for a, b in zip(out, want):
                torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_a_non_finite_membrane_warns_once_in_c():
    neuron = mdn.MDN("2-FS")
    x = torch.randn(4, 5)
    with pytest.warns(RuntimeWarning, match="membrane potential is not finite"):
        neuron(x, torch.zeros(4, 5), torch.full((4, 5), float("nan")))
    assert neuron.explain(x).path == "node:c"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neuron(x, torch.zeros(4, 5), torch.full((4, 5), float("nan")))


@pytest.mark.parametrize("cls", [mdn.MDN, mdn.FirstOrder])
def test_the_c_step_does_not_depend_on_the_threads(cls):
    """A step large enough to run on several threads gives the same bits on one and on two."""
    x = drive(3, (64, 700), torch.float32)  # 44,800 elements per step
    kwargs = dict(num_neurons=700, learn_threshold=True)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(run(lambda: cls(**kwargs), x))
    finally:
        torch.set_num_threads(before)
    (p1, o1, g1), (p2, o2, g2) = results
    assert p1 == p2 == "node:c" and torch.equal(o1, o2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
