"""The writer of spike files: one file per ``with`` block, written to a temporary name and renamed when complete.

:class:`SpikeFileWriter` takes the meta data (checked within the reader's limits, so it never writes a file
the reader refuses), creates the splits and appends packed spikes block by block: ``spikes`` chunked by
whole samples (:func:`chunk_rows`, about :data:`CHUNK_BYTES` per chunk) and compressed with
:data:`COMPRESSION`. The public helpers over it are :func:`~mdn_snntorch.spikefile.write_arrays` and
:func:`~mdn_snntorch.spikefile.write_dataset`.
"""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mdn_snntorch import signals
from mdn_snntorch.atomic import fsync_dir, prepare_file, temp_file, write_error
from mdn_snntorch.extras import require
from mdn_snntorch.runlock import claim_file
from mdn_snntorch.spikefile.errors import SpikeFileError
from mdn_snntorch.spikefile.format import FORMAT, VERSION, check_attribute_budget, check_meta, encode_meta, packed_width, plain

if TYPE_CHECKING:
    import h5py

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
        check_meta(plain(self.meta), self.out)
        check_attribute_budget(self._attrs, self.out)
        self.codes = codes
        self.compression, self.compression_opts = COMPRESSION
        self.time_steps = int(meta["time_steps"])
        self.n_inputs = int(meta["n_inputs"])
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
