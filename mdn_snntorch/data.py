"""HDF5 spike files (format ``mdn-spikes``) and the loader that streams them into training.

One file holds one data set in one encoding. Root attributes carry the meta data (:data:`META_KEYS`);
groups ``train`` and ``test`` each hold

- ``spikes``: uint8 ``[N, T, ceil(D / 8)]``, the binary spike trains packed along the feature axis
  (``numpy.packbits``, big bit order: feature ``d`` is bit ``7 - d % 8`` of byte ``d // 8``), chunked
  by blocks of samples and compressed;
- ``labels``: int64 ``[N]`` (``target_kind == "labels"``) or ``targets``: uint8 ``[N, K]`` bit vectors
  (``target_kind == "targets"``, NETtalk), with the code table ``codes`` uint8 ``[C, K]`` at the root;
- optionally (rate-coded images) ``intensity``: uint8 ``[N, D]`` with the attribute ``levels`` ``L``,
  the spike probability of every input at every step being ``p = intensity / L``.

With ``resample`` the loader ignores the stored spikes of such a split and draws new ones for every
batch, ``S[t, b, d] = [r < intensity[b, d]]`` with ``r`` uniform on ``{0, ..., L - 1}`` (exactly
Bernoulli(p)), from a generator seeded by ``(seed, epoch, rank, window)``: a fresh realisation each epoch,
the same one for the same seed and epoch.

Batches are time-major: ``x [T, B, D]`` float32 (0/1), ``y [B]`` int64 or ``[B, K]`` float32.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

FORMAT = "mdn-spikes"
#: the format version this module writes and the newest it reads
VERSION = 1
SPLITS = ("train", "test")
TARGET_KINDS = ("labels", "targets")
#: root attributes every file carries
META_KEYS = (
    "format", "version", "dataset", "encoding", "encoding_params", "time_steps", "input_shape", "n_inputs",
    "num_classes", "class_names", "seed", "source", "package_version", "target_kind",
)  # fmt: skip
#: samples per loader read window (rounded up to a multiple of the batch size): shuffling mixes within it
WINDOW_SAMPLES = 4096
#: HDF5 chunk cache per open file
CHUNK_CACHE_BYTES = 32 * 2**20


class SpikeFileError(ValueError):
    """A spike file that is missing, not HDF5, of another format or version, or inconsistent."""


def packed_width(n_inputs: int) -> int:
    """Bytes per time step of a packed spike vector: ``ceil(D / 8)``."""
    return (n_inputs + 7) // 8


def pack_spikes(spikes: np.ndarray) -> np.ndarray:
    """Binary ``[..., D]`` (bool or 0/1) -> uint8 ``[..., ceil(D / 8)]``."""
    return np.packbits(np.asarray(spikes, dtype=bool), axis=-1)


def unpack_spikes(packed: np.ndarray, n_inputs: int) -> np.ndarray:
    """uint8 ``[..., ceil(D / 8)]`` -> float32 ``[..., D]`` of 0/1 (inverse of :func:`pack_spikes`)."""
    bits = np.unpackbits(packed, axis=-1, count=n_inputs)
    out = np.empty(bits.shape, dtype=np.float32)
    np.copyto(out, bits)
    return out


def encode_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta data as HDF5 attribute values (``encoding_params`` becomes a JSON string)."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"spike-file meta data lacks {', '.join(missing)}")
    attrs = dict(meta)
    attrs["encoding_params"] = json.dumps(meta["encoding_params"], sort_keys=True)
    attrs["input_shape"] = np.asarray(meta["input_shape"], dtype=np.int64)
    attrs["class_names"] = np.asarray([str(c) for c in meta["class_names"]], dtype=h5py.string_dtype())
    return attrs


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open(path: str | os.PathLike, **kwargs) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise SpikeFileError(f"{path}: no such spike file (make one with `mdn prep <dataset>`)")
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as err:
        raise SpikeFileError(f"{path}: not a readable HDF5 file ({err})") from err


def _meta_of(f: h5py.File, path: Path) -> dict[str, Any]:
    attrs = f.attrs
    fmt = _plain(attrs.get("format"))
    if fmt != FORMAT:
        raise SpikeFileError(f"{path}: format attribute is {fmt!r}, expected {FORMAT!r}; not an mdn spike file")
    try:
        version = int(attrs["version"])
    except (KeyError, TypeError, ValueError) as err:
        raise SpikeFileError(f"{path}: missing or invalid 'version' attribute") from err
    if version > VERSION or version < 1:
        raise SpikeFileError(f"{path}: format version {version}; this reader supports versions 1..{VERSION} (update mdn-snntorch)")
    missing = [k for k in META_KEYS if k not in attrs]
    if missing:
        raise SpikeFileError(f"{path}: missing root attribute(s) {', '.join(missing)}")
    meta = {k: _plain(attrs[k]) for k in attrs}
    try:
        meta["encoding_params"] = json.loads(meta["encoding_params"])
    except (TypeError, ValueError) as err:
        raise SpikeFileError(f"{path}: attribute 'encoding_params' is not JSON") from err
    if meta["target_kind"] not in TARGET_KINDS:
        raise SpikeFileError(f"{path}: target_kind {meta['target_kind']!r} is not one of {TARGET_KINDS}")
    if int(np.prod(meta["input_shape"])) != meta["n_inputs"]:
        raise SpikeFileError(f"{path}: input_shape {meta['input_shape']} does not hold n_inputs={meta['n_inputs']}")
    return meta


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The root meta data of a spike file as plain Python values, after checking format and version.

    Raises :class:`SpikeFileError` naming the file and what is wrong.
    """
    with _open(path) as f:
        return _meta_of(f, Path(path))


