"""Rows of a stored HDF5 dataset, read in whole blocks of chunk rows and decoded within their declared size.

A dataset is checked before any read (:func:`member`): held in this file (no links, external or virtual
storage), only the filters of :data:`ALLOWED_FILTERS`, and a declared size the stored bytes can hold
(:data:`~mdn_snntorch.spikefile.limits.MAX_COMPRESSION`). It is then read as *blocks*: the rows of one
chunk row (``chunks[0]`` samples, every other axis whole), so a block is the least a read of one sample
decodes. :class:`BlockReader` decodes each chunk itself: the stored bytes (``read_direct_chunk``) go
through inflate with the chunk's declared size as the bound, so a forged chunk that inflates beyond it
is refused after that many bytes (HDF5's own filter grows its buffer as long as the stream goes on).
Pipelines with ``lzf`` or ``fletcher32`` are decoded by HDF5, after checking that no chunk stores more
than its declared size (LZF expands at most 88:1: a 3-byte reference emits at most 264 bytes).

Decoded blocks are kept in a least-recently-used cache of a given size in bytes (whole blocks, at
least one); the cache is plain memory, so it survives a fork, while the HDF5 dataset it reads from is
passed in by the caller on every read (a handle opened in this process).
"""

from __future__ import annotations

import math
import os
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mdn_snntorch.extras import require
from mdn_snntorch.spikefile import limits
from mdn_snntorch.spikefile.errors import SpikeFileError

if TYPE_CHECKING:
    import h5py

#: the HDF5 filters a spike file may use
ALLOWED_FILTERS = ("gzip", "lzf", "shuffle", "fletcher32")
_DEFLATE, _SHUFFLE = 1, 2
#: rows per block of a dataset stored without chunks (one contiguous read)
_CONTIGUOUS_BLOCK_BYTES = 2**20
#: the most threads inflating chunks at once (fewer on fewer cores)
DECODER_THREADS = 4


def member(group: h5py.Group, name: str, path: Path, kind: str = "dataset") -> Any:
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
        check_storage(obj, where, path)
    return obj


def check_storage(ds: h5py.Dataset, where: str, path: Path) -> None:
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
    if declared > limits.MAX_COMPRESSION * stored + 2**16:
        raise SpikeFileError(
            f"{path}: {where} declares shape {ds.shape} ({declared} bytes) but stores only {stored} bytes; "
            "the file is damaged or forged"
        )


