"""The loader that streams spike files into training: block-shuffled windows of contiguous samples.

Reads one :class:`~mdn_snntorch.spikefile.SpikeDataset` split window by window (one contiguous HDF5
read per run of samples), unpacks with numpy and yields time-major batches ``x [T, B, D]`` float32
(0/1), ``y [B]`` int64 or ``[B, K]`` float32. With ``resample`` a rate-coded split's spikes are
redrawn for every batch from its stored intensities (see :mod:`mdn_snntorch.spikefile`), from a
generator seeded by ``(seed, epoch, rank, window)`` (``(seed, epoch, rank, stream, window)`` for a loader
with its own draw ``stream``, e.g. the evaluation's fresh spikes). ``indices`` restricts a loader to a
subset of the split (a validation split carved from the training split). With ``analog`` the batches carry
the split's stored analog input instead of spikes, ``x = analog / L`` float32 in [0, 1], in the same order.

Every pass checks that the file at the dataset's path is still the one it opened
(:meth:`~mdn_snntorch.spikefile.SpikeDataset.check_unchanged`); a DataLoader worker checks the file it
opens against the same identity, so a file replaced during a run stops it (InputChangedError).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mdn_snntorch.pipeline.prefetch import DEFAULT_DEPTH, read_ahead
from mdn_snntorch.spikefile import SpikeDataset, analog_values, unpack_spikes

#: samples per loader read window (rounded up to a multiple of the batch size): shuffling mixes within it
WINDOW_SAMPLES = 4096


def epoch_order(n: int, block: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: ``arange(n)``, or its blocks of ``block`` consecutive samples
    in a random order drawn from ``(seed, epoch)``."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    starts = np.arange(0, n, block, dtype=np.int64)
    perm = np.random.default_rng([seed, epoch]).permutation(len(starts))
    return np.concatenate([np.arange(s, min(s + block, n), dtype=np.int64) for s in starts[perm]]) if n else np.arange(0)


def plan_windows(
    n: int, block: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, drop_last: bool, rank: int, world_size: int
) -> list[np.ndarray]:
    """This rank's samples of one epoch as read windows (index arrays in batch order).

    The epoch order is cut into ``world_size`` equal contiguous shards (the last ``n % world_size``
    samples of the order are left out, so every rank gets the same number of batches). A shard is
    cut into windows of about :data:`WINDOW_SAMPLES` (a multiple of ``batch_size``); with ``shuffle``
    each window is permuted (seeded by ``seed, epoch, rank, window``).
    """
    per_rank = n // world_size
    order = epoch_order(n, block, shuffle, seed, epoch)[rank * per_rank : (rank + 1) * per_rank]
    if drop_last:
        order = order[: len(order) // batch_size * batch_size]
    window = batch_size * max(1, math.ceil(WINDOW_SAMPLES / batch_size))
    windows = [order[i : i + window] for i in range(0, len(order), window)]
    if shuffle:
        windows = [w[np.random.default_rng([seed, epoch, rank, k]).permutation(len(w))] for k, w in enumerate(windows)]
    return windows


def draw_spikes(rng: np.random.Generator, intensity: np.ndarray, levels: int, time_steps: int) -> np.ndarray:
    """Bernoulli spikes ``[T, B, D]`` float32 of probability ``intensity / levels`` (``intensity [B, D]`` uint8):
    ``S = [r < intensity]`` with ``r`` uniform on ``0..levels - 1``, made from random bytes (the few bytes at or
    above the largest multiple of ``levels``, 1 in 256 for 255 levels, are redrawn; then ``r = byte % levels``).
    Exact, and a quarter of the cost of ``rng.integers``."""
    shape = (time_steps, *intensity.shape)
    r = np.frombuffer(rng.bytes(math.prod(shape)), dtype=np.uint8).reshape(shape)
    limit = 256 - 256 % levels
    if limit < 256:
        bad = np.flatnonzero(r >= limit)
        if bad.size:
            r = r.copy()
            flat = r.reshape(-1)
            while bad.size:
                fresh = np.frombuffer(rng.bytes(bad.size), dtype=np.uint8)
                flat[bad] = fresh
                bad = bad[fresh >= limit]
    if limit != levels:
        r = r % np.uint8(levels)
    return (r < intensity).astype(np.float32)


def window_batches(
    ds: SpikeDataset, window: np.ndarray, batch_size: int, rng: np.random.Generator | None = None, analog: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Read one window (contiguous runs) and yield its batches ``(x [T, B, D], y)`` in window order;
    with ``rng`` the spikes are drawn from the stored intensities instead of read, with ``analog``
    ``x`` is the stored analog input ``analog / L``."""
    if analog and rng is not None:
        raise ValueError("analog input and resampled spikes exclude each other")
    ordered = np.unique(window)
    pos = np.searchsorted(ordered, window)
    if analog:
        stored, levels = ds.read_analog_levels(ordered), ds.analog_levels
    elif rng is None:
        packed = ds.read_packed(ordered)
    else:
        intensity, levels = ds.read_intensity(ordered), ds.intensity_levels
    for i in range(0, len(window), batch_size):
        p = pos[i : i + batch_size]
        if analog:
            x = analog_values(stored[p].transpose(1, 0, 2), levels)
        elif rng is None:
            x = unpack_spikes(np.ascontiguousarray(packed[p].transpose(1, 0, 2)), ds.n_inputs)
        else:
            x = draw_spikes(rng, intensity[p], levels, ds.time_steps)
        yield torch.from_numpy(x), ds.targets(window[i : i + batch_size])


