"""An ``mdn train`` epoch against the sum of its training steps, in one run, 1 thread, on a real spike file.

Runs :func:`mdn_snntorch.pipeline.trainer.train` as ``mdn train`` does (the paper's 784-500-10 network,
batch 100, checkpoints and metrics written into a temporary run directory) with timers around its pieces:

- **steps**: the forward in training mode, the loss, the backward and the Adam update of each batch;
- **loading**: the training loader's batches (HDF5 reads, unpacking the bits into float32);
- **host copies**: each batch's rows moved to the device (``EpochLoop._my_rows``);
- **metrics**: each batch's sums (loss, correct, firing rates);
- **evaluation**: the test split after the epoch (its loading included, printed apart);
- **checkpoint**: ``epoch_NNN.pt``, ``metrics.json`` and ``metrics.csv`` (``RunFiles.save_epoch``);
- **other**: the rest (progress bar, signal checks, the per-batch finiteness check's sync).

An epoch's wall time runs from the trainer taking it up (``_Run._epoch``) to its files written. Target: epoch
wall time <= 1.15x the sum of its steps. ``--train-samples N`` trains on the first N samples of the training
split only (the run's training indices, as a validation split sets them), where a full epoch takes too
long; the output says so.

``--prefetch 2 0`` compares reading ahead (the default, 2 batches) with reading each batch when asked for, one run
each, in turn (``--repeats`` rounds). Whole runs drift with the machine, so ``--interleaved ROUNDS`` also trains one
model on batches from loaders with each ``--prefetch`` value in turn, 50 batches at a time, and prints per value
the median of the rounds' mean step time and of their mean time per batch in all (the step plus waiting for its batch).

    python benchmarks/bench_epoch.py --data /work/data/mnist.h5 [--epochs 2] [--train-samples N] [--prefetch 2 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

from mdn_snntorch.pipeline import epochs, loader, run_data, run_files, trainer  # noqa: E402
from mdn_snntorch.pipeline.config import TrainConfig  # noqa: E402
from mdn_snntorch.pipeline.model import ThreeLayerSNN  # noqa: E402

TARGET = 1.15
PARTS = ("loading", "host copies", "metrics", "evaluation", "checkpoint")


class Timers:
    """Seconds per piece and epoch, and the phase (``train`` or ``eval``) the loop is in."""

    def __init__(self) -> None:
        self.epoch = -1
        self.phase = "setup"
        self.seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.batches: dict[int, int] = defaultdict(int)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[self.epoch][name] += seconds

    def wrap(self, fn: Callable, name: str, phase: str | None = None) -> Callable:
        """``fn`` that adds its time to ``name`` (only while in ``phase``, when one is given)."""

        def timed(*args, **kwargs):
            if phase is not None and self.phase != phase:
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)

        return timed

    def timed_batches(self, start_batches: Callable[[], Iterator], name: str) -> Iterator:
        """The batches of ``start_batches()``, its start and each batch's wait added to ``name``."""
        batches = None
        while True:
            start = time.perf_counter()
            try:
                batches = start_batches() if batches is None else batches
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.add(name, time.perf_counter() - start)
            yield batch


@contextmanager
def instrumented(timers: Timers):
    """The trainer with timers around its pieces (the code that runs is the trainer's own)."""
    real = {
        "epoch": trainer._Run._epoch, "train": epochs.EpochLoop.train_epoch, "evaluate": epochs.EpochLoop.evaluate,
        "step": epochs.EpochLoop._step, "rows": epochs.EpochLoop._my_rows, "sums": epochs.EpochLoop._batch_sums,
        "forward": ThreeLayerSNN.forward, "loss": epochs.rate_mse_loss, "iter": loader.SpikeLoader.__iter__,
        "save": run_files.RunFiles.save_epoch,
    }  # fmt: skip

    def epoch(run, index):
        timers.epoch = index
        return timers.wrap(real["epoch"], "epoch")(run, index)

    def in_phase(phase: str, fn: Callable, name: str) -> Callable:
        def run(*args, **kwargs):
            timers.phase = phase
            try:
                return timers.wrap(fn, name)(*args, **kwargs)
            finally:
                timers.phase = "between"

        return run

    def train_epoch(loop, batches, *args):
        timers.batches[timers.epoch] = len(batches)
        return in_phase("train", real["train"], "training pass")(loop, batches, *args)

    def batches(spike_loader):
        name = "loading" if timers.phase == "train" else "evaluation loading"
        return timers.timed_batches(lambda: real["iter"](spike_loader), name)

    patches = [
        (trainer._Run, "_epoch", epoch),
        (epochs.EpochLoop, "train_epoch", train_epoch),
        (epochs.EpochLoop, "evaluate", in_phase("eval", real["evaluate"], "evaluation")),
        (epochs.EpochLoop, "_step", timers.wrap(real["step"], "steps", "train")),
        (epochs.EpochLoop, "_my_rows", timers.wrap(real["rows"], "host copies", "train")),
        (epochs.EpochLoop, "_batch_sums", timers.wrap(real["sums"], "metrics", "train")),
        (ThreeLayerSNN, "forward", timers.wrap(real["forward"], "steps", "train")),
        (epochs, "rate_mse_loss", timers.wrap(real["loss"], "steps", "train")),
        (loader.SpikeLoader, "__iter__", batches),
        (run_files.RunFiles, "save_epoch", timers.wrap(real["save"], "checkpoint")),
    ]
    with ExitStack() as stack:
        for owner, name, value in patches:
            stack.enter_context(mock.patch.object(owner, name, value))
        yield


def first_samples(n: int | None) -> Callable:
    """``run_data.load`` keeping the first ``n`` samples of the training split as its training indices."""
    real = run_data.load

    def load(config, device):
        data = real(config, device)
        if n is not None:
            data.train_indices = np.arange(min(n, len(data.train_set)), dtype=np.int64)
        return data

    return load


