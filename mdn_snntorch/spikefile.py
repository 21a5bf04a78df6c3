"""HDF5 spike files (format ``mdn-spikes``): the format, its reader and its writer.

One file holds one data set in one encoding. Root attributes carry the meta data (:data:`META_KEYS`);
groups ``train`` and ``test`` each hold

- ``spikes``: uint8 ``[N, T, ceil(D / 8)]``, the binary spike trains packed along the feature axis
  (``numpy.packbits``, big bit order: feature ``d`` is bit ``7 - d % 8`` of byte ``d // 8``), chunked
  by blocks of samples and compressed;
- ``labels``: int64 ``[N]`` (``target_kind == "labels"``) or ``targets``: uint8 ``[N, K]`` bit vectors
  (``target_kind == "targets"``, NETtalk), with the code table ``codes`` uint8 ``[C, K]`` at the root;
- optionally (rate-coded images) ``intensity``: uint8 ``[N, D]`` with the attribute ``levels`` ``L``,
  the spike probability of every input at every step being ``p = intensity / L``.

With ``resample`` the loader (:mod:`mdn_snntorch.pipeline.loader`) ignores the stored spikes of such
a split and draws new ones for every batch, ``S[t, b, d] = [r < intensity[b, d]]`` with ``r`` uniform on
``{0, ..., L - 1}`` (exactly
Bernoulli(p)), from a generator seeded by ``(seed, epoch, rank, window)``: a fresh realisation each epoch,
the same one for the same seed and epoch.

h5py is imported on first use (the ``data`` extra). Loader batches are time-major: ``x [T, B, D]`` float32
(0/1), ``y [B]`` int64 or ``[B, K]`` float32.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mdn_snntorch.extras import require

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


class SpikeFileError(ValueError):
    """A spike file that is missing, not HDF5, of another format or version, or inconsistent."""


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
    try:
        version = int(attrs["version"])
    except (KeyError, TypeError, ValueError) as err:
        raise SpikeFileError(f"{path}: missing or invalid 'version' attribute") from err
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
            raise SpikeFileError(
                f"{self.path}: {split}/intensity is {ds.dtype} {ds.shape}, expected uint8 [{self._n}, {self.n_inputs}]"
            )
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
        return (
            np.concatenate([intensity[a : a + n] for a, n in _runs(indices)])
            if len(indices)
            else np.empty((0, self.n_inputs), np.uint8)
        )

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
    """``out`` as a Path; :class:`SpikeFileError` if it exists and ``force`` is false."""
    out = Path(out)
    if out.is_dir():
        raise SpikeFileError(f"output {out} is a directory; give a file name such as {out / 'data.h5'}")
    if out.exists() and not force:
        raise SpikeFileError(f"output {out} already exists; pass --force (force=True) to overwrite it")
    return out


class SpikeFileWriter:
    """Context manager writing one spike file. ``meta`` needs every key of ``META_KEYS`` except
    ``format`` and ``version``; with ``target_kind == "targets"`` pass the code table ``codes``."""

    def __init__(
        self,
        out: str | os.PathLike,
        meta: dict[str, Any],
        *,
        force: bool = False,
        codes: np.ndarray | None = None,
        intensity_levels: int | None = None,
    ):
        self.out = check_target(out, force)
        if intensity_levels is not None and not 1 <= int(intensity_levels) <= 255:
            raise ValueError(f"intensity_levels must be in 1..255 (uint8 intensities), got {intensity_levels!r}")
        self.intensity_levels = intensity_levels
        self.force = force
        self.meta = {"format": FORMAT, "version": VERSION, **meta}
        self._attrs = encode_meta(self.meta)
        if (meta.get("target_kind") == "targets") != (codes is not None):
            raise ValueError("a code table `codes` goes with target_kind 'targets' and only with it")
        self.codes = codes
        self.compression, self.compression_opts = COMPRESSION
        self.time_steps = int(meta["time_steps"])
        self.n_inputs = int(meta["n_inputs"])
        self.rows = chunk_rows(self.time_steps, self.n_inputs)
        self.tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        self._file: h5py.File | None = None
        self._filled: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def __enter__(self) -> SpikeFileWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._file = require("h5py", "data").File(self.tmp, "w")
        self._file.attrs.update(self._attrs)
        if self.codes is not None:
            self._file.create_dataset("codes", data=np.asarray(self.codes, dtype=np.uint8))
        return self

    def create_split(self, split: str, n: int, n_targets: int | None = None) -> None:
        """Create split ``split`` for ``n`` samples (``n_targets`` bits per target for bit-vector targets)."""
        f = self._require_open()
        g = f.create_group(split)
        shape = (n, self.time_steps, packed_width(self.n_inputs))
        chunks = (max(1, min(self.rows, n)), *shape[1:])
        g.create_dataset(
            "spikes", shape=shape, dtype=np.uint8, chunks=chunks if n else None,
            compression=self.compression if n else None, compression_opts=self.compression_opts if n else None,
        )  # fmt: skip
        if self.intensity_levels is not None:
            g.create_dataset(
                "intensity", shape=(n, self.n_inputs), dtype=np.uint8, chunks=(chunks[0], self.n_inputs) if n else None,
                compression=self.compression if n else None, compression_opts=self.compression_opts if n else None,
            )  # fmt: skip
            g["intensity"].attrs["levels"] = int(self.intensity_levels)
        if self.meta["target_kind"] == "labels":
            g.create_dataset("labels", shape=(n,), dtype=np.int64)
        else:
            g.create_dataset("targets", shape=(n, int(n_targets or 0)), dtype=np.uint8)
        self._filled[split], self._sizes[split] = 0, n

    def write(self, split: str, packed: np.ndarray, y: np.ndarray, intensity: np.ndarray | None = None) -> None:
        """Append packed spikes ``[b, T, P]`` and their labels ``[b]`` / targets ``[b, K]`` to ``split``;
        with ``intensity_levels`` also their intensities, integers ``[b, D]`` in ``0..levels``."""
        g = self._require_open()[split]
        start = self._filled[split]
        stop = start + len(packed)
        if stop > self._sizes[split] or len(y) != len(packed):
            raise ValueError(
                f"{split}: writing {len(packed)} samples ({len(y)} labels) at {start} overflows {self._sizes[split]}"
            )
        if (intensity is None) != (self.intensity_levels is None):
            raise ValueError("intensities go with intensity_levels and only with it")
        if intensity is not None:
            intensity = np.asarray(intensity)
            if intensity.shape != (len(packed), self.n_inputs):
                raise ValueError(f"{split}: intensity is {intensity.shape}, expected {(len(packed), self.n_inputs)}")
            if intensity.size and (intensity.min() < 0 or intensity.max() > self.intensity_levels):
                raise ValueError(f"{split}: intensities outside 0..{self.intensity_levels}")
            g["intensity"][start:stop] = intensity.astype(np.uint8)
        g["spikes"][start:stop] = packed
        g[self.meta["target_kind"]][start:stop] = y
        self._filled[split] = stop

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError("SpikeFileWriter is used outside its `with` block")
        return self._file

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._file = self._file, None
        try:
            if f is not None:
                f.close()
            if exc_type is None:
                short = {s: (n, self._filled[s]) for s, n in self._sizes.items() if self._filled[s] != n}
                if short:
                    raise RuntimeError(f"{self.out}: splits not completely written (samples, written): {short}")
                check_target(self.out, self.force)  # it may have appeared meanwhile
                os.replace(self.tmp, self.out)
        finally:
            if self.tmp.exists():
                self.tmp.unlink()