class _WindowStream(IterableDataset):
    """Worker side of :class:`SpikeLoader`: worker ``w`` of ``k`` reads windows ``w, w + k, ...``."""

    def __init__(self, ds: SpikeDataset, windows: list[np.ndarray], batch_size: int, draw_seed: list[int] | None, analog: bool):
        self.ds, self.windows, self.batch_size, self.draw_seed, self.analog = ds, windows, batch_size, draw_seed, analog

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k in range(worker, len(self.windows), workers):
            rng = None if self.draw_seed is None else np.random.default_rng([*self.draw_seed, k])
            yield from window_batches(self.ds, self.windows[k], self.batch_size, rng, self.analog)


class SpikeLoader:
    """Iterable of time-major batches ``(x [T, B, D] float32, y [B] int64 | [B, K] float32)``.

    ``len`` is this rank's number of batches; :meth:`set_epoch` reshuffles (deterministically from
    ``seed + epoch``) and, with ``resample``, redraws the spikes; with ``analog`` ``x`` is the stored analog
    input in [0, 1] instead of spikes. Without worker processes (``num_workers=0``) a background thread reads
    and unpacks up to ``prefetch`` batches ahead while the caller works (0: each batch is read when asked for);
    the batches are the same either way. See :func:`spike_loader`.
    """

    def __init__(
        self,
        dataset: SpikeDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        resample: bool = False,
        analog: bool = False,
        indices: np.ndarray | None = None,
        stream: int = 0,
        prefetch: int = DEFAULT_DEPTH,
    ):
        if resample and analog:
            raise ValueError("resample=True and analog=True exclude each other: resample redraws spikes, analog feeds no spikes")
        if resample:
            dataset.require_intensity()
        if analog:
            dataset.require_analog()
        for name, value, low in (
            ("batch_size", batch_size, 1), ("num_workers", num_workers, 0), ("world_size", world_size, 1),
            ("prefetch", prefetch, 0),
        ):  # fmt: skip
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in 0..{world_size - 1}, got {rank!r}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.num_workers, self.rank, self.world_size = num_workers, rank, world_size
        self.resample, self.analog = resample, analog
        self.indices = None if indices is None else _subset(indices, len(dataset))
        self.stream = int(stream)
        self.prefetch = prefetch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from now on (only matters with ``shuffle``)."""
        self.epoch = int(epoch)

    def _size(self) -> int:
        return len(self.dataset) if self.indices is None else len(self.indices)

    def __len__(self) -> int:
        per_rank = self._size() // self.world_size
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def windows(self) -> list[np.ndarray]:
        """This epoch's read windows (index arrays into the split) for this rank."""
        windows = plan_windows(
            self._size(), self.dataset.block, self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch,
            drop_last=self.drop_last, rank=self.rank, world_size=self.world_size,
        )  # fmt: skip
        return windows if self.indices is None else [self.indices[w] for w in windows]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.dataset.check_unchanged()
        draw_seed = [self.seed, self.epoch, self.rank, *([self.stream] if self.stream else [])] if self.resample else None
        stream = _WindowStream(self.dataset, self.windows(), self.batch_size, draw_seed, self.analog)
        if self.num_workers == 0:
            return read_ahead(stream, self.prefetch)
        return iter(DataLoader(stream, batch_size=None, num_workers=self.num_workers))


def _subset(indices, n: int) -> np.ndarray:
    """``indices`` as a sorted int64 array of distinct positions in ``0..n-1`` (ValueError otherwise)."""
    subset = np.asarray(indices)
    if subset.ndim != 1 or not np.issubdtype(subset.dtype, np.integer):
        raise ValueError(f"indices must be a 1-d array of integers, got {subset.dtype} of shape {subset.shape}")
    subset = np.unique(subset.astype(np.int64))
    if len(subset) and (subset[0] < 0 or subset[-1] >= n):
        raise ValueError(f"indices must lie in 0..{n - 1}, got {subset[0]}..{subset[-1]}")
    return subset


def spike_loader(
    path: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    resample: bool = False,
    analog: bool = False,
    prefetch: int = DEFAULT_DEPTH,
) -> SpikeLoader:
    """A :class:`SpikeLoader` over split ``split`` of the spike file ``path``.

    Shuffling permutes blocks of consecutive samples (the file's chunks) and then samples within read
    windows, so every read is a contiguous slice. ``rank`` / ``world_size`` give each process of a
    DistributedDataParallel job a disjoint shard with the same number of batches. ``resample`` draws
    new Bernoulli spikes from the split's stored intensities for every batch of every epoch; ``analog``
    feeds the split's stored analog input (``analog / L``, float32 in [0, 1]) instead of spikes; ``prefetch``
    batches are read ahead in a background thread when there are no worker processes.
    """
    return SpikeLoader(
        SpikeDataset(path, split), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
        num_workers=num_workers, rank=rank, world_size=world_size, resample=resample, analog=analog, prefetch=prefetch,
    )  # fmt: skip
