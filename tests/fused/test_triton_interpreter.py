"""The Triton kernels' logic on the CPU, under Triton's interpreter, in the fast suite: forward bitwise equal to
the PyTorch-loop kernel and every gradient equal to rounding (either reset), on tiny problems with dt != 1 and
sub-steps.

Triton decides at import whether its kernels (its own library's included) are interpreted, so the checks run
in a fresh interpreter with ``TRITON_INTERPRET=1``: this file run as a script (``main``), one line per case.
The whole-model checks under the interpreter are the slow tests of test_fused_ops.py and test_selfcheck.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

T, M, N = 5, 300, 100  # two programs of 256 elements, the second masked; neuron e % N
RTOL = {torch.float64: 1e-12, torch.float32: 1e-4}
MDN_CASES = [
    (dtype, dt, substeps, sigmoid)
    for dtype in ("float64", "float32")
    for dt, substeps, sigmoid in ((0.5, 1, False), (0.7, 3, True))
]
FIRST_ORDER_CASES = [(dtype, sigmoid) for dtype in ("float64", "float32") for sigmoid in (False, True)]


def problem(dtype, neuron: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    x = 2 * rand(T, M) + 0.5
    if neuron == "mdn":
        rows = [v + 0.01 * rand(N) for v in (0.06, 0.219, -0.065, 0.003, 0.5, 1.5)]
        state = [0.3 * rand(M), 0.08 + 0.01 * rand(M)]
    else:
        rows = [v + 0.01 * rand(N) for v in (0.8, 0.5, 0.0, 1.5)]
        state = [0.3 * rand(M)]
    grads = [rand(T, M), rand(T, M), rand(T, M), rand(M), rand(M)]
    cast = lambda t: t.to(dtype).contiguous()  # noqa: E731
    return cast(x), [cast(s) for s in state], cast(torch.stack(rows)), [cast(t) for t in grads]


def assert_close(got, want, what, dtype):
    for i, (a, b) in enumerate(zip(got, want)):
        scale = max(b.abs().max().item(), 1e-30)
        err = (a.double() - b.double()).abs().max().item()
        assert err <= RTOL[dtype] * scale, f"{what} {i} differs by {err:.3g} (largest entry {scale:.3g})"


def check_mdn(kernels, loop, dtype, dt, substeps, sigmoid):
    x, (v0, u0), params, (gs, gvtr, gutr, gvT, guT) = problem(dtype, "mdn", seed=substeps)
    got = kernels.mdn_forward(x, v0, u0, params, dt, substeps, sigmoid, True, 1)
    current = got[5] if sigmoid else x  # the loop on the kernel's own sigmoid
    want = loop.mdn_forward(current, v0, u0, params, dt, substeps, False, True, 1)
    assert got[0].sum() > 0 and (got[0] == 0).any(), "the case fires and does not"
    for name, a, b in zip(("spikes", "V_T", "U_T", "V trace", "U trace", "I", "checkpoints"), got, want):
        assert name == "I" or torch.equal(a, b), f"forward {name} differs"
    grads = (gs, gvtr, gutr, gvT, guT)
    for undetached in (False, True):
        reset = "undetached reset" if undetached else "detached reset"
        g_got = kernels.mdn_backward(current, got[6], params, *grads, dt, substeps, 0.5, sigmoid, 1, undetached)
        g_want = loop.mdn_backward(current, want[6], params, *grads, dt, substeps, 0.5, sigmoid, 1, undetached)
        assert_close(g_got[:3], g_want[:3], f"{reset}: gradient of the input / V_0 / U_0:", dtype)
        assert_close(g_got[3], g_want[3], f"{reset}: gradient of parameter row (a, b, c, d, V_th, scale)", dtype)
        assert all(row.abs().sum() > 0 for row in g_want[3]), "every parameter gets a gradient"


def check_first_order(kernels, loop, dtype, sigmoid):
    x, (v0,), params, (gs, gvtr, _, gvT, _) = problem(dtype, "first_order", seed=7)
    got = kernels.first_order_forward(x, v0, params, sigmoid, True, 1)
    current = got[3] if sigmoid else x
    want = loop.first_order_forward(current, v0, params, False, True, 1)
    for name, a, b in zip(("spikes", "V_T", "V trace", "I", "checkpoints"), got, want):
        assert name == "I" or torch.equal(a, b), f"forward {name} differs"
    for undetached in (False, True):
        reset = "undetached reset" if undetached else "detached reset"
        g_got = kernels.first_order_backward(current, got[4], params, gs, gvtr, gvT, 0.5, sigmoid, 1, undetached)
        g_want = loop.first_order_backward(current, want[4], params, gs, gvtr, gvT, 0.5, sigmoid, 1, undetached)
        assert_close(g_got[:2], g_want[:2], f"{reset}: gradient of the input / V_0:", dtype)
        assert_close(g_got[2], g_want[2], f"{reset}: gradient of parameter row (decay, V_th, reset, scale)", dtype)


def main() -> int:
    """Run every case with the interpreted kernels; one line ``PASS <case>`` or ``FAIL <case>: why`` each."""
    from mdn_snntorch.fused import torch_loop, triton_kernels

    cases = [("mdn", c, check_mdn) for c in MDN_CASES] + [("first_order", c, check_first_order) for c in FIRST_ORDER_CASES]
    failed = 0
    for neuron, case, check in cases:
        name = f"{neuron} {' '.join(map(str, case))}"
        try:
            check(triton_kernels, torch_loop, getattr(torch, case[0]), *case[1:])
            print(f"PASS {name}")
        except AssertionError as e:
            print(f"FAIL {name}: {e}")
            failed += 1
    return 1 if failed else 0


@pytest.fixture(scope="module")
def verdicts() -> dict[str, str]:
    pytest.importorskip("triton", reason="triton is not installed: its kernels' logic cannot be checked here")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=240)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert lines, proc.stdout + proc.stderr[-3000:]
    return {line.split(":")[0].split(" ", 1)[1]: line for line in lines}


@pytest.mark.parametrize("case", MDN_CASES, ids=lambda c: "-".join(map(str, c)))
def test_mdn_kernels_forward_and_adjoint(verdicts, case):
    line = verdicts[f"mdn {' '.join(map(str, case))}"]
    assert line.startswith("PASS"), line


@pytest.mark.parametrize("case", FIRST_ORDER_CASES, ids=lambda c: "-".join(map(str, c)))
def test_first_order_kernels_forward_and_adjoint(verdicts, case):
    line = verdicts[f"first_order {' '.join(map(str, case))}"]
    assert line.startswith("PASS"), line


if __name__ == "__main__":
    raise SystemExit(main())
