"""benchmarks/bench_step_pieces.py: the paper step cut into its operators, and the forward gather's ceiling."""

import pytest
import torch
from data_fixtures.benchmarks import benchmark

from mdn_snntorch.sparse import c_kernels

needs_c = pytest.mark.skipif(not c_kernels.available(), reason="the event-driven layer's C kernels need a C compiler")


def test_the_three_gather_inputs_hold_the_same_spikes_per_row_in_different_arrangements():
    inputs = benchmark("bench_step_pieces").gather_inputs(rows=40, k=300, density=0.1, chunk=100)
    assert set(inputs) == {"random", "even", "same-row"}
    for x in inputs.values():
        assert x.shape == (40, 300) and set(x.unique().tolist()) <= {0.0, 1.0}
    even = inputs["even"].reshape(40, 3, 100).sum(-1)
    assert torch.equal(even, torch.full((40, 3), 10.0))  # every chunk of every row: 10 % of its 100 inputs
    same = inputs["same-row"]
    assert torch.equal(same, inputs["random"][:1].expand(40, 300))  # one Bernoulli row, repeated
    assert not torch.equal(inputs["random"][0], inputs["random"][1])


@needs_c
def test_the_step_is_cut_into_the_layers_c_passes_and_the_operators(capsys):
    report = benchmark("bench_step_pieces").main(["--threads", "1", "--steps", "2", "--rounds", "2"])
    printed = capsys.readouterr().out
    pieces, gather = report["pieces"], report["gather"]
    assert pieces["step"] > 0 and "1. the paper's training step" in printed
    passes = {name.split()[1] for name in pieces if name.startswith("pass ")}
    assert passes == {"scan_rows", "fill_rows", "columns", "padded_rows", "gather"}  # each C pass ran and was timed
    assert pieces["pass gather (2001,)"] > 0 and pieces["pass gather (785,)"] > 0  # forward rows, weight-gradient inputs
    assert any(name.startswith("op mdn_snntorch::mdn_backward") for name in pieces)
    assert set(gather) == {"random", "even", "same-row"}
    vectors = -(-500 // (c_kernels.library().sl_vector_bytes() // 4))  # per entry: one row of W^T, in vectors
    for r in gather.values():
        assert r["entries"] > 150_000 and r["ms"] > 0  # about 13 % of 2000 x 784
        assert r["vector_adds_per_s"] == pytest.approx(r["entries"] * vectors / (r["ms"] / 1e3), rel=1e-9)
