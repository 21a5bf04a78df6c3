"""What fresh input spikes cost the paper authors' training regime, against one training step in the same run.

The authors' protocol (``mdn train --protocol authors``) draws new Bernoulli spikes for every batch, in
training and evaluation. Measured in interleaved rounds on one thread, per batch of the paper's shape
(784 inputs, batch 100, T = 20): one training step of the 784-500-10 network with the undetached reset
(forward + backward + Adam, the fused op), the spike draw of that batch from stored intensities
(:func:`mdn_snntorch.pipeline.loader.draw_spikes`), and the unpacking of stored spikes it replaces. Prints the
medians and the draw's share of a step (target: at most 0.10).

    python benchmarks/bench_fresh_spikes.py [--data mnist.h5] [--rounds 41]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from mdn_snntorch.pipeline.loader import draw_spikes
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.spikefile import pack_spikes, unpack_spikes

TARGET = 0.10
T, B, D = 20, 100, 784


def batch_intensities(data: str | None) -> tuple[np.ndarray, int]:
    """A batch's stored intensities ``[B, D]`` and their levels: the first 100 of ``data``'s training split, or
    MNIST-like synthetic ones (80 % zeros, the rest uniform)."""
    if data:
        from mdn_snntorch.spikefile import SpikeDataset

        ds = SpikeDataset(data, "train")
        return ds.read_intensity(np.arange(B)), ds.require_intensity()
    rng = np.random.default_rng(0)
    intensity = rng.integers(1, 256, size=(B, D), dtype=np.uint8) * (rng.random((B, D)) < 0.2)
    return intensity.astype(np.uint8), 255


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a rate-coded spike file (e.g. MNIST from mdn prep mnist); default: synthetic")
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    intensity, levels = batch_intensities(args.data)
    rng = np.random.default_rng(0)
    packed = np.ascontiguousarray(pack_spikes(draw_spikes(rng, intensity, levels, T).transpose(1, 0, 2) > 0))
    torch.manual_seed(0)
    model = ThreeLayerSNN(D, 500, 10, detach_reset=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.nn.functional.one_hot(torch.randint(0, 10, (B,)), 10).float()
    x = torch.from_numpy(draw_spikes(rng, intensity, levels, T))

    def step() -> None:
        loss = ((model(x).mean(0) - target) ** 2).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    cases = {
        "training step": step,
        "fresh spikes (draw)": lambda: draw_spikes(rng, intensity, levels, T),
        "stored spikes (unpack)": lambda: unpack_spikes(np.ascontiguousarray(packed.transpose(1, 0, 2)), D),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds + 3):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            if r >= 3:  # warm-up rounds left out
                times[name].append(time.perf_counter() - start)
    print(f"per batch of {B} x T = {T} x {D}, 1 thread, {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.2f}")
    medians = {name: statistics.median(v) for name, v in times.items()}
    for name, v in times.items():
        print(f"  {name:<24} median {1e3 * medians[name]:7.2f} ms   min {1e3 * min(v):7.2f} ms")
    share = medians["fresh spikes (draw)"] / medians["training step"]
    extra = (medians["fresh spikes (draw)"] - medians["stored spikes (unpack)"]) / medians["training step"]
    verdict = "meets" if share <= TARGET else "misses"
    print(f"draw / step = {share:.3f} ({verdict} the target {TARGET:.2f}); over unpacking stored spikes: {extra:+.3f} of a step")
    return {"share": share, "extra": extra, **{k: v for k, v in medians.items()}}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
