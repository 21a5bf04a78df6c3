"""HDF5 spike files (format ``mdn-spikes``): the format, its reader and its writer.

One file holds one data set in one encoding. Root attributes carry the meta data (:data:`META_KEYS`);
groups ``train`` and ``test`` each hold

- ``spikes``: uint8 ``[N, T, ceil(D / 8)]``, the binary spike trains packed along the feature axis
  (``numpy.packbits``, big bit order: feature ``d`` is bit ``7 - d % 8`` of byte ``d // 8``), chunked
  by blocks of samples and compressed;
- ``labels``: int64 ``[N]`` (``target_kind == "labels"``) or ``targets``: uint8 ``[N, K]`` bit vectors
  (``target_kind == "targets"``, NETtalk), with the code table ``codes`` uint8 ``[C, K]`` at the root;
- optionally (rate-coded images) ``intensity``: uint8 ``[N, D]`` with the attribute ``levels`` ``L``,
  the spike probability of every input at every step being ``p = intensity / L``;
- optionally (the audio converters) ``analog``: uint8 ``[N, T, D]`` with the attribute ``levels`` ``L``,
  the spike probability of every input at every step rounded to a level, ``analog[t, d] = round(L p[t, d])``:
  the analog input the spikes were drawn from.

With ``resample`` the loader (:mod:`mdn_snntorch.pipeline.loader`) ignores the stored spikes of a split
with ``intensity`` and draws new ones for every batch, ``S[t, b, d] = [r < intensity[b, d]]`` with ``r`` uniform on
``{0, ..., L - 1}`` (exactly
Bernoulli(p)), from a generator seeded by ``(seed, epoch, rank, window)``: a fresh realisation each epoch,
the same one for the same seed and epoch. With ``analog`` it feeds ``analog / L`` itself instead of spikes.

h5py is imported on first use (the ``data`` extra). Loader batches are time-major: ``x [T, B, D]`` float32
(0/1, or analog values in [0, 1]), ``y [B]`` int64 or ``[B, K]`` float32.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mdn_snntorch import signals
from mdn_snntorch.atomic import fsync_dir, prepare_file, temp_file, write_error
from mdn_snntorch.extras import require
from mdn_snntorch.runlock import claim_file

if TYPE_CHECKING:
    import h5py

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
#: HDF5 chunk cache per open file
CHUNK_CACHE_BYTES = 32 * 2**20
#: the most a dataset may expand over its stored bytes (deflate's limit is 1032:1)
MAX_COMPRESSION = 1100
#: the HDF5 filters a spike file may use
ALLOWED_FILTERS = ("gzip", "lzf", "shuffle", "fletcher32")
#: the most time steps a spike file may have, and the most spike bits per sample (T x D) the writer takes
MAX_TIME_STEPS = 100_000
MAX_SAMPLE_BITS = 2**28
#: the converters that store ``analog`` levels
ANALOG_CONVERTERS = ("tidigits", "spoken_digits", "timit")


class SpikeFileError(ValueError):
    """A spike file that is missing, not HDF5, of another format or version, or inconsistent."""


class InputChangedError(SpikeFileError):
    """The spike file of a running job was replaced or modified: the run stops (exit code 1)."""

    exit_code = 1


@dataclass(frozen=True)
class FileIdentity:
    """What pins a spike file for the length of a run: its size, modification time and meta data."""

    size: int
    mtime_ns: int
    meta: dict

    @classmethod
    def of(cls, st: os.stat_result, meta: dict) -> FileIdentity:
        return cls(int(st.st_size), int(st.st_mtime_ns), dict(meta))

    def to_dict(self) -> dict[str, int]:
        return {"size": self.size, "mtime_ns": self.mtime_ns}

    def changes(self, other: FileIdentity) -> list[str]:
        """What differs from ``other`` (the newer state), in words; empty when nothing does."""
        out = meta_changes(self.meta, other.meta)
        if other.size != self.size:
            out.append(f"size {self.size} -> {other.size} bytes")
        if other.mtime_ns != self.mtime_ns:
            out.append(f"modified at {_when(other.mtime_ns)} (was {_when(self.mtime_ns)})")
        return out


def _when(ns: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) + f".{ns % 10**9:09d}"


def meta_changes(old: dict, new: dict, ignore: tuple[str, ...] = ("package_version",)) -> list[str]:
    """The meta-data keys whose values differ, as ``"key old -> new"``."""
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in ignore]
    return [f"{k} {old.get(k, '(none)')!r} -> {new.get(k, '(none)')!r}" for k in keys if old.get(k) != new.get(k)]


def package_version() -> str:
    """The installed mdn-snntorch version, recorded in every file as ``package_version``."""
    try:
        return version("mdn-snntorch")
    except PackageNotFoundError:
        return "0+unknown"


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
    attrs["class_names"] = np.asarray([str(c) for c in meta["class_names"]], dtype=require("h5py", "data").string_dtype())
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
        if path.exists():
            raise SpikeFileError(f"{path}: not a regular file")
        raise SpikeFileError(f"{path}: no such spike file (make one with `mdn prep <dataset>`)")
    try:
        return require("h5py", "data").File(path, "r", **kwargs)
    except OSError as err:
        raise SpikeFileError(f"{path}: not a readable HDF5 file ({err})") from err


def _meta_of(f: h5py.File, path: Path) -> dict[str, Any]:
    attrs = f.attrs
    fmt = _plain(attrs.get("format"))
    if fmt != FORMAT:
        raise SpikeFileError(f"{path}: format attribute is {fmt!r}, expected {FORMAT!r}; not an mdn spike file")
    version = _plain(attrs.get("version"))
    if not _is_int(version):
        raise SpikeFileError(f"{path}: missing or invalid 'version' attribute ({version!r}; expected an integer)")
    if version > VERSION or version < 1:
        raise SpikeFileError(
            f"{path}: format version {version}; this reader supports versions 1..{VERSION} (update mdn-snntorch)"
        )
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
    for key in ("time_steps", "n_inputs", "num_classes"):
        if not _is_int(meta[key]) or meta[key] < 1:
            raise SpikeFileError(f"{path}: attribute {key!r} is {meta[key]!r}; expected a positive integer")
    if not _is_int(meta["seed"]):
        raise SpikeFileError(f"{path}: attribute 'seed' is {meta['seed']!r}; expected an integer")
    shape = meta["input_shape"]
    if not isinstance(shape, list) or not shape or not all(_is_int(d) and d >= 1 for d in shape):
        raise SpikeFileError(f"{path}: attribute 'input_shape' is {shape!r}; expected a list of positive integers")
    if math.prod(shape) != meta["n_inputs"]:
        raise SpikeFileError(f"{path}: input_shape {meta['input_shape']} does not hold n_inputs={meta['n_inputs']}")
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _member(group: h5py.Group, name: str, path: Path, kind: str = "dataset") -> Any:
    """``group[name]``, refused when it is a soft or external link (the data must be in this file)."""
    h5py = require("h5py", "data")
    where = f"{group.name.rstrip('/')}/{name}".lstrip("/")
    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise SpikeFileError(f"{path}: {where} is a link ({type(link).__name__}); a spike file must hold its data itself")
    obj = group[name]
    expected = h5py.Dataset if kind == "dataset" else h5py.Group
    if not isinstance(obj, expected):
        raise SpikeFileError(f"{path}: {where} is not a {kind}")
    if kind == "dataset":
        _check_storage(obj, where, path)
    return obj


def _check_storage(ds: h5py.Dataset, where: str, path: Path) -> None:
    """Refuse external or virtual storage, unknown filters, and declared sizes the stored bytes cannot hold."""
    h5py = require("h5py", "data")
    if ds.external:
        raise SpikeFileError(f"{path}: {where} uses HDF5 external storage (data in other files); refused")
    if ds.is_virtual:
        raise SpikeFileError(f"{path}: {where} is a virtual dataset (data in other files); refused")
    filters = [str(k) for k in h5py.filters.get_filters(ds.id.get_create_plist())]
    unknown = [f for f in filters if f not in ALLOWED_FILTERS]
    if unknown:
        raise SpikeFileError(
            f"{path}: {where} uses the HDF5 filter(s) {', '.join(unknown)}; allowed: {', '.join(ALLOWED_FILTERS)}"
        )
    stored, declared = int(ds.id.get_storage_size()), int(ds.size) * ds.dtype.itemsize
    file_size = os.path.getsize(path)
    if stored > file_size:
        raise SpikeFileError(f"{path}: {where} claims {stored} stored bytes in a file of {file_size}")
    if declared > MAX_COMPRESSION * stored + 2**16:
        raise SpikeFileError(
            f"{path}: {where} declares shape {ds.shape} ({declared} bytes) but stores only {stored} bytes; "
            "the file is damaged or forged"
        )


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The root meta data of a spike file as plain Python values, after checking format and version.

    Raises :class:`SpikeFileError` naming the file and what is wrong.
    """
    with _open(path) as f:
        return _meta_of(f, Path(path))


