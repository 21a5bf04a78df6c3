"""The input sigmoid ``I = sigmoid(x)`` inside the fused op on CPU (mdn_snntorch/neurons/base.py).

On CPU a neuron hands the sigmoid to the fused op, which folds the sigmoid's derivative into its own
backward (one pass over the sequence fewer). The op's current must have the same bits as ``torch.sigmoid``
in float32 and float64, so a neuron gives exactly what it gives on a current computed outside; its
gradients agree to rounding (the op multiplies ``g (1 - I) I`` itself, autograd's sigmoid node does the same).
"""

from __future__ import annotations

import pytest
import torch

import mdn_snntorch as mdn
from mdn_snntorch import fused
from mdn_snntorch.fused import c_kernels, ops

KERNELS = ["c", "torch"] if c_kernels.library() is not None else ["torch"]
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}
NEURONS = {"mdn": lambda **kw: mdn.MDN("2-RS", learn_theta=True, **kw), "first-order": lambda **kw: mdn.FirstOrder(**kw)}


def drive(dtype: torch.dtype, T: int = 40, B: int = 3, N: int = 64) -> torch.Tensor:
    """Pre-sigmoid input over the whole range the sigmoid distinguishes: saturated tails, subnormal
    outputs (x < -87 in float32), both signs of zero, and a dense middle where the neurons fire."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, N, generator=g, dtype=torch.float64) * 3
    x[:, 0] = torch.linspace(-110, 40, N).to(torch.float64)
    x[0, 1, :2] = torch.tensor([0.0, -0.0], dtype=torch.float64)
    return x.to(dtype)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_ops_current_has_the_bits_of_torch_sigmoid(kernel, dtype):
    x = drive(dtype).reshape(40, -1)
    M = x.shape[1]
    v0, u0 = torch.zeros(M, dtype=dtype), torch.zeros(M, dtype=dtype)
    params = torch.tensor([[0.06], [0.219], [-0.01], [0.05], [0.5], [1.0]], dtype=dtype)
    out = ops.mdn_forward_op(x, v0, u0, params, 1.0, 1, 0.5, True, False, kernel, 1)
    first = ops.first_order_forward_op(x, v0, params[[0, 4, 2, 5]], 0.5, True, False, kernel, 1)
    want = torch.sigmoid(x)
    assert want.min() < torch.finfo(dtype).tiny or dtype == torch.float64  # subnormals covered in float32
    assert torch.equal(out[5], want) and torch.equal(first[3], want)


@pytest.mark.parametrize("name", NEURONS)
def test_the_neuron_hands_the_sigmoid_to_the_op_on_cpu(name, monkeypatch):
    seen = []
    op = {"mdn": "mdn_multistep", "first-order": "first_order_multistep"}[name]
    real = getattr(fused, op)

    def spy(*args, **kwargs):
        seen.append(kwargs["input_sigmoid"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fused, op, spy)
    x = drive(torch.float32)
    NEURONS[name]().multi_step(x)
    NEURONS[name](input_sigmoid=False).multi_step(x)
    assert seen == [True, False]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NEURONS)
def test_sigmoid_in_the_op_gives_the_bits_of_the_sigmoid_outside(name, dtype, kernel):
    x = drive(dtype)
    results = []
    for inside in (True, False):
        neuron = NEURONS[name](input_sigmoid=inside, dtype=dtype)
        leaf = x.clone().requires_grad_()
        with fused.use_kernel(kernel):
            outs = neuron.multi_step(leaf if inside else torch.sigmoid(leaf), return_traces=True)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=dtype)).sum() for o in outs)
        params = [p for _, p in sorted(neuron.named_parameters())]
        results.append(([o.detach() for o in outs], torch.autograd.grad(loss, [leaf, *params])))
    (got, got_grads), (want, want_grads) = results
    assert want[0].sum() > 0 and (want[0] == 0).any(), "the case should both fire and not fire"
    for o, w in zip(got, want):
        assert torch.equal(o, w)
    for g, w in zip(got_grads, want_grads):
        scale = w.abs().max().item()
        assert scale > 0 and (g - w).abs().max().item() <= RTOL[w.dtype] * scale
