"""The limits a spike file is read within, and the check of an allocation against the available memory.

Every size a reader allocates comes from the file's own declarations (attributes, dataset shapes,
chunk shapes), so each is checked before anything is allocated: against a fixed limit (the meta data is
small, a time step holds at most :data:`MAX_INPUTS` inputs), against what the file stores
(:data:`MAX_COMPRESSION`), and against the memory this machine has free (:func:`check_memory`). A value
beyond a limit is a :class:`~mdn_snntorch.spikefile.errors.SpikeFileError` naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

from mdn_snntorch.spikefile.errors import SpikeFileError

#: the most root attributes a spike file may have, and the most bytes they may hold together
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_BYTES = 2**20
#: the most characters of one text attribute (``dataset``, ``source``, ...) or one class name
MAX_TEXT = 4096
#: the most bytes of ``encoding_params`` (a JSON object)
MAX_ENCODING_PARAMS = 2**16
#: the most classes (or target bits) and the most axes of ``input_shape``
MAX_CLASSES = 2**16
MAX_INPUT_DIMS = 8
#: the most time steps, inputs per time step and spike bits per sample (T x D) a spike file may have
MAX_TIME_STEPS = 100_000
MAX_INPUTS = 2**22
MAX_SAMPLE_BITS = 2**28
#: the most a dataset may expand over its stored bytes (deflate's limit is 1032:1)
MAX_COMPRESSION = 1100
#: the share of the available memory one allocation of the reader may take
MEMORY_FRACTION = 0.5


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate: ``MemAvailable`` of ``/proc/meminfo``, lowered to the
    head room of the process's cgroup when it has a limit; ``None`` where neither can be read."""
    free = _meminfo_available()
    room = _cgroup_room()
    known = [v for v in (free, room) if v is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """``memory.max - memory.current`` of the process's cgroup (v2), or None without a limit."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        folder = Path("/sys/fs/cgroup") / line.split("::", 1)[1].lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError, IndexError):
        return None


def fits_in_memory(nbytes: int) -> bool:
    """Whether ``nbytes`` is within :data:`MEMORY_FRACTION` of :func:`available_memory` (True when unknown)."""
    free = available_memory()
    return free is None or nbytes <= MEMORY_FRACTION * free


def check_memory(nbytes: int, path: str | os.PathLike, where: str, what: str) -> None:
    """:class:`~mdn_snntorch.spikefile.SpikeFileError` naming the file and ``where`` when ``nbytes`` (``what``) does
    not fit in :data:`MEMORY_FRACTION` of the available memory."""
    if not fits_in_memory(nbytes):
        raise SpikeFileError(
            f"{path}: {where} needs {human_bytes(nbytes)} in memory ({what}) and {human_bytes(available_memory() or 0)} "
            f"are available; refused (the file is forged, or too large for this machine)"
        )


def human_bytes(n: float) -> str:
    """``n`` bytes in words: ``"12.8 GB"``."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