class SpikeDataset(Dataset):
    """One split of a spike file. ``ds[i] -> (spikes [T, D] float32, label int64 | target [K] float32)``.

    The HDF5 file is opened lazily, once per process (so the object pickles into DataLoader workers);
    labels / targets are read once at construction.
    """

    def __init__(self, path: str | os.PathLike, split: str):
        self.path = Path(path)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        with _open(self.path) as f:
            self.meta = _meta_of(f, self.path)
            if split not in f:
                raise SpikeFileError(f"{self.path}: has no split {split!r} (groups: {', '.join(sorted(f))})")
            group = f[split]
            kind = self.meta["target_kind"]
            for name in ("spikes", kind):
                if name not in group:
                    raise SpikeFileError(f"{self.path}: split {split!r} lacks the dataset {name!r}")
            spikes = group["spikes"]
            self.n_inputs = int(self.meta["n_inputs"])
            self.time_steps = int(self.meta["time_steps"])
            want = (self.time_steps, packed_width(self.n_inputs))
            if spikes.ndim != 3 or spikes.shape[1:] != want or spikes.dtype != np.uint8:
                raise SpikeFileError(
                    f"{self.path}: {split}/spikes is {spikes.dtype} {spikes.shape}, expected uint8 [N, {want[0]}, {want[1]}] "
                    f"for time_steps={self.time_steps}, n_inputs={self.n_inputs}"
                )
            self._n = int(spikes.shape[0])
            self.block = int(spikes.chunks[0]) if spikes.chunks else max(1, self._n)
            y = group[kind][()]
            if y.shape[0] != self._n:
                raise SpikeFileError(f"{self.path}: {split}/{kind} has {y.shape[0]} rows for {self._n} samples")
            self.codes = torch.from_numpy(f["codes"][()].astype(np.float32)) if "codes" in f else None
            self.intensity_levels = self._check_intensity(group, split)
        self.num_classes = int(self.meta["num_classes"])
        if kind == "labels":
            self._y = y.astype(np.int64)
            if self._n and (self._y.min() < 0 or self._y.max() >= self.num_classes):
                raise SpikeFileError(f"{self.path}: {split}/labels outside 0..{self.num_classes - 1}")
        else:
            self._y = y.astype(np.float32)
            if self.codes is None:
                raise SpikeFileError(f"{self.path}: bit-vector targets need the root dataset 'codes'")
        self._file: h5py.File | None = None
        self._pid = -1

    def _check_intensity(self, group: h5py.Group, split: str) -> int | None:
        """``levels`` of the split's ``intensity`` dataset, or None when it has none."""
        if "intensity" not in group:
            return None
        ds = group["intensity"]
        if ds.dtype != np.uint8 or ds.shape != (self._n, self.n_inputs):
            raise SpikeFileError(f"{self.path}: {split}/intensity is {ds.dtype} {ds.shape}, expected uint8 [{self._n}, {self.n_inputs}]")
        levels = _plain(ds.attrs.get("levels"))
        if not isinstance(levels, int) or not 1 <= levels <= 255:
            raise SpikeFileError(f"{self.path}: {split}/intensity has levels={levels!r}, expected an int in 1..255")
        return levels

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state

    def _spikes(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = _open(self.path, rdcc_nbytes=CHUNK_CACHE_BYTES)
            self._pid = os.getpid()
        return self._file[self.split]["spikes"]

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, -1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(index)
        if not -self._n <= i < self._n:
            raise IndexError(f"index {index} out of range for {self._n} samples")
        i %= self._n
        x = torch.from_numpy(unpack_spikes(self._spikes()[i], self.n_inputs))
        return x, torch.from_numpy(np.asarray(self._y[i]))

    def read_packed(self, indices: np.ndarray) -> np.ndarray:
        """Packed spikes uint8 ``[len(indices), T, P]`` of sorted, unique ``indices``, read as one
        contiguous slice per run of consecutive indices."""
        spikes = self._spikes()
        out = np.empty((len(indices), *spikes.shape[1:]), dtype=np.uint8)
        done = 0
        for a, n in _runs(indices):
            spikes.read_direct(out, np.s_[a : a + n], np.s_[done : done + n])
            done += n
        return out

    def require_intensity(self) -> int:
        """``intensity_levels``, or :class:`SpikeFileError` when the split keeps no intensities."""
        if self.intensity_levels is None:
            raise SpikeFileError(
                f"{self.path}: split {self.split!r} keeps no intensities to redraw spikes from (encoding "
                f"{self.meta['encoding']!r}); re-create it with the current `mdn prep` or do not resample"
            )
        return self.intensity_levels

    def read_intensity(self, indices: np.ndarray) -> np.ndarray:
        """Intensities uint8 ``[len(indices), D]`` of sorted, unique ``indices``."""
        self.require_intensity()
        intensity = self._spikes().parent["intensity"]
        return np.concatenate([intensity[a : a + n] for a, n in _runs(indices)]) if len(indices) else np.empty((0, self.n_inputs), np.uint8)

    def targets(self, indices: np.ndarray) -> torch.Tensor:
        """Labels (int64 ``[B]``) or targets (float32 ``[B, K]``) of ``indices``."""
        return torch.from_numpy(self._y[indices])


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted, unique ``indices`` as ``(start, length)`` runs of consecutive values."""
    indices = np.asarray(indices, dtype=np.int64)
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    return [(int(run[0]), len(run)) for run in np.split(indices, breaks)]


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


def window_batches(
    ds: SpikeDataset, window: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Read one window (contiguous runs) and yield its batches ``(x [T, B, D], y)`` in window order;
    with ``rng`` the spikes are drawn from the stored intensities instead of read."""
    ordered = np.unique(window)
    pos = np.searchsorted(ordered, window)
    if rng is None:
        packed = ds.read_packed(ordered)
    else:
        intensity, levels = ds.read_intensity(ordered), ds.intensity_levels
    for i in range(0, len(window), batch_size):
        p = pos[i : i + batch_size]
        if rng is None:
            x = unpack_spikes(np.ascontiguousarray(packed[p].transpose(1, 0, 2)), ds.n_inputs)
        else:
            draws = rng.integers(0, levels, size=(ds.time_steps, len(p), ds.n_inputs), dtype=np.uint8)
            x = (draws < intensity[p]).astype(np.float32)
        yield torch.from_numpy(x), ds.targets(window[i : i + batch_size])


class _WindowStream(IterableDataset):
    """Worker side of :class:`SpikeLoader`: worker ``w`` of ``k`` reads windows ``w, w + k, ...``."""

    def __init__(self, ds: SpikeDataset, windows: list[np.ndarray], batch_size: int, draw_seed: list[int] | None = None):
        self.ds, self.windows, self.batch_size, self.draw_seed = ds, windows, batch_size, draw_seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k in range(worker, len(self.windows), workers):
            rng = None if self.draw_seed is None else np.random.default_rng([*self.draw_seed, k])
            yield from window_batches(self.ds, self.windows[k], self.batch_size, rng)


class SpikeLoader:
    """Iterable of time-major batches ``(x [T, B, D] float32, y [B] int64 | [B, K] float32)``.

    ``len`` is this rank's number of batches; :meth:`set_epoch` reshuffles (deterministically from
    ``seed + epoch``) and, with ``resample``, redraws the spikes. See :func:`spike_loader`.
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
    ):
        if resample:
            dataset.require_intensity()
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0), ("world_size", world_size, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in 0..{world_size - 1}, got {rank!r}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.num_workers, self.rank, self.world_size = num_workers, rank, world_size
        self.resample = resample
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order from now on (only matters with ``shuffle``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        per_rank = len(self.dataset) // self.world_size
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def windows(self) -> list[np.ndarray]:
        """This epoch's read windows (index arrays) for this rank."""
        return plan_windows(
            len(self.dataset), self.dataset.block, self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch,
            drop_last=self.drop_last, rank=self.rank, world_size=self.world_size,
        )  # fmt: skip

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        draw_seed = [self.seed, self.epoch, self.rank] if self.resample else None
        stream = _WindowStream(self.dataset, self.windows(), self.batch_size, draw_seed)
        if self.num_workers == 0:
            return iter(stream)
        return iter(DataLoader(stream, batch_size=None, num_workers=self.num_workers))


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
) -> SpikeLoader:
    """A :class:`SpikeLoader` over split ``split`` of the spike file ``path``.

    Shuffling permutes blocks of consecutive samples (the file's chunks) and then samples within read
    windows, so every read is a contiguous slice. ``rank`` / ``world_size`` give each process of a
    DistributedDataParallel job a disjoint shard with the same number of batches. ``resample`` draws
    new Bernoulli spikes from the split's stored intensities for every batch of every epoch.
    """
    return SpikeLoader(
        SpikeDataset(path, split), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
        num_workers=num_workers, rank=rank, world_size=world_size, resample=resample,
    )  # fmt: skip
