"""Data pipeline speed: the ways to read a spike file, against a TensorDataset and one training step, in one run.

- routes (MNIST-shaped synthetic data, 60,000 x T = 20 x 784, and the real MNIST file where given):
  ``SpikeDataset`` in a plain ``DataLoader(batch_size=100, shuffle=True)`` with ``num_workers`` 0 and 2
  (each epoch from fresh workers, or with ``persistent_workers``), ``spike_loader`` (batch 100, shuffled,
  ``num_workers=0``), and a ``TensorDataset`` over the same samples unpacked to float32 in the same
  ``DataLoader`` with ``num_workers`` 0 (the baseline of the ratios) and 2; the time to fill it is printed
  apart. The routes take turns epoch by epoch; epoch 1 starts from fresh datasets (every chunk decoded
  once), the later epochs read the decoded chunks kept in memory (their median is printed). Target: the
  ``SpikeDataset`` route at ``num_workers=0`` at least 0.5 of the ``TensorDataset`` route after epoch 1;
- writing your own data: ``write_arrays`` of the synthetic arrays and ``write_dataset`` of a map-style
  dataset over them (samples/s);
- conversion (with ``--mnist-root``): ``data_prep.mnist.convert`` of all 70,000 images at T = 20 (target: at
  most 60 s), and ``spike_loader`` in order, shuffled and with ``resample`` (target: at least 20,000 samples/s);
- baseline: one training step (forward + backward + Adam) of a 784-500-10 ``ThreeLayerSNN``, batch 100, T = 20.

``--compare-compression`` converts and loads once per HDF5 filter (the figures behind the choice of
``mdn_snntorch.spikefile.COMPRESSION``).

Real MNIST offline: ``../shared/datasets/real_mnist.sh /tmp/mnist_real`` (torchvision layout), then
``.venv/bin/python benchmarks/bench_data.py --mnist-root /tmp/mnist_real`` (or ``--mnist-file`` for a file
``mdn prep mnist`` wrote).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import mdn_snntorch.spikefile
from data_prep import mnist
from mdn_snntorch.pipeline.loader import spike_loader
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.spikefile import SpikeDataset, unpack_spikes, write_arrays, write_dataset

CONVERT_TARGET_S = 60.0
LOADER_TARGET = 20_000.0
#: the SpikeDataset route at num_workers=0 against the TensorDataset route
ROUTE_TARGET = 0.5
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


# ---- the reading routes -------------------------------------------------------------------------
def mnist_shaped(path: Path, n_train: int, time_steps: int, seed: int = 0) -> tuple[float, float]:
    """Write MNIST-shaped spikes (``n_train`` + 10,000 samples, 784 inputs, about 20 % of the pixels lit
    at a rate each, as rate-coded digits) with ``write_arrays`` and again with ``write_dataset``;
    their samples/s."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.empty((n, time_steps, 784), dtype=bool)
        for a in range(0, n, 5000):
            b = min(n, a + 5000)
            rate = np.where(rng.random((b - a, 1, 784)) < 0.2, rng.random((b - a, 1, 784), dtype=np.float32), 0)
            x[a:b] = rng.random((b - a, time_steps, 784), dtype=np.float32) < rate
        return x, rng.integers(0, 10, n)

    train, test = split(n_train), split(10_000)
    n = n_train + 10_000
    start = time.perf_counter()
    write_arrays(path, train, test, name="mnist-shaped", encoding="rate", force=True)
    arrays = n / (time.perf_counter() - start)
    start = time.perf_counter()
    write_dataset(path.with_suffix(".dataset.h5"), _Pairs(*train), _Pairs(*test), name="mnist-shaped", encoding="rate",
                  class_names=[str(k) for k in range(10)], force=True)  # fmt: skip
    dataset = n / (time.perf_counter() - start)
    path.with_suffix(".dataset.h5").unlink()
    return arrays, dataset