class SpikeDataset(Dataset):
    """One split of a spike file. ``ds[i] -> (spikes [T, D] float32, label int64 | target [K] float32)``.

    The HDF5 file is opened lazily, once per process (so the object pickles into DataLoader workers);
    labels / targets are read once at construction. ``identity`` pins the file opened at construction:
    every later opening (a DataLoader worker, a new epoch) and :meth:`check_unchanged` compare against it.
    """

    def __init__(self, path: str | os.PathLike, split: str):
        self.path = Path(path)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        with _open(self.path) as f:
            self.meta = _meta_of(f, self.path)
            self.identity = FileIdentity.of(os.fstat(f.id.get_vfd_handle()), self.meta)
            if split not in f:
                raise SpikeFileError(f"{self.path}: has no split {split!r} (groups: {', '.join(sorted(f))})")
            group = _member(f, split, self.path, "group")
            kind = self.meta["target_kind"]
            for name in ("spikes", kind):
                if name not in group:
                    raise SpikeFileError(f"{self.path}: split {split!r} lacks the dataset {name!r}")
            spikes = _member(group, "spikes", self.path)
            self.n_inputs = int(self.meta["n_inputs"])
            self.time_steps = int(self.meta["time_steps"])
            want = (self.time_steps, packed_width(self.n_inputs))
            if spikes.ndim != 3 or spikes.shape[1:] != want or spikes.dtype != np.uint8:
                raise SpikeFileError(
                    f"{self.path}: {split}/spikes is {spikes.dtype} {spikes.shape}, expected uint8 [N, {want[0]}, {want[1]}] "
                    f"for time_steps={self.time_steps}, n_inputs={self.n_inputs}"
                )
            self._n = int(spikes.shape[0])
            if self._n == 0:
                raise SpikeFileError(f"{self.path}: split {split!r} holds no samples")
            self.block = int(spikes.chunks[0]) if spikes.chunks else max(1, self._n)
            y_ds = _member(group, kind, self.path)
            if y_ds.ndim != (1 if kind == "labels" else 2) or y_ds.shape[0] != self._n:
                raise SpikeFileError(f"{self.path}: {split}/{kind} has shape {y_ds.shape} for {self._n} samples")
            if y_ds.dtype.kind not in "iu":
                raise SpikeFileError(f"{self.path}: {split}/{kind} are {y_ds.dtype}; expected integers")
            y = _read(y_ds, self.path, f"{split}/{kind}")
            self.codes = None
            if "codes" in f:
                codes = _member(f, "codes", self.path)
                if codes.dtype.kind not in "iu" or codes.ndim != 2:
                    raise SpikeFileError(f"{self.path}: codes are {codes.dtype} {codes.shape}; expected integer bits [C, K]")
                self.codes = torch.from_numpy(_bits(_read(codes, self.path, "codes"), self.path, "codes").astype(np.float32))
            self.intensity_levels = self._check_intensity(group, split)
            self.analog_levels = self._check_analog(group, split)
        self.num_classes = int(self.meta["num_classes"])
        if kind == "labels":
            self._y = y.astype(np.int64)
            if self._y.min() < 0 or self._y.max() >= self.num_classes:
                raise SpikeFileError(f"{self.path}: {split}/labels outside 0..{self.num_classes - 1}")
        else:
            self._y = _bits(y, self.path, f"{split}/targets").astype(np.float32)
            if self.codes is None:
                raise SpikeFileError(f"{self.path}: bit-vector targets need the root dataset 'codes'")
        self._file: h5py.File | None = None
        self._pid = -1

    def _check_intensity(self, group: h5py.Group, split: str) -> int | None:
        """``levels`` of the split's ``intensity`` dataset, or None when it has none."""
        if "intensity" not in group:
            return None
        ds = _member(group, "intensity", self.path)
        if ds.dtype != np.uint8 or ds.shape != (self._n, self.n_inputs):
            raise SpikeFileError(
                f"{self.path}: {split}/intensity is {ds.dtype} {ds.shape}, expected uint8 [{self._n}, {self.n_inputs}]"
            )
        levels = _plain(ds.attrs.get("levels"))
        if not isinstance(levels, int) or not 1 <= levels <= 255:
            raise SpikeFileError(f"{self.path}: {split}/intensity has levels={levels!r}, expected an int in 1..255")
        return levels

    def _check_analog(self, group: h5py.Group, split: str) -> int | None:
        """``levels`` of the split's ``analog`` dataset, or None when it has none."""
        if "analog" not in group:
            return None
        ds = _member(group, "analog", self.path)
        want = (self._n, self.time_steps, self.n_inputs)
        if ds.dtype != np.uint8 or ds.shape != want:
            raise SpikeFileError(
                f"{self.path}: {split}/analog is {ds.dtype} {ds.shape}, expected uint8 [{', '.join(map(str, want))}] "
                f"for {self._n} samples, time_steps={self.time_steps}, n_inputs={self.n_inputs}"
            )
        levels = _plain(ds.attrs.get("levels"))
        if not _is_int(levels) or not 1 <= levels <= 255:
            raise SpikeFileError(f"{self.path}: {split}/analog has levels={levels!r}, expected an int in 1..255")
        return levels

    @property
    def has_analog(self) -> bool:
        """Whether the split keeps analog input levels (``analog``)."""
        return self.analog_levels is not None

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state

    def _spikes(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            try:
                f = _open(self.path, rdcc_nbytes=CHUNK_CACHE_BYTES)
            except SpikeFileError as err:
                raise InputChangedError(f"{self.path} changed during the run: it cannot be opened any more ({err})") from None
            try:
                self.check_same(FileIdentity.of(os.fstat(f.id.get_vfd_handle()), _meta_of(f, self.path)))
            except BaseException:
                f.close()
                raise
            self._file, self._pid = f, os.getpid()
        return self._file[self.split]["spikes"]

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
        """Close this process's file handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, -1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(index)
        if not -self._n <= i < self._n:
            raise IndexError(f"index {index} out of range for {self._n} samples")
        i %= self._n
        spikes = self._spikes()
        x = torch.from_numpy(unpack_spikes(_read(spikes, self.path, f"{self.split}/spikes", i), self.n_inputs))
        return x, torch.from_numpy(np.asarray(self._y[i]))

    def read_packed(self, indices: np.ndarray) -> np.ndarray:
        """Packed spikes uint8 ``[len(indices), T, P]`` of sorted, unique ``indices``, read as one
        contiguous slice per run of consecutive indices."""
        spikes = self._spikes()
        out = np.empty((len(indices), *spikes.shape[1:]), dtype=np.uint8)
        done = 0
        for a, n in _runs(indices):
            try:
                spikes.read_direct(out, np.s_[a : a + n], np.s_[done : done + n])
            except OSError as err:
                raise SpikeFileError(f"{self.path}: cannot read {self.split}/spikes samples {a}..{a + n - 1}: {err}") from None
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
        where = f"{self.split}/intensity"
        return (
            np.concatenate([_read(intensity, self.path, where, np.s_[a : a + n]) for a, n in _runs(indices)])
            if len(indices)
            else np.empty((0, self.n_inputs), np.uint8)
        )

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
        """Analog levels uint8 ``[len(indices), T, D]`` (``0..analog_levels``) of sorted, unique ``indices``."""
        levels = self.require_analog()
        analog = self._spikes().parent["analog"]
        where = f"{self.split}/analog"
        out = (
            np.concatenate([_read(analog, self.path, where, np.s_[a : a + n]) for a, n in _runs(indices)])
            if len(indices)
            else np.empty((0, self.time_steps, self.n_inputs), np.uint8)
        )
        if out.size and out.max() > levels:
            raise SpikeFileError(f"{self.path}: {where} holds values above its levels={levels} (damaged file?)")
        return out

    def read_analog(self, indices: np.ndarray) -> np.ndarray:
        """Analog input float32 ``[len(indices), T, D]`` in [0, 1] (``analog / levels``) of sorted, unique ``indices``."""
        return analog_values(self.read_analog_levels(indices), self.require_analog())

    def targets(self, indices: np.ndarray) -> torch.Tensor:
        """Labels (int64 ``[B]``) or targets (float32 ``[B, K]``) of ``indices``."""
        return torch.from_numpy(self._y[indices])


def analog_values(levels: np.ndarray, n_levels: int) -> np.ndarray:
    """Stored analog levels (uint8, any shape) -> float32 values ``levels / n_levels`` in [0, 1]."""
    return np.ascontiguousarray(levels, dtype=np.float32) / np.float32(n_levels)


def _read(ds: h5py.Dataset, path: Path, where: str, selection: Any = ()) -> np.ndarray:
    """``ds[selection]``; a damaged chunk (an HDF5 read error) becomes a :class:`SpikeFileError` naming the file."""
    try:
        return ds[selection]
    except OSError as err:
        raise SpikeFileError(f"{path}: cannot read {where} (damaged file?): {err}") from None


def _bits(values: np.ndarray, path: Path, where: str) -> np.ndarray:
    """``values`` when they are all 0 or 1, else :class:`SpikeFileError`."""
    if values.size and (values.min() < 0 or values.max() > 1):
        raise SpikeFileError(f"{path}: {where} must hold bits (0 or 1)")
    return values


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted, unique ``indices`` as ``(start, length)`` runs of consecutive values."""
    indices = np.asarray(indices, dtype=np.int64)
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    return [(int(run[0]), len(run)) for run in np.split(indices, breaks)]


# --------------------------------------------------------------------------------------------
# writing: a temporary name, then rename
#: target size of one HDF5 chunk (a block of whole samples), bytes before compression
CHUNK_BYTES = 256 * 2**10
#: HDF5 filter and its option for the packed spikes of new files, chosen by measurement
#: (``benchmarks/bench_data.py --compare-compression``; figures in docs/data.md)
COMPRESSION: tuple[str | None, int | None] = ("gzip", 4)


def chunk_rows(time_steps: int, n_inputs: int) -> int:
    """Samples per HDF5 chunk: as many whole samples as fit :data:`CHUNK_BYTES`."""
    return max(1, CHUNK_BYTES // (time_steps * packed_width(n_inputs)))


def check_target(out: str | os.PathLike, force: bool) -> Path:
    """``out`` as a Path; :class:`SpikeFileError` if it is a folder, or exists and ``force`` is false."""
    out = Path(out)
    if out.is_dir():
        raise SpikeFileError(f"output {out} is a directory; give a file name such as {out / 'data.h5'}")
    if os.path.lexists(out) and not force:
        raise SpikeFileError(f"output {out} already exists; pass --force (force=True) to overwrite it")
    return out


def check_output(out: str | os.PathLike, force: bool) -> Path:
    """:func:`check_target` and a writable folder (created when missing): what ``mdn prep`` checks before converting."""
    out = check_target(out, force)
    prepare_file(out, "output")
    return out


def output_lock(out: str | os.PathLike):
    """The claim on the output spike file ``out`` (a context manager; re-entrant, see :mod:`mdn_snntorch.runlock`)."""
    return claim_file(out, "spike file")


class SpikeFileWriter:
    """Context manager writing one spike file. ``meta`` needs every key of ``META_KEYS`` except
    ``format`` and ``version``; with ``target_kind == "targets"`` pass the code table ``codes``.

    Entering claims ``out`` (:func:`output_lock`) and creates the temporary file exclusively; leaving
    without an error (and without a pending Ctrl-C or SIGTERM) fsyncs it and renames it onto ``out``;
    otherwise the temporary file is removed and ``out`` stays as it was. A write the file system refuses
    (disk full) is a :class:`~mdn_snntorch.atomic.WriteError` naming ``out``: HDF5 is then pointed at
    ``/dev/null`` before its file is closed, because closing a file whose writes failed can crash it.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        meta: dict[str, Any],
        *,
        force: bool = False,
        codes: np.ndarray | None = None,
        intensity_levels: int | None = None,
        analog_levels: int | None = None,
    ):
        self.out = check_target(out, force)
        if intensity_levels is not None and not 1 <= int(intensity_levels) <= 255:
            raise ValueError(f"intensity_levels must be in 1..255 (uint8 intensities), got {intensity_levels!r}")
        whole = isinstance(analog_levels, (int, np.integer)) and not isinstance(analog_levels, bool)
        if analog_levels is not None and not (whole and 1 <= analog_levels <= 255):
            raise ValueError(f"analog_levels must be an int in 1..255 (uint8 levels), got {analog_levels!r}")
        self.intensity_levels = intensity_levels
        self.analog_levels = analog_levels
        self.force = force
        self.meta = {"format": FORMAT, "version": VERSION, **meta}
        self._attrs = encode_meta(self.meta)
        if (meta.get("target_kind") == "targets") != (codes is not None):
            raise ValueError("a code table `codes` goes with target_kind 'targets' and only with it")
        for key in ("time_steps", "n_inputs", "num_classes"):
            value = meta[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"spike-file meta data: {key} must be a positive integer, got {value!r}")
        self.codes = codes
        self.compression, self.compression_opts = COMPRESSION
        self.time_steps = int(meta["time_steps"])
        self.n_inputs = int(meta["n_inputs"])
        if self.time_steps > MAX_TIME_STEPS or self.time_steps * self.n_inputs > MAX_SAMPLE_BITS:
            raise SpikeFileError(
                f"{self.out}: {self.time_steps} time steps x {self.n_inputs} inputs per sample is too large "
                f"(at most {MAX_TIME_STEPS} steps and {MAX_SAMPLE_BITS} spike bits per sample)"
            )
        self.rows = chunk_rows(self.time_steps, self.n_inputs)
        self.tmp: Path | None = None
        self._fd: int | None = None
        self._file: h5py.File | None = None
        self._datasets: dict[str, dict[str, h5py.Dataset]] = {}
        self._stack: ExitStack | None = None
        self._filled: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def __enter__(self) -> SpikeFileWriter:
        h5py = require("h5py", "data")
        with ExitStack() as stack:
            stack.enter_context(output_lock(self.out))
            self._remove_stale_temporaries()
            try:
                self._fd, self.tmp = temp_file(self.out)
            except OSError as err:
                raise write_error(self.out, err, self._kept()) from err
            stack.callback(self._discard)
            os.fchmod(self._fd, _default_mode())
            self._file = self._hdf5(lambda: h5py.File(self.tmp, "w"))
            # the file h5py opened must be the one created exclusively above (no swap in between)
            ours, opened = os.fstat(self._fd), os.fstat(self._file.id.get_vfd_handle())
            if (ours.st_dev, ours.st_ino) != (opened.st_dev, opened.st_ino):
                raise SpikeFileError(f"{self.tmp}: the temporary file was replaced while opening it; refused")
            self._hdf5(lambda: self._file.attrs.update(self._attrs))
            if self.codes is not None:
                self._hdf5(lambda: self._file.create_dataset("codes", data=np.asarray(self.codes, dtype=np.uint8)))
            self._stack = stack.pop_all()
        return self

    def _hdf5(self, action: Any) -> Any:
        """``action()``; an HDF5 failure (h5py raises OSError or RuntimeError) becomes a WriteError naming ``out``."""
        try:
            return action()
        except (OSError, RuntimeError) as err:
            raise _hdf5_write_error(self.out, err, self._kept()) from None

    def _kept(self) -> str:
        return f"{self.out} is unchanged" if os.path.lexists(self.out) else f"{self.out} was not written"

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of earlier writers of ``out`` whose process is gone (killed with SIGKILL): the lock is
        held, so no live writer owns one."""
        for tmp in self.out.parent.glob(f".{self.out.name}.*.tmp"):
            pid = tmp.name[len(self.out.name) + 2 :].split(".")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)

    def _discard(self) -> None:
        """Close and remove the temporary file (a no-op after a successful rename). HDF5 writes into /dev/null
        from here on: nothing it still has to flush is wanted, and a file whose writes failed can crash it."""
        f, self._file = self._file, None
        try:
            if f is not None:
                devnull = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(devnull, f.id.get_vfd_handle())
                finally:
                    os.close(devnull)
                self._datasets.clear()
                f.close()
        except Exception:
            pass
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)

    def create_split(self, split: str, n: int, n_targets: int | None = None) -> None:
        """Create split ``split`` for ``n`` samples (``n_targets`` bits per target for bit-vector targets)."""
        f = self._require_open()
        self._datasets[split] = self._hdf5(lambda: self._create_split(f, split, n, n_targets))
        self._filled[split], self._sizes[split] = 0, n

    def _create_split(self, f: h5py.File, split: str, n: int, n_targets: int | None) -> dict[str, h5py.Dataset]:
        g = f.create_group(split)
        shape = (n, self.time_steps, packed_width(self.n_inputs))
        chunks = (max(1, min(self.rows, n)), *shape[1:])
        out = {}
        out["spikes"] = g.create_dataset(
            "spikes", shape=shape, dtype=np.uint8, chunks=chunks if n else None,
            compression=self.compression if n else None, compression_opts=self.compression_opts if n else None,
        )  # fmt: skip
        if self.intensity_levels is not None:
            out["intensity"] = g.create_dataset(
                "intensity", shape=(n, self.n_inputs), dtype=np.uint8, chunks=(chunks[0], self.n_inputs) if n else None,
                compression=self.compression if n else None, compression_opts=self.compression_opts if n else None,
            )  # fmt: skip
            out["intensity"].attrs["levels"] = int(self.intensity_levels)
        if self.analog_levels is not None:
            out["analog"] = g.create_dataset(
                "analog", shape=(n, self.time_steps, self.n_inputs), dtype=np.uint8,
                chunks=(chunks[0], self.time_steps, self.n_inputs) if n else None,
                compression=self.compression if n else None, compression_opts=self.compression_opts if n else None,
            )  # fmt: skip
            out["analog"].attrs["levels"] = int(self.analog_levels)
        if self.meta["target_kind"] == "labels":
            out["labels"] = g.create_dataset("labels", shape=(n,), dtype=np.int64)
        else:
            out["targets"] = g.create_dataset("targets", shape=(n, int(n_targets or 0)), dtype=np.uint8)
        return out  # kept open: a chunk flushed when a dataset closes would fail where no one sees it

    def write(
        self, split: str, packed: np.ndarray, y: np.ndarray, intensity: np.ndarray | None = None, analog: np.ndarray | None = None
    ) -> None:
        """Append packed spikes ``[b, T, P]`` and their labels ``[b]`` / targets ``[b, K]`` to ``split``;
        with ``intensity_levels`` also their intensities, integers ``[b, D]`` in ``0..levels``, and with
        ``analog_levels`` their analog levels, integers ``[b, T, D]`` in ``0..levels``."""
        signals.check()  # a Ctrl-C swallowed somewhere (a finaliser) still stops the conversion
        self._require_open()
        datasets = self._datasets[split]
        start = self._filled[split]
        stop = start + len(packed)
        if stop > self._sizes[split] or len(y) != len(packed):
            raise ValueError(
                f"{split}: writing {len(packed)} samples ({len(y)} labels) at {start} overflows {self._sizes[split]}"
            )
        y = self._check_targets(split, np.asarray(y))
        if (intensity is None) != (self.intensity_levels is None):
            raise ValueError("intensities go with intensity_levels and only with it")
        if intensity is not None:
            intensity = np.asarray(intensity)
            if intensity.shape != (len(packed), self.n_inputs):
                raise ValueError(f"{split}: intensity is {intensity.shape}, expected {(len(packed), self.n_inputs)}")
            if intensity.size and (intensity.min() < 0 or intensity.max() > self.intensity_levels):
                raise ValueError(f"{split}: intensities outside 0..{self.intensity_levels}")
        if (analog is None) != (self.analog_levels is None):
            raise ValueError("analog levels go with analog_levels and only with it")
        if analog is not None:
            analog = np.asarray(analog)
            want = (len(packed), self.time_steps, self.n_inputs)
            if analog.shape != want:
                raise ValueError(f"{split}: analog is {analog.shape}, expected {want}")
            if analog.size and analog.dtype.kind not in "iub":
                raise ValueError(f"{split}: analog levels must be integers (round them), got {analog.dtype}")
            if analog.size and (analog.min() < 0 or analog.max() > self.analog_levels):
                raise ValueError(f"{split}: analog levels outside 0..{self.analog_levels}")
        if intensity is not None:
            self._hdf5(lambda: datasets["intensity"].__setitem__(slice(start, stop), intensity.astype(np.uint8)))
        if analog is not None:
            self._hdf5(lambda: datasets["analog"].__setitem__(slice(start, stop), analog.astype(np.uint8)))
        self._hdf5(lambda: datasets["spikes"].__setitem__(slice(start, stop), packed))
        self._hdf5(lambda: datasets[self.meta["target_kind"]].__setitem__(slice(start, stop), y))
        self._filled[split] = stop

    def _check_targets(self, split: str, y: np.ndarray) -> np.ndarray:
        """Labels must be whole numbers in ``0..num_classes - 1``, targets bits."""
        if y.size and y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            raise ValueError(f"{split}: {self.meta['target_kind']} must be integers, got e.g. {y[y != np.round(y)][0]!r}")
        if y.size and self.meta["target_kind"] == "labels" and (y.min() < 0 or y.max() >= int(self.meta["num_classes"])):
            raise ValueError(f"{split}: labels outside 0..{int(self.meta['num_classes']) - 1}")
        if y.size and self.meta["target_kind"] == "targets" and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{split}: targets must be bits (0 or 1)")
        return y

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError("SpikeFileWriter is used outside its `with` block")
        return self._file

    def __exit__(self, exc_type, exc, tb) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        with stack:  # on every way out: the temporary file removed (unless renamed), the lock released
            if exc_type is not None:
                return
            short = {s: (n, self._filled[s]) for s, n in self._sizes.items() if self._filled[s] != n}
            if short:
                raise RuntimeError(f"{self.out}: splits not completely written (samples, written): {short}")
            self._commit()

    def _commit(self) -> None:
        f = self._require_open()
        self._hdf5(f.flush)
        self._datasets.clear()
        self._file = None
        self._hdf5(f.close)
        try:
            os.fsync(self._fd)
        except OSError as err:
            raise write_error(self.out, err, self._kept()) from err
        signals.check()  # never publish a file after Ctrl-C or SIGTERM
        check_target(self.out, self.force)  # it may have appeared meanwhile
        try:
            os.replace(self.tmp, self.out)
        except OSError as err:
            raise write_error(self.out, err) from err
        self.tmp = None
        fsync_dir(self.out.parent)


def _hdf5_write_error(out: Path, err: BaseException, kept: str) -> OSError:
    """A WriteError from an h5py failure (its message holds the C library's errno and text)."""
    text = str(err)
    found = re.search(r"error message = '([^']*)'", text)
    number = re.search(r"errno = (\d+)", text)
    reason = found.group(1) if found else " ".join(text.split())[:200]
    return write_error(out, OSError(int(number.group(1)) if number else None, reason), kept)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