class BlockReader:
    """Reads rows of one stored dataset (``shape [N, ...]``) block by block; see the module docstring.

    ``cache_bytes`` bounds the decoded blocks kept (at least one block is decoded to read any row). When
    they hold the whole dataset, blocks are decoded into one array ``[N, ...]`` and a read of any rows is
    one gather from it; otherwise the least recently used block makes room.
    """

    def __init__(self, ds: h5py.Dataset, path: Path, where: str, cache_bytes: int = 0):
        self.path, self.where = path, where
        self.shape, self.dtype, self.chunks = tuple(ds.shape), ds.dtype, ds.chunks
        row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        self.rows = int(self.chunks[0]) if self.chunks else max(1, _CONTIGUOUS_BLOCK_BYTES // max(1, row_bytes))
        self.block_bytes = self.rows * row_bytes
        self.n_blocks = -(-self.shape[0] // self.rows)
        self.capacity = max(1, int(cache_bytes) // max(1, self.block_bytes))
        self.whole = int(cache_bytes) >= self.shape[0] * row_bytes
        self.pipeline = _pipeline(ds) if self.chunks else []
        self.own_decoding = all(code in (_DEFLATE, _SHUFFLE) for code in self.pipeline)
        self.fill = ds.fillvalue
        self._clear()

    def _clear(self) -> None:
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._dense: np.ndarray | None = None
        self._have = np.zeros(self.n_blocks if self.whole else 0, dtype=bool)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_blocks=OrderedDict(), _dense=None, _have=np.zeros_like(self._have))  # decoded data stays in its process
        return state

    @property
    def cached_blocks(self) -> int:
        """How many decoded blocks are held."""
        return int(self._have.sum()) if self.whole else len(self._blocks)

    def block(self, k: int, ds: h5py.Dataset) -> np.ndarray:
        """Rows ``k * rows .. (k + 1) * rows`` (fewer for the last block), decoded once and cached."""
        if self.whole:
            if not self._have[k]:
                self._keep(k, self._guarded(k, lambda: self._assemble(k, self._fetch(ds, k))))
            return self._dense[slice(*self._span(k))]
        found = self._blocks.get(k)
        if found is not None:
            self._blocks.move_to_end(k)
            return found
        self._blocks[k] = data = self._guarded(k, lambda: self._assemble(k, self._fetch(ds, k)))
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return data

    def _span(self, k: int) -> tuple[int, int]:
        return k * self.rows, min(self.shape[0], (k + 1) * self.rows)

    def _keep(self, k: int, data: np.ndarray) -> None:
        """Store decoded block ``k`` in the whole-dataset array."""
        if self._dense is None:
            self._dense = np.empty(self.shape, dtype=self.dtype.newbyteorder("="))
        self._dense[slice(*self._span(k))] = data
        self._have[k] = True

    def _guarded(self, k: int, action: Any) -> Any:
        """``action()``; a read or decoding failure becomes a SpikeFileError naming the file and the samples."""
        try:
            return action()
        except (OSError, RuntimeError, zlib.error, _BadChunk) as err:
            start, stop = self._span(k)
            raise SpikeFileError(f"{self.path}: cannot read {self.where} samples {start}..{stop - 1}: {err}") from None

    def _load(self, missing: list[int], ds: h5py.Dataset) -> None:
        """Decode the blocks ``missing`` into the whole-dataset array: the stored bytes read here (HDF5 is one
        thread at a time), inflated in a thread pool (zlib releases the GIL)."""
        if len(missing) < 2 or not (self.chunks and self.own_decoding):
            for k in missing:
                self.block(k, ds)
            return
        fetched = [self._guarded(k, lambda k=k: self._fetch(ds, k)) for k in missing]
        decoded = _decoder_pool().map(lambda kf: self._guarded(kf[0], lambda: self._assemble(*kf)), zip(missing, fetched))
        for k, data in zip(missing, decoded):
            self._keep(k, data)

    def take(self, indices: np.ndarray, ds: h5py.Dataset) -> np.ndarray:
        """Rows ``indices`` (any order, repeats allowed) as one array ``[len(indices), ...]``, each block read once."""
        indices = np.asarray(indices, dtype=np.int64)
        blocks = indices // self.rows
        if self.whole:
            self._load([int(k) for k in np.unique(blocks[~self._have[blocks]])], ds)
            return self._dense[indices] if len(indices) else np.empty((0, *self.shape[1:]), self.dtype.newbyteorder("="))
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype.newbyteorder("="))
        if not len(indices):
            return out
        order = np.argsort(blocks, kind="stable")
        starts = np.flatnonzero(np.diff(blocks[order])) + 1
        for group in np.split(order, starts):
            k = int(blocks[group[0]])
            out[group] = self.block(k, ds)[indices[group] - k * self.rows]
        return out

    def rows_of(self, start: int, stop: int, ds: h5py.Dataset) -> np.ndarray:
        """Rows ``start:stop`` as one array."""
        return self.take(np.arange(start, stop, dtype=np.int64), ds)

    def _offsets(self, start: int) -> list[tuple[int, ...]]:
        """The offsets of the chunks of the block starting at row ``start`` (one per chunk of the other axes)."""
        grid = [range(0, n, c) for n, c in zip(self.shape[1:], self.chunks[1:])]
        return [(start, *(g[i] for g, i in zip(grid, inner))) for inner in np.ndindex(*(len(g) for g in grid))]

    def _fetch(self, ds: h5py.Dataset, k: int) -> Any:
        """Block ``k`` as stored: its chunks' ``(offset, filter mask, bytes or None)`` for own decoding, else the
        rows decoded by HDF5 (contiguous storage, or lzf / fletcher32 after checking the stored sizes)."""
        start, stop = self._span(k)
        if not self.chunks or not self.own_decoding:
            if self.chunks:
                self._check_stored_sizes(ds, start)
            out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype.newbyteorder("="))
            ds.read_direct(out, np.s_[start:stop], np.s_[0 : stop - start])
            return out
        nbytes, stored = math.prod(self.chunks) * self.dtype.itemsize, []
        for offset in self._offsets(start):
            info = ds.id.get_chunk_info_by_coord(offset)
            if info.byte_offset is None:  # never written: the fill value
                stored.append((offset, 0, None))
                continue
            if info.size > _stored_bound(nbytes):
                raise _BadChunk(f"the chunk at {offset} stores {info.size} bytes for {nbytes} declared (damaged or forged file)")
            stored.append((offset, *ds.id.read_direct_chunk(offset)))
        return stored

    def _assemble(self, k: int, stored: Any) -> np.ndarray:
        """The rows of block ``k`` from :meth:`_fetch`'s result (thread-safe: no HDF5 call)."""
        if isinstance(stored, np.ndarray):
            return stored
        start, stop = self._span(k)
        out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype.newbyteorder("="))
        for offset, mask, data in stored:
            chunk = np.full(self.chunks, self.fill, dtype=self.dtype) if data is None else self._chunk(offset, mask, data)
            region = tuple(slice(o, min(o + c, n)) for o, c, n in zip(offset[1:], self.chunks[1:], self.shape[1:]))
            cut = (slice(0, stop - start), *(slice(0, r.stop - r.start) for r in region))
            out[(slice(None), *region)] = chunk[cut]
        return out

    def _chunk(self, offset: tuple[int, ...], mask: int, data: bytes) -> np.ndarray:
        """One stored chunk decoded: inflate bounded by the declared chunk size, then un-shuffle."""
        nbytes = math.prod(self.chunks) * self.dtype.itemsize
        for i in reversed(range(len(self.pipeline))):
            if mask & (1 << i):
                continue
            data = _inflate(data, nbytes) if self.pipeline[i] == _DEFLATE else _unshuffle(data, self.dtype.itemsize)
            if data is None:
                raise _BadChunk(f"the chunk at {offset} inflates beyond its declared {nbytes} bytes (damaged or forged file)")
        if len(data) != nbytes:
            raise _BadChunk(f"the chunk at {offset} decodes to {len(data)} bytes, declared {nbytes} (damaged file)")
        return np.frombuffer(data, dtype=self.dtype).reshape(self.chunks)

    def _check_stored_sizes(self, ds: h5py.Dataset, start: int) -> None:
        """Before HDF5 decodes a block: no chunk of it may store more than its declared size (and slack)."""
        nbytes = math.prod(self.chunks) * self.dtype.itemsize
        for offset in self._offsets(start):
            info = ds.id.get_chunk_info_by_coord(offset)
            if info.byte_offset is not None and info.size > _stored_bound(nbytes):
                raise _BadChunk(f"the chunk at {offset} stores {info.size} bytes for {nbytes} declared (damaged or forged file)")


