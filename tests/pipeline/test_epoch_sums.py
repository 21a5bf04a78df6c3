"""The per-batch sums an epoch keeps (mdn_snntorch/pipeline/epochs.py): the mean firing rate without a float64
copy of the whole spike sequence gives the bits of ``spikes.double().mean()`` for spikes of 0 and 1."""

from __future__ import annotations

import pytest
import torch

from mdn_snntorch.pipeline.epochs import _spike_mean


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape, density", [((20, 100, 500), 0.13), ((300, 7, 11), 0.97), ((1, 3, 1), 0.5), ((0, 4, 5), 0.5)])
def test_the_spike_mean_has_the_bits_of_the_float64_mean(dtype, shape, density):
    # T = 300 at density 0.97: counts over time above 256, where bfloat16 stops counting exactly
    spikes = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) < density).to(dtype)
    got, want = _spike_mean(spikes), spikes.double().mean()
    assert got.dtype == torch.float64
    assert torch.equal(got, want) or (got.isnan() and want.isnan() and spikes.numel() == 0)
