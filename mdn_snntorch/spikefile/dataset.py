"""One split of a spike file as a map-style ``torch.utils.data.Dataset``, read at the speed of memory.

``ds[i] -> (spikes [T, D] float32, label int64 | target [K] float32)``. Labels / targets (and the code
table) are read and checked at construction, within the limits of :mod:`~mdn_snntorch.spikefile.limits`.
The stored datasets are read through :class:`~mdn_snntorch.spikefile.chunks.BlockReader`: whole chunks,
decoded once and kept in a cache of ``cache_bytes`` per stored dataset (by default the whole split when
it fits in :data:`DEFAULT_CACHE_BYTES` and a quarter of the free memory), so after the first touch of a
chunk a sample costs a copy and the bit unpacking. ``__getitems__`` serves PyTorch's batched fetching
(``DataLoader`` with ``batch_size``): one read per chunk the batch touches, one vectorised unpacking.

The HDF5 file and its datasets are opened lazily, once per process, and held open (:attr:`open_in_pid`):
after a fork or in a DataLoader worker the handle of another process is never used, a new one is opened
and checked against :attr:`identity`; decoded chunks, plain memory, are inherited by a fork.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mdn_snntorch.spikefile import limits
from mdn_snntorch.spikefile.chunks import BlockReader, member
from mdn_snntorch.spikefile.errors import InputChangedError, SpikeFileError
from mdn_snntorch.spikefile.format import SPLITS, FileIdentity, meta_of, open_file, packed_width, plain, read_meta, unpack_spikes

if TYPE_CHECKING:
    import h5py

#: the converters that store ``analog`` levels
ANALOG_CONVERTERS = ("tidigits", "spoken_digits", "timit")
#: the default cache of decoded chunks per stored dataset (at most a quarter of the free memory)
DEFAULT_CACHE_BYTES = 2**30
#: a decoded chunk larger than this makes reading one sample slow: a warning names the fix
PATHOLOGICAL_CHUNK_BYTES = 64 * 2**20


class ChunkingWarning(UserWarning):
    """A spike file whose chunks make reading one sample decode far more than the sample."""


class SpikeDataset(Dataset):
    """One split of a spike file; see the module docstring.

    ``identity`` pins the file opened at construction: every later opening (a DataLoader worker, a new
    epoch) and :meth:`check_unchanged` compare against it. ``meta`` holds the known meta-data keys only
    (small, safe to copy into checkpoints); ``meta_digest`` is the digest of all root attributes.
    """

    def __init__(self, path: str | os.PathLike, split: str, *, cache_bytes: int | None = None):
        self.path = Path(path)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if cache_bytes is not None and (isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0):
            raise ValueError(f"cache_bytes must be an int >= 0 (bytes of decoded chunks to keep), got {cache_bytes!r}")
        self.split = split
        with open_file(self.path) as f:
            self.meta, self.meta_digest = meta_of(f, self.path)
            self.identity = FileIdentity.of(os.fstat(f.id.get_vfd_handle()), self.meta, self.meta_digest)
            group = self._group(f)
            self.n_inputs, self.time_steps = int(self.meta["n_inputs"]), int(self.meta["time_steps"])
            self.num_classes = int(self.meta["num_classes"])
            spikes = self._check_spikes(group)
            budget = self._budget(cache_bytes, spikes)
            self._readers = {"spikes": BlockReader(spikes, self.path, f"{split}/spikes", budget)}
            self.block = self._readers["spikes"].rows
            self.codes = self._read_codes(f)
            self._y = self._read_targets(group)
            self.intensity_levels = self._check_intensity(group)
            self.analog_levels = self._check_analog(group)
            for name in ("intensity", "analog"):
                if name in group:
                    self._readers[name] = BlockReader(group[name], self.path, f"{split}/{name}", budget)
        for reader in self._readers.values():
            limits.check_memory(reader.block_bytes, self.path, reader.where, f"one decoded chunk of {reader.rows} samples")
        self._warn_chunking()
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._pid: int | None = None

    # ---- construction -------------------------------------------------------------------
    def _group(self, f: h5py.File) -> h5py.Group:
        if self.split not in f:
            raise SpikeFileError(f"{self.path}: has no split {self.split!r} (groups: {', '.join(sorted(f))})")
        group = member(f, self.split, self.path, "group")
        for name in ("spikes", self.meta["target_kind"]):
            if name not in group:
                raise SpikeFileError(f"{self.path}: split {self.split!r} lacks the dataset {name!r}")
        return group

    def _check_spikes(self, group: h5py.Group) -> h5py.Dataset:
        spikes = member(group, "spikes", self.path)
        want = (self.time_steps, packed_width(self.n_inputs))
        if spikes.ndim != 3 or spikes.shape[1:] != want or spikes.dtype != np.uint8:
            raise SpikeFileError(
                f"{self.path}: {self.split}/spikes is {spikes.dtype} {spikes.shape}, expected uint8 [N, {want[0]}, {want[1]}] "
                f"for time_steps={self.time_steps}, n_inputs={self.n_inputs}"
            )
        self._n = int(spikes.shape[0])
        if self._n == 0:
            raise SpikeFileError(f"{self.path}: split {self.split!r} holds no samples")
        limits.check_memory(4 * self.time_steps * self.n_inputs, self.path, f"{self.split}/spikes", "one unpacked sample")
        return spikes

    def _budget(self, cache_bytes: int | None, spikes: h5py.Dataset) -> int:
        """``cache_bytes``, or the whole split's packed spikes within DEFAULT_CACHE_BYTES and a quarter of free memory."""
        if cache_bytes is not None:
            return cache_bytes
        free = limits.available_memory()
        return min(spikes.size, DEFAULT_CACHE_BYTES, free // 4 if free is not None else DEFAULT_CACHE_BYTES)

    def _read_whole(self, ds: h5py.Dataset, where: str) -> np.ndarray:
        """A small dataset read whole: its declared size checked against memory, its chunks decoded within it."""
        nbytes = int(ds.size) * ds.dtype.itemsize
        limits.check_memory(2 * nbytes, self.path, where, f"{ds.shape} {ds.dtype}, read whole")
        reader = BlockReader(ds, self.path, where)
        return reader.rows_of(0, ds.shape[0], ds) if ds.shape[0] else np.empty(ds.shape, ds.dtype)

    def _read_codes(self, f: h5py.File) -> torch.Tensor | None:
        if "codes" not in f:
            return None
        codes = member(f, "codes", self.path)
        if codes.dtype.kind not in "iu" or codes.ndim != 2 or codes.shape[1] != self.num_classes:
            raise SpikeFileError(
                f"{self.path}: codes are {codes.dtype} {codes.shape}; expected integer bits [C, {self.num_classes}] (num_classes)"
            )
        return torch.from_numpy(_bits(self._read_whole(codes, "codes"), self.path, "codes").astype(np.float32))

    def _read_targets(self, group: h5py.Group) -> np.ndarray:
        kind, where = self.meta["target_kind"], f"{self.split}/{self.meta['target_kind']}"
        y_ds = member(group, kind, self.path)
        if y_ds.ndim != (1 if kind == "labels" else 2) or y_ds.shape[0] != self._n:
            raise SpikeFileError(f"{self.path}: {where} has shape {y_ds.shape} for {self._n} samples")
        if y_ds.dtype.kind not in "iu":
            raise SpikeFileError(f"{self.path}: {where} are {y_ds.dtype}; expected integers")
        if kind == "labels":
            y = self._read_whole(y_ds, where).astype(np.int64)
            if y.min() < 0 or y.max() >= self.num_classes:
                raise SpikeFileError(f"{self.path}: {where} outside 0..{self.num_classes - 1}")
            return y
        if y_ds.shape[1] != self.num_classes:
            raise SpikeFileError(f"{self.path}: {where} has {y_ds.shape[1]} bits per target; num_classes is {self.num_classes}")
        limits.check_memory(4 * int(y_ds.size), self.path, where, "the targets as float32")
        y = _bits(self._read_whole(y_ds, where), self.path, where).astype(np.float32)
        if self.codes is None:
            raise SpikeFileError(f"{self.path}: bit-vector targets need the root dataset 'codes'")
        return y

    def _check_intensity(self, group: h5py.Group) -> int | None:
        """``levels`` of the split's ``intensity`` dataset, or None when it has none."""
        if "intensity" not in group:
            return None
        ds = member(group, "intensity", self.path)
        if ds.dtype != np.uint8 or ds.shape != (self._n, self.n_inputs):
            raise SpikeFileError(
                f"{self.path}: {self.split}/intensity is {ds.dtype} {ds.shape}, expected uint8 [{self._n}, {self.n_inputs}]"
            )
        return self._levels(ds, "intensity")

    def _check_analog(self, group: h5py.Group) -> int | None:
        """``levels`` of the split's ``analog`` dataset, or None when it has none."""
        if "analog" not in group:
            return None
        ds = member(group, "analog", self.path)
        want = (self._n, self.time_steps, self.n_inputs)
        if ds.dtype != np.uint8 or ds.shape != want:
            raise SpikeFileError(
                f"{self.path}: {self.split}/analog is {ds.dtype} {ds.shape}, expected uint8 [{', '.join(map(str, want))}] "
                f"for {self._n} samples, time_steps={self.time_steps}, n_inputs={self.n_inputs}"
            )
        return self._levels(ds, "analog")

    def _levels(self, ds: h5py.Dataset, name: str) -> int:
        levels = plain(ds.attrs.get("levels"))
        if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= 255:
            raise SpikeFileError(f"{self.path}: {self.split}/{name} has levels={levels!r}, expected an int in 1..255")
        return levels

    def _warn_chunking(self) -> None:
        reader = self._readers["spikes"]
        if reader.block_bytes > PATHOLOGICAL_CHUNK_BYTES:
            warnings.warn(
                f"{self.path}: {self.split}/spikes is stored in chunks of {reader.rows} samples "
                f"({limits.human_bytes(reader.block_bytes)} decoded): reading one sample decodes a whole chunk; "
                f"re-write the file with `mdn prep <dataset> --force` (or mdn_snntorch.spikefile.write_arrays), "
                f"which stores chunks of about 256 kB",
                ChunkingWarning,
                stacklevel=3,
            )

    # ---- per-process handles ------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_datasets"], state["_pid"] = None, {}, None
        return state

    @property
    def open_in_pid(self) -> int | None:
        """The process whose HDF5 handle this object holds (None before the first read, after :meth:`close`)."""
        return self._pid

    @property
    def has_analog(self) -> bool:
        """Whether the split keeps analog input levels (``analog``)."""
        return self.analog_levels is not None

    def _dataset(self, name: str) -> h5py.Dataset:
        """The stored dataset ``name`` of this split, through this process's own handle (opened on first use)."""
        if self._pid != os.getpid():
            self._open_here()
        return self._datasets[name]

    def _open_here(self) -> None:
        self._file, self._datasets, self._pid = None, {}, None  # a handle of another process is never used
        try:
            f = open_file(self.path, rdcc_nbytes=0)  # chunks are decoded and cached by the BlockReaders
        except SpikeFileError as err:
            raise InputChangedError(f"{self.path} changed during the run: it cannot be opened any more ({err})") from None
        try:
            meta, digest = meta_of(f, self.path)
            self.check_same(FileIdentity.of(os.fstat(f.id.get_vfd_handle()), meta, digest))
            self._datasets = {name: f[self.split][name] for name in self._readers}
        except BaseException:
            f.close()
            raise
        self._file, self._pid = f, os.getpid()

    def check_same(self, now: FileIdentity) -> None:
        changes = self.identity.changes(now)
        if changes:
            raise InputChangedError(
                f"{self.path} changed during the run ({'; '.join(changes)}); the run stopped, the finished epochs' files are kept"
            )

    def check_unchanged(self) -> None:
        """:class:`InputChangedError` when the file at :attr:`path` is not the one this dataset opened
        (size, modification time or meta data differ, or it is gone)."""
        try:
            st = os.stat(self.path)
        except OSError:
            raise InputChangedError(f"{self.path} changed during the run: it is gone") from None
        if (st.st_size, st.st_mtime_ns) != (self.identity.size, self.identity.mtime_ns):
            try:
                meta = read_meta(self.path)
            except SpikeFileError:
                meta = self.identity.meta
            self.check_same(FileIdentity.of(st, meta))

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next read); decoded chunks stay cached."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._datasets, self._pid = None, {}, None

    # ---- reading ------------------------------------------------------------------------
    def _index(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = (idx < -self._n) | (idx >= self._n)
        if bad.any():
            raise IndexError(f"index {int(idx[bad][0])} out of range for {self._n} samples")
        return idx % self._n

    def _take(self, name: str, indices: np.ndarray) -> np.ndarray:
        return self._readers[name].take(indices, self._dataset(name))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"a sample index is an int, got {type(index).__name__} (batches: __getitems__)")
        i = int(self._index(index)[0])
        reader = self._readers["spikes"]
        k = i // reader.rows
        row = reader.block(k, self._dataset("spikes"))[i - k * reader.rows]
        return torch.from_numpy(unpack_spikes(row, self.n_inputs)), torch.from_numpy(np.asarray(self._y[i]))

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Samples ``indices`` (PyTorch's batched fetching): one read per chunk touched, one unpacking for all."""
        idx = self._index(indices)
        x = torch.from_numpy(unpack_spikes(self._take("spikes", idx), self.n_inputs))
        return list(zip(x.unbind(0), self.targets(idx).unbind(0)))

    def read_packed(self, indices: np.ndarray) -> np.ndarray:
        """Packed spikes uint8 ``[len(indices), T, P]`` of ``indices``, each chunk they touch decoded once."""
        return self._take("spikes", self._index(indices))

    def require_intensity(self) -> int:
        """``intensity_levels``, or :class:`SpikeFileError` when the split keeps no intensities."""
        if self.intensity_levels is None:
            raise SpikeFileError(
                f"{self.path}: split {self.split!r} keeps no intensities to redraw spikes from (encoding "
                f"{self.meta['encoding']!r}); re-create it with the current `mdn prep` or do not resample"
            )
        return self.intensity_levels

    def read_intensity(self, indices: np.ndarray) -> np.ndarray:
        """Intensities uint8 ``[len(indices), D]`` of ``indices``."""
        self.require_intensity()
        return self._take("intensity", self._index(indices))

    def require_analog(self) -> int:
        """``analog_levels``, or :class:`SpikeFileError` when the split keeps no analog input."""
        if self.analog_levels is None:
            raise SpikeFileError(
                f"{self.path}: split {self.split!r} keeps no analog input (dataset {self.split}/analog; encoding "
                f"{self.meta['encoding']!r}); the converters {', '.join(ANALOG_CONVERTERS)} write it: re-create the file "
                "with the current `mdn prep`, or feed spikes"
            )
        return self.analog_levels

    def read_analog_levels(self, indices: np.ndarray) -> np.ndarray:
        """Analog levels uint8 ``[len(indices), T, D]`` (``0..analog_levels``) of ``indices``."""
        levels = self.require_analog()
        out = self._take("analog", self._index(indices))
        if out.size and out.max() > levels:
            raise SpikeFileError(f"{self.path}: {self.split}/analog holds values above its levels={levels} (damaged file?)")
        return out

    def read_analog(self, indices: np.ndarray) -> np.ndarray:
        """Analog input float32 ``[len(indices), T, D]`` in [0, 1] (``analog / levels``) of ``indices``."""
        return analog_values(self.read_analog_levels(indices), self.require_analog())

    def targets(self, indices: np.ndarray) -> torch.Tensor:
        """Labels (int64 ``[B]``) or targets (float32 ``[B, K]``) of ``indices``."""
        return torch.from_numpy(self._y[indices])


def analog_values(levels: np.ndarray, n_levels: int) -> np.ndarray:
    """Stored analog levels (uint8, any shape) -> float32 values ``levels / n_levels`` in [0, 1]."""
    return np.ascontiguousarray(levels, dtype=np.float32) / np.float32(n_levels)


def _bits(values: np.ndarray, path: Path, where: str) -> np.ndarray:
    """``values`` when they are all 0 or 1, else :class:`SpikeFileError`."""
    if values.size and (values.min() < 0 or values.max() > 1):
        raise SpikeFileError(f"{path}: {where} must hold bits (0 or 1)")
    return values