class _Pairs(Dataset):
    """A map-style dataset over arrays: ``(spikes [T, D] bool, label)``."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.x[i], int(self.y[i])


def epoch_rate(loader) -> float:
    """Samples/s of one epoch of ``loader``."""
    n, start = 0, time.perf_counter()
    for x, y in loader:
        assert x.dtype == torch.float32 and len(y) in x.shape[:2]  # [B, T, D] or the loader's [T, B, D]
        n += len(y)
    return n / (time.perf_counter() - start)


def unpacked(path: Path) -> TensorDataset:
    """The training split unpacked to float32 ``[N, T, D]`` with its labels, read in pieces."""
    ds = SpikeDataset(path, "train", cache_bytes=0)
    x = torch.empty((len(ds), ds.time_steps, ds.n_inputs), dtype=torch.float32)
    for a in range(0, len(ds), 5000):
        idx = np.arange(a, min(len(ds), a + 5000))
        x[a : idx[-1] + 1] = torch.from_numpy(unpack_spikes(ds.read_packed(idx), ds.n_inputs))
    return TensorDataset(x, ds.targets(np.arange(len(ds))))


def routes(path: Path, batch_size: int, workers: int, epochs: int) -> tuple[dict[str, list[float]], float]:
    """Samples/s per epoch of every route over the training split of ``path`` (the routes take turns, epoch by
    epoch, so a change of the machine's load falls on all of them), and the seconds the TensorDataset took to fill."""
    start = time.perf_counter()
    tensors = unpacked(path)
    fill = time.perf_counter() - start
    shuffled = {"batch_size": batch_size, "shuffle": True}
    loaders = {
        "SpikeDataset, num_workers=0": DataLoader(SpikeDataset(path, "train"), **shuffled),
        f"SpikeDataset, num_workers={workers}": DataLoader(SpikeDataset(path, "train"), num_workers=workers, **shuffled),
        f"SpikeDataset, num_workers={workers}, persistent_workers": DataLoader(
            SpikeDataset(path, "train"), num_workers=workers, persistent_workers=True, **shuffled
        ),
        "spike_loader, num_workers=0": spike_loader(path, "train", batch_size, shuffle=True),
        "TensorDataset (float32 in memory), num_workers=0": DataLoader(tensors, **shuffled),
        f"TensorDataset (float32 in memory), num_workers={workers}": DataLoader(tensors, num_workers=workers, **shuffled),
    }
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for epoch in range(epochs):
        for name, loader in loaders.items():
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            rates[name].append(epoch_rate(loader))
    return rates, fill


def report_routes(name: str, rates: dict[str, list[float]], fill: float, batch_size: int, step: float) -> bool:
    """Print each route's samples/s in epoch 1 (fresh datasets: every chunk decoded) and later epochs (their
    median), with the ratios to the TensorDataset route; whether the target is met in the later epochs."""
    base = rates["TensorDataset (float32 in memory), num_workers=0"]
    for route, per_epoch in rates.items():
        first, later = per_epoch[0], statistics.median(per_epoch[1:])
        print(f"[{name}] {route}: epoch 1 {first:,.0f}/s ({first / base[0]:.2f}x), epochs 2-{len(per_epoch)} "
              f"{later:,.0f}/s ({later / statistics.median(base[1:]):.2f}x); one batch "
              f"{batch_size / later / step:.4f} x a training step")  # fmt: skip
    print(f"[{name}] filling the TensorDataset (reading and unpacking the split, not counted above): {fill:.1f} s")
    steady = statistics.median(rates["SpikeDataset, num_workers=0"][1:]) / statistics.median(base[1:])
    print(f"[{name}] SpikeDataset (num_workers=0) / TensorDataset = {steady:.2f} after epoch 1 (target >= {ROUTE_TARGET})")
    return steady >= ROUTE_TARGET


# ---- conversion ---------------------------------------------------------------------------------
def conversions(root: str, tmp: Path, args: argparse.Namespace, step: float) -> tuple[Path, bool]:
    """Convert real MNIST once per filter, time it and the loader; the file of the default filter and
    whether a target was missed."""
    default = mdn_snntorch.spikefile.COMPRESSION
    failed, kept = False, tmp / "mnist.h5"
    for compression in FILTERS if args.compare_compression else [default]:
        mdn_snntorch.spikefile.COMPRESSION = compression
        out = kept if compression == default else tmp / "mnist-other.h5"
        convert_s = convert_seconds(root, out, args.time_steps)
        name = f"{compression[0] or 'none'}{'' if compression[1] is None else f'-{compression[1]}'}"
        print(f"\n[{name}] convert 70,000 MNIST images: {convert_s:.1f} s (target <= {CONVERT_TARGET_S:.0f} s; "
              f"{convert_s / step:,.0f} training steps), file {out.stat().st_size / 2**20:.1f} MiB")  # fmt: skip
        failed |= convert_s > CONVERT_TARGET_S
        for shuffle, resample in ((False, False), (True, False), (True, True)):
            rate, per_batch = loader_rate(out, args.batch_size, shuffle, resample)
            print(f"[{name}] loader shuffle={shuffle} resample={resample}: {rate:,.0f} samples/s "
                  f"(target >= {LOADER_TARGET:,.0f}); one batch {per_batch * 1e3:.2f} ms = {per_batch / step:.3f} x a "
                  f"training step, {rate * step / args.batch_size:.1f} x what training consumes")  # fmt: skip
            failed |= rate < LOADER_TARGET
    mdn_snntorch.spikefile.COMPRESSION = default
    return kept, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-root", help="folder holding MNIST/raw (real_mnist.sh output): convert it, time it")
    parser.add_argument("--mnist-file", type=Path, help="a spike file `mdn prep mnist` wrote (instead of --mnist-root)")
    parser.add_argument("--samples", type=int, default=60_000, help="training samples of the MNIST-shaped data")
    parser.add_argument("--time-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="num_workers of the second SpikeDataset route")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per route, at least 2 (the first from a fresh dataset)")
    parser.add_argument("--compare-compression", action="store_true", help="convert and load once per HDF5 filter")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 decodes the chunks, the later ones are compared)")

    step = train_step_seconds(args.time_steps, args.batch_size)
    print(f"training step (784-500-10, batch {args.batch_size}, T={args.time_steps}, {torch.get_num_threads()} threads): "
          f"{step * 1e3:.1f} ms = {args.batch_size / step:,.0f} samples/s consumed")  # fmt: skip
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        if args.mnist_root:
            files["real MNIST"], failed = conversions(args.mnist_root, Path(tmp), args, step)
        elif args.mnist_file:
            files["real MNIST"] = args.mnist_file
        synthetic = Path(tmp) / "mnist-shaped.h5"
        arrays, dataset = mnist_shaped(synthetic, args.samples, args.time_steps)
        size = synthetic.stat().st_size / 2**20
        print(f"\n[MNIST-shaped] write_arrays: {arrays:,.0f} samples/s; write_dataset: {dataset:,.0f} samples/s "
              f"({args.samples + 10_000:,} samples, T={args.time_steps}, file {size:.1f} MiB)")  # fmt: skip
        files = {"MNIST-shaped": synthetic, **files}
        for name, path in files.items():
            print()
            rates, fill = routes(path, args.batch_size, args.workers, args.epochs)
            failed |= not report_routes(name, rates, fill, args.batch_size, step)
    print("\nall targets met" if not failed else "\nSOME TARGET MISSED")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
