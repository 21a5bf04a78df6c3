"""Data pipeline speed on real MNIST, against one training step measured in the same run.

- conversion: ``data_prep.mnist.convert`` of all 70,000 images at T = 20 (target: at most 60 s);
- loader: one epoch of ``spike_loader`` (batch 100, ``num_workers=0``) into ``[T, B, D]`` float32
  tensors (target: at least 20,000 samples/s), reading the stored spikes in order and shuffled, and
  drawing fresh ones from the stored intensities (``resample``, shuffled);
- baseline: one training step (forward + backward + Adam) of a 784-500-10 ``ThreeLayerSNN``,
  batch 100, T = 20. The loader's time per batch is printed as a fraction of that step.

``--compare-compression`` converts and loads once per HDF5 filter (the figures behind the choice of
``mdn_snntorch.spikefile.COMPRESSION``).

Real MNIST offline: ``../shared/datasets/real_mnist.sh /tmp/mnist_real`` (torchvision layout), then
``.venv/bin/python benchmarks/bench_data.py --mnist-root /tmp/mnist_real``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import mdn_snntorch.spikefile
from data_prep import mnist
from mdn_snntorch.pipeline.loader import spike_loader
from mdn_snntorch.pipeline.model import ThreeLayerSNN

CONVERT_TARGET_S = 60.0
LOADER_TARGET = 20_000.0
FILTERS = [("gzip", 4), ("gzip", 1), ("lzf", None), (None, None)]


def train_step_seconds(time_steps: int, batch_size: int, repeats: int = 10) -> float:
    """Median seconds of one forward + backward + Adam step of a 784-500-10 ThreeLayerSNN."""
    torch.manual_seed(0)
    model = ThreeLayerSNN(784, 500, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(time_steps, batch_size, 784) < 0.2).float()
    target = torch.nn.functional.one_hot(torch.randint(0, 10, (batch_size,)), 10).float()
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        loss = ((model(x).mean(0) - target) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def convert_seconds(root: str, out: Path, time_steps: int) -> float:
    start = time.perf_counter()
    mnist.convert(out, root=root, time_steps=time_steps, force=True)
    return time.perf_counter() - start


def loader_rate(path: Path, batch_size: int, shuffle: bool, resample: bool = False) -> tuple[float, float]:
    """(samples per second, seconds per batch) over one epoch of the training split."""
    loader = spike_loader(path, "train", batch_size, shuffle=shuffle, seed=0, resample=resample)
    n, start = 0, time.perf_counter()
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1] == len(y)
        n += len(y)
    elapsed = time.perf_counter() - start
    return n / elapsed, elapsed / len(loader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-root", required=True, help="folder holding MNIST/raw (real_mnist.sh output)")
    parser.add_argument("--time-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--compare-compression", action="store_true", help="convert and load once per HDF5 filter")
    args = parser.parse_args(argv)

    step = train_step_seconds(args.time_steps, args.batch_size)
    print(f"training step (784-500-10, batch {args.batch_size}, T={args.time_steps}, {torch.get_num_threads()} threads): "
          f"{step * 1e3:.1f} ms = {args.batch_size / step:,.0f} samples/s consumed")  # fmt: skip
    filters = FILTERS if args.compare_compression else [mdn_snntorch.spikefile.COMPRESSION]
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for compression in filters:
            mdn_snntorch.spikefile.COMPRESSION = compression
            out = Path(tmp) / "mnist.h5"
            convert_s = convert_seconds(args.mnist_root, out, args.time_steps)
            size = out.stat().st_size / 2**20
            name = f"{compression[0] or 'none'}{'' if compression[1] is None else f'-{compression[1]}'}"
            print(f"\n[{name}] convert 70,000 MNIST images: {convert_s:.1f} s (target <= {CONVERT_TARGET_S:.0f} s; "
                  f"{convert_s / step:,.0f} training steps), file {size:.1f} MiB")  # fmt: skip
            failed |= convert_s > CONVERT_TARGET_S
            for shuffle, resample in ((False, False), (True, False), (True, True)):
                rate, per_batch = loader_rate(out, args.batch_size, shuffle, resample)
                print(
                    f"[{name}] loader shuffle={shuffle} resample={resample}: {rate:,.0f} samples/s "
                    f"(target >= {LOADER_TARGET:,.0f}); "
                      f"one batch {per_batch * 1e3:.2f} ms = {per_batch / step:.3f} x a training step, "
                      f"{rate * step / args.batch_size:.1f} x what training consumes")  # fmt: skip
                failed |= rate < LOADER_TARGET
    print("\nall targets met" if not failed else "\nSOME TARGET MISSED")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
