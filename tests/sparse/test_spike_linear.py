"""The event-driven Linear layer (mdn_snntorch.sparse) against nn.Linear.

Forward and gradients (weight, bias, input when it requires one) at input densities 0, 1 %, 13 %, 50 %,
100 % in float64 and float32, with the event-driven path forced (``dense_above=1``) and with the default
rule; non-binary inputs (graded spikes, counts, reals, NaN and infinities); the routing to the dense
product (above the density threshold, CUDA-less dtypes, autocast, no compiler); drop-in compatibility
(initialisation, state dict, shapes); the custom ops under opcheck and torch.compile; the C build.

Tolerances: the event-driven sums skip the zero terms and add the others in another order than the dense
product, so results agree to rounding: float64 within 1e-12 of the largest entry, float32 within 1e-5.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import tomllib
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import mdn_snntorch as mdn
from mdn_snntorch.pipeline import model as model_module
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.sparse import DENSE_ABOVE, SpikeLinear, c_kernels, linear, spike_linear

HAVE_C = c_kernels.library() is not None
needs_c = pytest.mark.skipif(not HAVE_C, reason="no C compiler here")
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}
DENSITIES = [0.0, 0.01, 0.13, 0.5, 1.0]


def assert_close(got, want, what=""):
    assert got.shape == want.shape and got.dtype == want.dtype, what
    if not want.numel():
        return
    scale = max(want.abs().max().item(), 1e-30)
    err = (got - want).abs().max().item()
    assert err <= RTOL[want.dtype] * scale, f"{what}: max error {err:.3g} vs scale {scale:.3g}"


def spikes(shape, density, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).to(dtype)


def run(layer, x, g, input_grad):
    """Output and gradients (weight, bias, input) of ``(layer(x) * g).sum()``."""
    x = x.clone().requires_grad_(input_grad)
    layer.zero_grad(set_to_none=True)
    out = layer(x)
    (out * g).sum().backward()
    return out.detach(), layer.weight.grad, layer.bias.grad, x.grad


def counted(monkeypatch, name):
    """A list that grows by one at every call of ``c_kernels.<name>`` (the function still runs)."""
    calls = []
    original = getattr(c_kernels, name)

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(c_kernels, name, counting)
    return calls


@pytest.fixture
def gather_calls(monkeypatch):
    """How many times the event-driven gather ran."""
    return counted(monkeypatch, "gather")


def pair(n_in, n_out, dtype, dense_above=1.0, seed=0):
    torch.manual_seed(seed)
    dense = nn.Linear(n_in, n_out, dtype=dtype)
    return dense, SpikeLinear.from_linear(dense, dense_above=dense_above)


# ---------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------
@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("input_grad", [False, True])
def test_event_driven_path_matches_nn_linear(dtype, density, input_grad, gather_calls, complement_calls):
    dense, event = pair(300, 77, dtype)  # 77 outputs: a partial last vector in both dtypes
    x = spikes((6, 50, 300), density, dtype)
    g = torch.randn(6, 50, 77, dtype=dtype, generator=torch.Generator().manual_seed(1))
    want, got = run(dense, x, g, input_grad), run(event, x, g, input_grad)
    # forward and weight gradient took the event-driven path (the complement-coded forward gathers A first:
    # every input always on is complemented)
    assert len(complement_calls["forward"]) == len(complement_calls["grad"]) == (density == 1.0)
    assert len(gather_calls) == 2 + (density == 1.0)
    for name, a, b in zip(("output", "weight grad", "bias grad", "input grad"), got, want):
        if b is None:
            assert a is None and not input_grad
        else:
            assert_close(a, b, f"{name} at density {density}")
    if density == 0:
        assert torch.equal(got[0], dense.bias.detach().expand_as(got[0])) and not got[1].any()


def rate_coded(T, B, K, dtype, seed=0):
    """Bernoulli spikes of per-input rates over 0..1, most of them high (the square root of a uniform draw),
    half the inputs off (as MNIST's background): many inputs are on at most steps, as a bright pixel."""
    g = torch.Generator().manual_seed(seed)
    rates = torch.rand(B, K, generator=g).sqrt() * (torch.rand(B, K, generator=g) < 0.5)
    return (torch.rand(T, B, K, generator=g) < rates).to(dtype)


def bursts(T, B, K, dtype, seed=0):
    """Half the inputs on for one burst of steps (0.4 T of them, at most 12, at a random start), the others off:
    an input is on at no more than half of a segment's steps, so complementing it saves little, but it changes
    only twice."""
    g = torch.Generator().manual_seed(seed)
    length = min(round(0.4 * T), 12)
    start = torch.randint(0, T - length + 1, (B, K), generator=g)
    t = torch.arange(T)[:, None, None]
    return ((t >= start) & (t < start + length) & (torch.rand(B, K, generator=g) < 0.5)).to(dtype)


@pytest.fixture
def run_calls(monkeypatch):
    """How many times the forward's carried run sums were added (the run coding over time ran)."""
    return counted(monkeypatch, "runs_add")


@pytest.fixture
def complement_calls(monkeypatch):
    """How many times the forward (``"forward"``) and the weight gradient (``"grad"``) took the complement coding."""
    return {"forward": counted(monkeypatch, "complement_rows"), "grad": counted(monkeypatch, "complement_columns")}


@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T", [8, 20, 33, 70])
@pytest.mark.parametrize("n_out", [5, 16, 77, 500])
def test_complement_coded_product_matches_nn_linear(dtype, T, n_out, complement_calls):
    """[T, B, K] spikes with many inputs on at most steps take the complement coding in the forward (a
    complemented input is its segment's sum less its off steps) and in the weight gradient: the same product
    and gradients as nn.Linear to rounding. 33 and 70 steps span two and three segments; 5 outputs are
    narrower than a vector, 77 and 500 end in a partial one."""
    dense, event = pair(130, n_out, dtype)
    x = rate_coded(T, 30, 130, dtype)
    g = torch.randn(T, 30, n_out, dtype=dtype, generator=torch.Generator().manual_seed(2))
    for name, a, b in zip(("output", "weight grad", "bias grad", "input grad"), run(event, x, g, True), run(dense, x, g, True)):
        assert_close(a, b, f"{name}, {T} steps")
    assert len(complement_calls["forward"]) == 1 and len(complement_calls["grad"]) == 1


@needs_c
@pytest.mark.parametrize("shape", [(20, 1, 130), (20, 3, 4, 130)])
def test_complement_coding_of_one_chain_and_of_more_dimensions(shape, complement_calls):
    """One sample (one chain) and a [T, B, C, K] input, whose chains are the B x C rows of a step."""
    dense, event = pair(130, 40, torch.float64)
    x = rate_coded(shape[0], math.prod(shape[1:-1]), 130, torch.float64, seed=4).reshape(shape)
    g = torch.randn(*shape[:-1], 40, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for name, a, b in zip(("output", "weight grad", "bias grad", "input grad"), run(event, x, g, True), run(dense, x, g, True)):
        assert_close(a, b, f"{name}, {shape}")
    assert len(complement_calls["forward"]) == len(complement_calls["grad"]) == 1


@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("T", [8, 20, 33, 70])
@pytest.mark.parametrize("n_out", [5, 16, 77, 500])
def test_run_coded_forward_matches_nn_linear(dtype, T, n_out, run_calls):
    """[T, B, K] spikes whose inputs stay on for runs of steps, and off for others, take the run coding over
    time (a run-coded input is added when it turns on, subtracted when it turns off, its sum carried between):
    the same product as nn.Linear to rounding, gradients included. 33 and 70 steps span two and three
    segments (the carried sums start again every RUN_STEPS steps)."""
    dense, event = pair(130, n_out, dtype)
    x = bursts(T, 30, 130, dtype)
    g = torch.randn(T, 30, n_out, dtype=dtype, generator=torch.Generator().manual_seed(2))
    for name, a, b in zip(("output", "weight grad", "bias grad", "input grad"), run(event, x, g, True), run(dense, x, g, True)):
        assert_close(a, b, f"{name}, {T} steps")
    assert len(run_calls) == 1


@needs_c
def test_each_coding_runs_only_where_it_pays(run_calls, complement_calls):
    """Independent spikes (13 %) are on at few steps and change more often than they are on: the direct sums. A
    2-D input has no time axis, a one-step sequence nothing to complement or carry, graded values no on and off:
    the direct sums. Rate-coded [T, B, K] spikes: the complement coding, forward and weight gradient. Bursts:
    the run coding in the forward, the direct sums in the weight gradient."""
    _, event = pair(130, 20, torch.float32)
    rates = rate_coded(20, 30, 130, torch.float32)
    for x in (spikes((20, 30, 130), 0.13, torch.float32), rates.reshape(600, 130), rates[:1], rates * 0.5):
        event(x).sum().backward()
    assert not run_calls and not complement_calls["forward"] and not complement_calls["grad"]
    event(rates).sum().backward()
    assert not run_calls and len(complement_calls["forward"]) == len(complement_calls["grad"]) == 1
    event(bursts(20, 30, 130, torch.float32)).sum().backward()
    assert len(run_calls) == 1 and len(complement_calls["forward"]) == len(complement_calls["grad"]) == 1


@needs_c
def test_without_time_coding_every_step_is_summed_directly(run_calls, complement_calls):
    """``time_coding=False`` (the layer's, or the functional form's): rate-coded and burst [T, B, K] spikes take
    the direct sums, each output row the left-to-right sum of its active inputs' columns, as for 2-D rows."""
    dense, _ = pair(130, 20, torch.float32)
    event = SpikeLinear.from_linear(dense, time_coding=False)
    assert "time_coding=False" in repr(event)
    for x in (rate_coded(20, 30, 130, torch.float32), bursts(20, 30, 130, torch.float32)):
        got = event(x)
        assert torch.equal(got, spike_linear(x.reshape(600, 130), dense.weight, dense.bias).reshape(20, 30, 20))
        assert torch.equal(got, spike_linear(x, dense.weight, dense.bias, time_coding=False))
        got.sum().backward()
    assert not run_calls and not complement_calls["forward"] and not complement_calls["grad"]


@needs_c
def test_the_complement_coding_needs_int32_indices_for_its_rows(monkeypatch, complement_calls):
    """Its lists index the rows and then the segments' sums with int32: rows plus segments must stay below 2**31
    (600 rows of 30 chains over 20 steps: 630), and where they would not, the layer keeps the other paths."""
    from mdn_snntorch.sparse import ops

    assert ops._complement_fits(600, 30, 20) and ops._complement_fits(2**31 - 31, 30, 20)
    assert not ops._complement_fits(2**31 - 30, 30, 20)
    x = rate_coded(20, 30, 130, torch.float32)
    dense, event = pair(130, 20, torch.float32)
    monkeypatch.setattr(ops, "_complement_fits", lambda R, S, steps: False)
    assert_close(event(x), dense(x))
    assert not complement_calls["forward"]


@needs_c
def test_explain_names_the_path_each_input_takes_and_it_is_the_one_taken(gather_calls, run_calls, complement_calls):
    """``SpikeLinear.explain(x)`` scans ``x`` and says which product a call runs and why: the complement coding for
    rate-coded spikes, the run coding for bursts, the direct sums for independent spikes, 2-D rows, one step,
    graded values or time_coding=False, the dense product above dense_above (0.4 here), torch.nn.functional.linear for a
    dtype the kernels do not take. Each call then runs what it said."""
    dense, event = pair(130, 20, torch.float32, dense_above=0.4)
    rates, burst = rate_coded(20, 30, 130, torch.float32), bursts(20, 30, 130, torch.float32)
    cases = [
        (rates, "complement", "the complement coding over 20 steps"),
        (burst, "runs", "the run coding over 20 steps"),
        (spikes((20, 30, 130), 0.13, torch.float32), "direct", "neither coding saves a quarter"),
        (rates.reshape(600, 130), "direct", "no time dimension"),
        (rates[:1], "direct", "one step"),
        (rates * 0.5, "direct", "values other than 0 and 1"),
        (spikes((20, 30, 130), 0.5, torch.float32), "dense", "above dense_above=0.4"),
    ]
    for x, path, why in cases:
        route = event.explain(x)
        assert route.path == path and why in route.reason and str(route).startswith(f"{path}: "), route
        runs, complements, gathers = len(run_calls), len(complement_calls["forward"]), len(gather_calls)
        assert_close(event(x), dense(x))
        assert (len(run_calls) - runs, len(complement_calls["forward"]) - complements) == (path == "runs", path == "complement")
        assert (len(gather_calls) > gathers) == (path != "dense")
    event.time_coding = False
    assert event.explain(rates) == ("direct", event.explain(rates).reason) and "time_coding=False" in event.explain(rates).reason
    route = event.explain(rates.bfloat16())
    assert route.path == "functional" and "float32 or float64" in route.reason


def _bits(words, K):
    """int64 words [rows, W] as bool [rows, K]"""
    return ((words[:, :, None] >> torch.arange(64)) & 1).reshape(words.shape[0], -1)[:, :K].bool()


@contextlib.contextmanager
def every_pass_on(threads, monkeypatch):
    """Every pass of the kernels run on ``threads`` threads, whatever its size."""
    monkeypatch.setattr(c_kernels, "_SCAN_MIN_WORK", 1)
    monkeypatch.setattr(c_kernels, "_PARALLEL_MIN_WORK", 1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def segmented_input():
    """``(T, S, K, x [T, S, K], mask)``: rate-coded spikes over 40 steps (segments of 32 and 8 steps) of 7 chains,
    130 inputs (a partial mask word)."""
    T, S, K = 40, 7, 130
    x = rate_coded(T, S, K, torch.float32, seed=3)
    return T, S, K, x, c_kernels.scan_rows(x.reshape(T * S, K))[0]


@needs_c
@pytest.mark.parametrize("threads", [1, 3])
def test_complement_coding_splits_each_segment_by_its_counts(threads, monkeypatch):
    """An input of one chain's segment is complemented when it is off at fewer steps, plus one, than it is on;
    the split counts the weight gradient's entries (off steps plus one, or on steps); the forward's rows list
    each input on and not complemented (+1), each complemented one off (-1), then the segment's sum A; A's
    lists are the complemented inputs; the weight gradient's columns list the same row entries by column,
    then the segments' sums Tot, whose rows follow the output gradient's (segmented_input)."""
    with every_pass_on(threads, monkeypatch):
        T, S, K, x, mask = segmented_input()
        comp, entries = c_kernels.complement_split(mask, K, S, T)
        steps = c_kernels.run_steps()
        segs = list(range(0, T, steps))
        on = torch.stack([x[t0 : t0 + steps].sum(0) for t0 in segs], 1)  # [S, segments, K]
        n = torch.tensor([len(range(t0, min(t0 + steps, T))) for t0 in segs])[None, :, None]
        want = n - on + 1 < on
        assert torch.equal(_bits(comp, K), want.reshape(-1, K)) and want.any() and not want.all()
        assert entries == int(torch.where(want, n - on + 1, on).sum())
        coded = want.repeat_interleave(steps, dim=1)[:, :T].transpose(0, 1).reshape(T * S, K)  # per row
        flat = x.reshape(T * S, K) != 0
        sign = torch.where(flat, 1.0, -1.0)
        ptr, idx, val, aptr, aidx = c_kernels.complement_rows(mask, comp, torch.float32, K, S, T)
        seg_of_row = (torch.arange(T * S) % S) * len(segs) + torch.arange(T * S) // S // steps
        listed = flat ^ coded
        r, k = listed.nonzero(as_tuple=True)
        has_a = want.reshape(-1, K).any(1)[seg_of_row]
        for row in (0, 5, 101, T * S - 1):  # a few rows: their inputs, then A's row
            mine = k[r == row]
            a_row = [K + int(seg_of_row[row])] if has_a[row] else []
            assert idx[ptr[row] : ptr[row + 1]].tolist() == mine.tolist() + a_row
            assert val[ptr[row] : ptr[row + 1]].tolist() == sign[row, mine].tolist() + [1.0] * len(a_row)
        assert torch.equal(ptr[1:], (listed.sum(1) + has_a).cumsum(0))
        assert torch.equal(aidx.long(), want.reshape(-1, K).nonzero(as_tuple=True)[1])
        assert torch.equal(aptr[1:], want.reshape(-1, K).sum(1).cumsum(0))
        cptr, cidx, cval = c_kernels.complement_columns(mask, comp, entries, torch.float32, K, S, T)
        for col in (0, 63, 64, K - 1):
            rows = listed[:, col].nonzero().flatten()
            tot = want.reshape(-1, K)[:, col].nonzero().flatten() + T * S
            assert cidx[cptr[col] : cptr[col + 1]].tolist() == rows.tolist() + tot.tolist()
            assert cval[cptr[col] : cptr[col + 1]].tolist() == sign[rows, col].tolist() + [1.0] * len(tot)
        assert int(cptr[K]) == entries
        g = torch.randn(T * S, 9)
        D = c_kernels.complement_grad_rows(g, S, T)
        tot = torch.stack([g.reshape(T, S, 9)[t0 : t0 + steps].sum(0) for t0 in segs], 1).reshape(-1, 9)
        assert torch.equal(D[: T * S], g)
        torch.testing.assert_close(D[T * S :], tot, rtol=1e-6, atol=1e-6)


@needs_c
@pytest.mark.parametrize("threads", [1, 3])
def test_run_coding_splits_each_segment_by_its_changes(threads, monkeypatch):
    """An input of one chain's segment is run coded when it changes (on after off, off after on; on at the
    segment's first step) fewer times than it is on; its row entries are then its changes, +1 on and -1 off,
    and the other inputs' entries the steps they are on (segmented_input)."""
    with every_pass_on(threads, monkeypatch):
        T, S, K, x, mask = segmented_input()
        carried = c_kernels.runs_split(mask, K, S, T)
        bits = _bits(carried, K)
        steps = c_kernels.run_steps()
        want_carried = torch.zeros(S, -(-T // steps), K, dtype=torch.bool)
        delta = torch.zeros(T, S, K)  # the run entries' values
        for j, t0 in enumerate(range(0, T, steps)):
            seg = x[t0 : t0 + steps]
            before_seg = torch.cat([torch.zeros(1, S, K), seg[:-1]])
            changes = (seg != before_seg).sum(0)
            want_carried[:, j] = changes < seg.sum(0)
            delta[t0 : t0 + steps] = seg - before_seg
        assert torch.equal(bits, want_carried.reshape(-1, K)) and want_carried.any() and not want_carried.all()
        dptr, didx, rptr, ridx, rval = c_kernels.runs_rows(mask, carried, torch.float32, K, S, T)
        coded = want_carried.repeat_interleave(steps, dim=1)[:, :T].transpose(0, 1)  # [T, S, K]
        direct = (x != 0) & ~coded
        runs = (delta != 0) & coded
        r, k = direct.reshape(T * S, K).nonzero(as_tuple=True)
        assert torch.equal(didx.long(), k) and torch.equal(dptr[1:], direct.reshape(T * S, K).sum(1).cumsum(0))
        r, k = runs.reshape(T * S, K).nonzero(as_tuple=True)
        assert torch.equal(ridx.long(), k) and torch.equal(rval, delta.reshape(T * S, K)[r, k])
        assert torch.equal(rptr[1:], runs.reshape(T * S, K).sum(1).cumsum(0))
        assert c_kernels.runs_changes(mask, K, S, T) == int((delta != 0).sum())


@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_out", [1, 3, 8, 16, 33, 64, 130, 500])
def test_every_output_width(dtype, n_out):
    """Widths below one vector (plain loops), of whole vectors, and with a partial (overlapped) last vector,
    across block boundaries."""
    dense, event = pair(40, n_out, dtype)
    x = spikes((64, 40), 0.2, dtype, seed=n_out)
    g = torch.randn(64, n_out, dtype=dtype)
    for a, b in zip(run(event, x, g, True), run(dense, x, g, True)):
        assert_close(a, b, f"width {n_out}")


@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_non_binary_inputs_are_multiplied_in(dtype, gather_calls):
    """Graded spikes, spike counts, negative and fractional values: the event-driven path multiplies each
    nonzero value in (decision: accepted, not refused or routed densely; only the density decides)."""
    dense, event = pair(120, 40, dtype)
    gen = torch.Generator().manual_seed(2)
    mask = torch.rand(200, 120, generator=gen) < 0.1
    for values in (
        1.5 * mask,  # graded spikes (graded_spikes_factor)
        torch.randint(0, 4, (200, 120), generator=gen) * mask,  # small integers (counts)
        torch.randn(200, 120, generator=gen) * mask,  # any real numbers
    ):
        x = values.to(dtype)
        g = torch.randn(200, 40, dtype=dtype, generator=gen)
        for a, b in zip(run(event, x, g, True), run(dense, x, g, True)):
            assert_close(a, b, "non-binary input")
    assert len(gather_calls) == 6


@needs_c
def test_nan_and_infinity_propagate_as_in_nn_linear():
    dense, event = pair(30, 7, torch.float64)
    x = spikes((5, 30), 0.2, torch.float64)
    x[1, 3], x[2, 4], x[3, 5], x[3, 6] = float("nan"), float("inf"), float("inf"), float("-inf")
    want, got = dense(x), event(x)
    assert torch.equal(torch.isnan(got), torch.isnan(want)) and torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    assert_close(got[finite], want[finite])


@needs_c
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("n_out", [70, 300])
def test_results_do_not_depend_on_the_thread_count(monkeypatch, binary, n_out):
    """Each output row (and each weight-gradient column) is summed by one thread in a fixed order; every
    pass (scan, row lists, column lists, gather) runs on 1 and on 3 threads here, whatever the sizes. The
    weight gradient's threads take blocks of columns at once (2 blocks of 70 outputs, 5 of 300), each
    with its own partial sums."""
    x = spikes((500, 300), 0.13, torch.float32) * (1 if binary else torch.randn(500, 300))
    same_on_1_and_3_threads(monkeypatch, x, n_out)


@needs_c
def test_run_coded_results_do_not_depend_on_the_thread_count(monkeypatch, run_calls):
    """Each work item of the carried sums is one chain and one block of columns, summed in step order."""
    same_on_1_and_3_threads(monkeypatch, bursts(40, 30, 300, torch.float32), 300)
    assert run_calls


@needs_c
def test_complement_coded_results_do_not_depend_on_the_thread_count(monkeypatch, complement_calls):
    """Each output row and each weight-gradient column is one gather's sum, in a fixed order; A and Tot are summed
    per segment in step order."""
    same_on_1_and_3_threads(monkeypatch, rate_coded(40, 30, 300, torch.float32), 300)
    assert complement_calls["forward"] and complement_calls["grad"]


def same_on_1_and_3_threads(monkeypatch, x, n_out):
    """Output, weight and bias gradients of a SpikeLinear on ``x``, equal bit for bit on 1 and on 3 threads, with
    every pass threaded whatever its size."""
    _, event = pair(x.shape[-1], n_out, torch.float32)
    g = torch.randn(*x.shape[:-1], n_out)
    monkeypatch.setattr(c_kernels, "_SCAN_MIN_WORK", 1)
    monkeypatch.setattr(c_kernels, "_PARALLEL_MIN_WORK", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(event, x, g, False)
        torch.set_num_threads(3)
        three = run(event, x, g, False)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one[:3], three[:3]):
        assert torch.equal(a, b)


@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("n_out", [77, 500])
@pytest.mark.parametrize("rows", [300, 2100])
@pytest.mark.parametrize("density", [0.2, 0.02])
def test_each_sum_adds_its_terms_in_index_order(dtype, binary, n_out, rows, density, monkeypatch):
    """The kernels read W^T (and the output gradient) in chunks of rows and blocks of columns, yet every
    output is the plain left-to-right sum ``b + x[r, k0] W^T[k0] + x[r, k1] W^T[k1] + ...`` over the active
    inputs in increasing order, bit for bit (and the weight gradient ``0 + x[r0, k] g[r0] + ...`` over
    increasing rows): 300 inputs and 300 rows span several chunks, 77 and 500 outputs several blocks, and
    2,100 rows are more than one tile of the forward's rows (their partial sums pass 256 KiB; one thread, so
    that one range holds them all). At density 0.02 the rows have too few entries for chunks of W^T: one
    chunk, the same sums."""
    monkeypatch.setattr(c_kernels, "threads", lambda work, least=None: 1)
    gen = torch.Generator().manual_seed(5)
    x = spikes((rows, 300), density, dtype, seed=4) * (1 if binary else torch.randn(rows, 300, generator=gen, dtype=dtype))
    weight, bias = torch.randn(n_out, 300, generator=gen, dtype=dtype), torch.randn(n_out, generator=gen, dtype=dtype)
    g = torch.randn(rows, n_out, generator=gen, dtype=dtype)
    want_out, want_grad = bias.expand(rows, n_out).clone(), torch.zeros(n_out, 300, dtype=dtype)
    for k in range(300):  # column by column: each row's terms are added in increasing k
        active = x[:, k] != 0
        want_out[active] += x[active, k, None] * weight[:, k]
    for r in range(rows):  # row by row: each weight-gradient column's terms in increasing r
        cols = x[r] != 0
        want_grad[:, cols] += g[r, :, None] * x[r, cols]
    from mdn_snntorch.sparse import ops

    assert torch.equal(spike_linear(x, weight, bias, dense_above=1.0), want_out)
    _, mask, info = ops.spike_linear_op(x, weight, bias, 1.0)
    assert torch.equal(ops.weight_grad_op(x, g, mask, info, 1.0), want_grad)


@needs_c
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("threads", [1, 3])
def test_the_mask_marks_the_nonzeros_and_both_lists_come_from_it(dtype, threads, monkeypatch):
    """One scan of x gives a bit per entry (NaN and any nonzero set, the bits past the last column clear) and
    the row counts; the row lists (forward) and the column lists (weight gradient, read from the forward's
    mask instead of a second scan of x) are those of x's nonzeros in order, values included. 150 rows and 130
    columns: the column lists come from 64 x 64-bit tiles of the mask, and both sizes end in a partial tile."""
    monkeypatch.setattr(c_kernels, "_SCAN_MIN_WORK", 1)  # the threaded passes too
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    R = 150
    try:
        x = spikes((R, 130), 0.2, dtype, seed=9) * torch.randn(R, 130, dtype=dtype, generator=torch.Generator().manual_seed(1))
        x[3, 129], x[5, 64], x[R - 1, 0] = float("nan"), 1.0, 2.0
        mask, ptr, nnz, binary = c_kernels.scan_rows(x)
        bits = (mask[:, :, None] >> torch.arange(64)) & 1  # [R, words, 64]
        assert torch.equal(bits.reshape(R, -1)[:, :130].bool(), x != 0) and not bits.reshape(R, -1)[:, 130:].any()
        assert not binary and nnz == int((x != 0).sum()) and torch.equal(ptr[1:], (x != 0).sum(1).cumsum(0))
        idx, val = c_kernels.fill_rows(mask, x, ptr, nnz, binary)
        rows, cols = (x != 0).nonzero(as_tuple=True)  # row-major order
        assert torch.equal(idx.long(), cols)
        torch.testing.assert_close(val, x[rows, cols], rtol=0, atol=0, equal_nan=True)
        cptr, cidx, cval = c_kernels.columns(mask, x, nnz, binary)
        cols_t, rows_t = (x.t() != 0).nonzero(as_tuple=True)  # column-major order
        assert torch.equal(cidx.long(), rows_t)
        torch.testing.assert_close(cval, x[rows_t, cols_t], rtol=0, atol=0, equal_nan=True)
        assert torch.equal(cptr[1:], (x != 0).sum(0).cumsum(0))
        assert c_kernels.scan_rows((x != 0).to(dtype))[3]  # 0/1 values: binary
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 10, 16, 500, 512])
def test_padded_rows_are_an_odd_number_of_cache_lines_apart(dtype, n):
    """The gather reads W^T and the output gradient from copies whose rows start on a cache line (500 floats
    would split three vector loads in four) and an odd number of lines apart (512 floats, a power of two,
    would crowd a chunk of rows into few cache sets); the values are the original's."""
    t = torch.randn(7, n, dtype=dtype)
    p = c_kernels.padded_rows(t)
    lines, rest = divmod(p.stride(0) * p.element_size(), 64)
    assert torch.equal(p, t) and p.stride(1) == 1 and rest == 0 and lines % 2 == 1
    assert p.stride(0) >= n and p.data_ptr() % 64 == 0
    assert p.stride(0) - n < 2 * 64 // p.element_size()  # at most two lines of padding


# ---------------------------------------------------------------------------------------------------
# routing
# ---------------------------------------------------------------------------------------------------
@needs_c
@pytest.mark.parametrize("density", [0.45, 1.0])
def test_above_the_threshold_the_dense_product_runs_exactly(density, gather_calls):
    dense, event = pair(200, 30, torch.float32, dense_above=0.4)
    x = spikes((100, 200), density, torch.float32)
    g = torch.randn(100, 30)
    for a, b in zip(run(event, x, g, True), run(dense, x, g, True)):
        assert torch.equal(a, b)
    assert gather_calls == []


def test_the_default_threshold_and_the_layer_repr():
    assert 0 < DENSE_ABOVE < 1
    layer = SpikeLinear(4, 3)
    assert layer.dense_above == DENSE_ABOVE
    assert repr(layer) == f"SpikeLinear(in_features=4, out_features=3, bias=True, dense_above={DENSE_ABOVE:g})"


def test_other_dtypes_autocast_and_no_compiler_run_f_linear(monkeypatch, gather_calls):
    dense, event = pair(50, 20, torch.float32)
    x = spikes((8, 50), 0.1, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(event(x), dense(x)) and event(x).dtype == torch.bfloat16
    db, eb = (m.to(torch.bfloat16) for m in pair(50, 20, torch.float32))
    assert torch.equal(eb(x.bfloat16()), db(x.bfloat16()))
    assert gather_calls == []
    monkeypatch.setitem(c_kernels._state, "lib", None)  # as without a C compiler
    dense, event = pair(50, 20, torch.float64)
    assert torch.equal(event(x.double()), dense(x.double()))
    assert gather_calls == []


def test_mismatched_arguments_fail_like_nn_linear():
    layer = SpikeLinear(5, 3)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        layer(torch.zeros(2, 4))
    with pytest.raises(RuntimeError, match="dtype"):
        layer(torch.zeros(2, 5, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------
# drop-in: initialisation, state dict, shapes
# ---------------------------------------------------------------------------------------------------
def test_same_initialisation_and_state_dict_as_nn_linear():
    torch.manual_seed(3)
    a = nn.Linear(10, 4)
    torch.manual_seed(3)
    b = SpikeLinear(10, 4)
    assert isinstance(b, nn.Linear)
    assert list(a.state_dict()) == list(b.state_dict()) == ["weight", "bias"]
    for k in ("weight", "bias"):
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    c = SpikeLinear(10, 4)
    c.load_state_dict(a.state_dict())
    a.load_state_dict(SpikeLinear(10, 4).state_dict())  # and back
    assert SpikeLinear(10, 4, bias=False).bias is None


@needs_c
@pytest.mark.parametrize("shape", [(7,), (3, 7), (2, 3, 7), (2, 1, 3, 7), (0, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_input_shapes_and_no_bias(shape, bias):
    torch.manual_seed(0)
    dense = nn.Linear(7, 5, bias=bias, dtype=torch.float64)
    event = SpikeLinear.from_linear(dense, dense_above=1.0)
    x = spikes(shape, 0.4, torch.float64)
    got, want = event(x), dense(x)
    assert got.shape == want.shape
    assert_close(got, want)
    if x.numel():
        got.sum().backward()
        gw = dense.weight.grad.clone()
        dense.weight.grad = None
        want.sum().backward()
        assert_close(gw, dense.weight.grad)


def test_exported_from_the_package():
    assert mdn.SpikeLinear is SpikeLinear and mdn.spike_linear is spike_linear


# ---------------------------------------------------------------------------------------------------
# the custom ops: opcheck, torch.compile
# ---------------------------------------------------------------------------------------------------
@needs_c
@pytest.mark.parametrize("density, dense_above", [(0.1, 1.0), (0.1, 0.0), (0.0, 1.0)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_opcheck(density, dense_above, with_bias):
    from mdn_snntorch.sparse import ops

    x = spikes((12, 9), density, torch.float64).requires_grad_()
    w = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True) if with_bias else None
    torch.library.opcheck(ops.spike_linear_op, (x, w, b, dense_above))
    _, mask, info = ops.spike_linear_op(x.detach(), w.detach(), b, dense_above)
    g = torch.randn(12, 5, dtype=torch.float64)
    torch.library.opcheck(ops.weight_grad_op, (x.detach(), g, mask, info, dense_above))


@needs_c
@pytest.mark.parametrize("inputs, coding", [(bursts, "runs"), (rate_coded, "complement")])
def test_opcheck_coded_over_time(inputs, coding, run_calls, complement_calls):
    """Both ops on 20 steps of 4 chains: bursts take the run coding (forward), rate-coded rows the complement
    coding (forward and weight gradient)."""
    from mdn_snntorch.sparse import ops

    x = inputs(20, 4, 70, torch.float64).reshape(80, 70).requires_grad_()
    w = torch.randn(9, 70, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(ops.spike_linear_op, (x, w, b, 1.0, 20))
    _, mask, info = ops.spike_linear_op(x.detach(), w.detach(), b.detach(), 1.0, 20)
    torch.library.opcheck(ops.weight_grad_op, (x.detach(), torch.randn(80, 9, dtype=torch.float64), mask, info, 1.0, 20))
    took = {"runs": bool(run_calls), "complement": bool(complement_calls["forward"]) and bool(complement_calls["grad"])}
    assert took == {"runs": coding == "runs", "complement": coding == "complement"}


@needs_c
@pytest.mark.parametrize("steps", [0, -1, 7])
def test_steps_that_do_not_divide_the_rows_are_refused(steps):
    """The codings read row t S + b as step t of chain b: a step count that does not divide the rows (80 here) would
    leave rows out, so both ops name the argument instead."""
    from mdn_snntorch.sparse import ops

    x, w = rate_coded(20, 4, 70, torch.float64).reshape(80, 70), torch.randn(9, 70, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"steps must be a positive divisor of the 80 rows of x, got {steps}"):
        ops.spike_linear_op(x, w, None, 1.0, steps)
    _, mask, info = ops.spike_linear_op(x, w, None, 1.0, 20)
    with pytest.raises(ValueError, match="steps must be a positive divisor"):
        ops.weight_grad_op(x, torch.randn(80, 9, dtype=torch.float64), mask, info, 1.0, steps)


@needs_c
def test_compiled_model_matches_eager_without_graph_breaks():
    torch.manual_seed(0)
    model = ThreeLayerSNN(40, 32, 10, "2-FS", check_input=False)
    x = spikes((6, 4, 40), 0.15, torch.float32)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    torch._dynamo.reset()
    outs, grads = [], []
    for m in (model, torch.compile(model, backend="aot_eager", fullgraph=True)):
        model.zero_grad()
        out = m(x)
        (out * torch.arange(out.numel()).view(out.shape)).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.equal(outs[0], outs[1])
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------
# the paper's network
# ---------------------------------------------------------------------------------------------------
def test_three_layer_snn_uses_the_event_driven_input_layer():
    torch.manual_seed(0)
    event = ThreeLayerSNN(20, 16, 4, "2-FS")
    torch.manual_seed(0)
    dense = ThreeLayerSNN(20, 16, 4, "2-FS", event_driven=False)
    assert type(event.fc1) is SpikeLinear and type(dense.fc1) is nn.Linear and type(dense.fc2) is nn.Linear
    assert type(event.fc2) is (SpikeLinear if model_module.HIDDEN_EVENT_DRIVEN else nn.Linear)
    assert list(event.state_dict()) == list(dense.state_dict())
    for k, v in dense.state_dict().items():
        assert torch.equal(v, event.state_dict()[k])  # same initialisation from the same seed
    event.load_state_dict(dense.state_dict())  # checkpoints load either way
    assert event.spec()["event_driven"] is True and dense.spec()["event_driven"] is False
    assert ThreeLayerSNN.from_spec(dense.spec()).event_driven is False
    old = event.spec()
    del old["event_driven"]  # a spec written before the option existed
    assert ThreeLayerSNN.from_spec(old).event_driven is True


@needs_c
def test_three_layer_snn_event_driven_matches_dense():
    torch.manual_seed(0)
    event = ThreeLayerSNN(60, 40, 5, "2-FS", dtype=torch.float64, check_input=False).double()
    dense = ThreeLayerSNN(60, 40, 5, "2-FS", dtype=torch.float64, check_input=False, event_driven=False).double()
    dense.load_state_dict(event.state_dict())
    x = spikes((10, 8, 60), 0.13, torch.float64)
    outs = []
    for m in (event, dense):
        out, hidden = m(x, return_hidden=True)
        (out.sum() + 0.1 * hidden.sum()).backward()
        outs.append((out, hidden, [p.grad for p in m.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    for a, b in zip(outs[0][2], outs[1][2]):
        assert_close(a, b)


# ---------------------------------------------------------------------------------------------------
# the C kernels: build, package data, fallback
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("openmp", [False, True])
def test_c_source_compiles_on_its_own(openmp):
    """The shipped C file (with the header it includes twice) is plain C11, warning-free, with and without OpenMP."""
    cc = c_kernels.fused_c._compiler()
    if cc is None:
        pytest.skip("no C compiler here")
    flags = ["-fsyntax-only", "-std=c11", "-Wall", "-Wextra", "-Werror", *(c_kernels.OPENMP if openmp else ())]
    for arch in ([], ["-march=native"]):
        proc = subprocess.run([cc, *flags, *arch, str(c_kernels.SOURCE_DIR / c_kernels.SOURCE)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]


def test_c_sources_are_package_data():
    names = c_kernels.sources()
    assert c_kernels.SOURCE in names and any(n.endswith(".h") for n in names)
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["mdn_snntorch.sparse"]
    package = Path(c_kernels.__file__).parent
    assert set(names) <= {p.name for g in globs for p in package.glob(g)}


@needs_c
def test_a_build_without_openmp_gives_the_same_results(monkeypatch, tmp_path):
    dense, event = pair(300, 50, torch.float32)
    x = spikes((400, 300), 0.13, torch.float32)
    g = torch.randn(400, 50)
    with_openmp = run(event, x, g, True)
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
    monkeypatch.setattr(c_kernels, "OPENMP", ())
    monkeypatch.setattr(c_kernels, "_state", {})
    assert c_kernels.library() is not None
    assert [p.name for p in tmp_path.iterdir()] == [c_kernels.cache_path(c_kernels.fused_c._compiler(), c_kernels.CFLAGS).name]
    for a, b in zip(run(event, x, g, True), with_openmp):
        assert torch.equal(a, b)


def test_a_failed_build_warns_and_runs_the_dense_product(monkeypatch, tmp_path, gather_calls):
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setattr(c_kernels, "_state", {})
    dense, event = pair(30, 6, torch.float32)
    x = spikes((10, 30), 0.1, torch.float32)
    with pytest.warns(RuntimeWarning, match="building the event-driven Linear kernels failed, using the dense product"):
        got = event(x)
    assert torch.equal(got, dense(x)) and gather_calls == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        event(x)  # the outcome is remembered: no second warning
    assert linear._event_driven(x, event.weight, event.bias) is False


@needs_c
@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_cached_library_is_rebuilt_not_loaded(monkeypatch, tmp_path, damage):
    """Loading a truncated library would kill the process (SIGBUS): only a sealed, whole file is reused."""
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path))
    cc, flags = c_kernels.fused_c._compiler(), c_kernels.CFLAGS + c_kernels.OPENMP
    path = c_kernels._build(cc, flags)
    whole = path.read_bytes()
    assert c_kernels.fused_c.intact(path)
    path.write_bytes({"empty": b"", "truncated": whole[: len(whole) // 2], "garbage": b"\x7fELF" + b"x" * 4096}[damage])
    assert not c_kernels.fused_c.intact(path)
    assert c_kernels._build(cc, flags) == path and c_kernels.fused_c.intact(path)