def report(timers: Timers, epoch: int) -> dict[str, float]:
    """The epoch's pieces in seconds and its wall time against its steps, printed."""
    s = timers.seconds[epoch]
    wall = s["epoch"] + s["checkpoint"]
    parts = {name: s[name] for name in PARTS}
    parts["other"] = wall - s["steps"] - sum(parts.values())
    print(f"\nepoch {epoch + 1}: {timers.batches[epoch]} batches, wall {wall:.2f} s, steps {s['steps']:.2f} s")
    for name, seconds in parts.items():
        print(f"  {name:<12} {seconds:8.3f} s  {100 * seconds / s['steps']:5.1f}% of the steps")
    print(f"  (evaluation: {s['evaluation loading']:.3f} s of it loading the test split)")
    ratio = wall / s["steps"]
    print(f"  epoch wall / sum of steps: {ratio:.3f}  (target <= {TARGET}: {'met' if ratio <= TARGET else 'not met'})")
    return {"wall": wall, "steps": s["steps"], "ratio": ratio, **parts}


def interleaved(data: str, prefetches: list[int], rounds: int, hidden: int, batches: int = 50) -> dict[int, dict[str, float]]:
    """Training steps (forward, loss, backward, Adam) of one model on batches from loaders reading ``prefetch``
    batches ahead, each value in turn, ``batches`` at a time, ``rounds`` times (the order reversed every other
    round); per value the medians over the rounds of the mean step and of the mean time per batch in all."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    first = loader.spike_loader(data, "train", 100)
    model = ThreeLayerSNN(first.dataset.n_inputs, hidden, first.dataset.num_classes, "2-FS")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def endless(prefetch: int) -> Iterator:
        while True:
            yield from loader.spike_loader(data, "train", 100, shuffle=True, prefetch=prefetch)

    streams = {p: endless(p) for p in prefetches}

    def block(prefetch: int, n: int) -> tuple[float, float]:
        steps, start = 0.0, time.perf_counter()
        for _ in range(n):
            x, y = next(streams[prefetch])
            t = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            epochs.rate_mse_loss(model(x), y).backward()
            optimizer.step()
            steps += time.perf_counter() - t
        return steps / n, (time.perf_counter() - start) / n

    for prefetch in prefetches:  # warm-up: the chunks decoded, the kernels built
        block(prefetch, 10)
    seen: dict[int, list[tuple[float, float]]] = {p: [] for p in prefetches}
    for r in range(rounds):
        for prefetch in prefetches if r % 2 == 0 else prefetches[::-1]:
            seen[prefetch].append(block(prefetch, batches))
    for stream in streams.values():
        stream.close()  # a loader's read-ahead thread stops with it
    print(f"\ninterleaved: {rounds} rounds of {batches} batches per value, medians over the rounds")
    out = {}
    for prefetch, rows in seen.items():
        step, whole = statistics.median(a for a, _ in rows), statistics.median(b for _, b in rows)
        out[prefetch] = {"step": step, "batch": whole}
        print(f"  prefetch {prefetch}: step {1e3 * step:.2f} ms, per batch in all {1e3 * whole:.2f} ms")
    return out


def run(args: argparse.Namespace, prefetch: int) -> list[dict[str, float]]:
    """One ``train()`` of ``args.epochs`` epochs reading ``prefetch`` batches ahead; each epoch's report."""
    print(f"\n--- prefetch {prefetch} ---")
    timers = Timers()
    with tempfile.TemporaryDirectory() as tmp, instrumented(timers), mock.patch.object(
        run_data, "load", first_samples(args.train_samples)
    ):  # fmt: skip
        config = TrainConfig(data=args.data, out=str(Path(tmp) / "run"), epochs=args.epochs, hidden=args.hidden,
                             threads=1, progress=False, prefetch=prefetch)  # fmt: skip
        start = time.perf_counter()
        trainer.train(config)
        total = time.perf_counter() - start
    rows = [report(timers, epoch) for epoch in range(args.epochs)]
    setup = total - sum(r["wall"] for r in rows)
    print(f"\ntrain() {total:.2f} s in all; {setup:.2f} s before and between the epochs (opening the data, the model)")
    return rows


def main(argv: list[str] | None = None) -> dict[int, list[list[dict[str, float]]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a spike file (mdn prep mnist writes one)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-samples", type=int, help="train on the first N training samples only")
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument(
        "--prefetch", type=int, nargs="+", default=[TrainConfig.prefetch],
        help="batches the loaders read ahead in a background thread; several values: one run each, in turn",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the runs of --prefetch")
    parser.add_argument("--interleaved", type=int, metavar="ROUNDS", help="also the interleaved comparison of --prefetch")
    args = parser.parse_args(argv)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average before: {load}; torch {torch.__version__}, 1 thread; {cpu_model()}")
    if args.train_samples:
        print(f"a subset: the first {args.train_samples} training samples (a full epoch is longer)")
    runs: dict[int, list[list[dict[str, float]]]] = {p: [] for p in args.prefetch}
    for _ in range(args.repeats):
        for prefetch in args.prefetch:
            runs[prefetch].append(run(args, prefetch))
    print("\nlast epoch of each run: ratio (wall s / steps s)")
    for prefetch, rows in runs.items():
        cells = ", ".join(f"{r[-1]['ratio']:.3f} ({r[-1]['wall']:.2f} / {r[-1]['steps']:.2f})" for r in rows)
        print(f"  prefetch {prefetch}: {cells}")
    if args.interleaved:
        interleaved(args.data, args.prefetch, args.interleaved, args.hidden)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return runs


if __name__ == "__main__":
    main()