class _BadChunk(Exception):
    """A chunk whose stored or decoded size does not match its declaration."""


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _decoder_pool() -> ThreadPoolExecutor:
    """This process's decoding threads (a pool inherited through a fork has no threads: a new one is made)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=min(DECODER_THREADS, os.cpu_count() or 1)))
    return _POOL[1]


def _pipeline(ds: h5py.Dataset) -> list[int]:
    plist = ds.id.get_create_plist()
    return [int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]


def _stored_bound(nbytes: int) -> int:
    """The most bytes a chunk of ``nbytes`` stores compressed: deflate's worst case (5 bytes per 16 KiB
    stored block, a 6-byte zlib frame) and a checksum, with room to spare."""
    return nbytes + nbytes // 1000 + 1024


def _inflate(data: bytes, nbytes: int) -> bytes | None:
    """zlib-inflate ``data`` to at most ``nbytes`` bytes; None when the stream would give more."""
    stream = zlib.decompressobj()
    out = stream.decompress(data, nbytes)
    if stream.unconsumed_tail or (not stream.eof and stream.decompress(b"", 1)):
        return None
    return out


def _unshuffle(data: bytes, itemsize: int) -> bytes:
    """Inverse of HDF5's shuffle filter: byte planes back to interleaved elements (a remainder stays)."""
    n = len(data) // itemsize
    planes = np.frombuffer(data, dtype=np.uint8, count=n * itemsize).reshape(itemsize, n)
    return planes.T.tobytes() + data[n * itemsize :]
