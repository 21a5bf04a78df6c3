"""Writing spike files (format described in :mod:`mdn_snntorch.data`): temporary name, then rename.

A converter opens a :class:`SpikeFileWriter`, creates each split with its sample count, fills it
block by block and leaves the ``with`` block; only then does the file appear at its target path
(``os.replace``). An exception removes the temporary file and leaves any existing target untouched.

A rate-coded file written with ``intensity_levels = L`` also keeps each sample's intensities as uint8
``intensity [N, D]`` (dataset attribute ``levels = L``, spike probability ``p = intensity / L``), from
which the loader can redraw the spikes every epoch (``resample``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_prep.common import PrepError
from mdn_snntorch.data import FORMAT, VERSION, encode_meta, packed_width

#: target size of one HDF5 chunk (a block of whole samples), bytes before compression
CHUNK_BYTES = 256 * 2**10
#: HDF5 filter and its option for the packed spikes of new files, chosen by measurement
#: (``benchmarks/bench_data.py --compare-compression``; figures in docs/data.md)
COMPRESSION: tuple[str | None, int | None] = ("gzip", 4)


def chunk_rows(time_steps: int, n_inputs: int) -> int:
    """Samples per HDF5 chunk: as many whole samples as fit :data:`CHUNK_BYTES`."""
    return max(1, CHUNK_BYTES // (time_steps * packed_width(n_inputs)))


def check_target(out: str | os.PathLike, force: bool) -> Path:
    """``out`` as a Path; :class:`PrepError` if it exists and ``force`` is false."""
    out = Path(out)
    if out.is_dir():
        raise PrepError(f"output {out} is a directory; give a file name such as {out / 'data.h5'}")
    if out.exists() and not force:
        raise PrepError(f"output {out} already exists; pass --force (force=True) to overwrite it")
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

    def __enter__(self) -> "SpikeFileWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self.tmp, "w")
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
            raise ValueError(f"{split}: writing {len(packed)} samples ({len(y)} labels) at {start} overflows {self._sizes[split]}")
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
