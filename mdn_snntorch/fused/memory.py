"""Large CPU buffers without fresh pages: glibc's ``malloc`` policy for the fused op's whole-sequence tensors.

glibc serves a block above its mmap threshold (dynamic, at most 32 MiB by default) with a fresh ``mmap`` and
returns it to the system at ``free``; a freed block at the top of the heap beyond the trim threshold (128 KiB)
is returned too. The fused time loop allocates a few tensors of ``[T, B, N]`` per call (spikes, the current,
the input gradient; 52 MiB each at ``[100, 128, 1024]`` float32), so every call first touches fresh zero
pages: a page fault per 4 KiB, 77,500 per forward and backward at that shape, more system time than compute,
and a cost per step that grows with T. :func:`keep_freed_memory` raises both thresholds, so such blocks come
from the heap and, once freed, are reused by the next call instead of being returned and faulted in again.

The fused CPU kernels call it once, when they first run, unless ``MDN_SNNTORCH_KEEP_FREED_MEMORY=0``. The
price: the process keeps up to ``limit`` bytes of freed heap memory (its resident size stays near its
peak), and glibc no longer adapts its mmap threshold. Other C libraries (musl, macOS) are left alone.
(docs/performance.md#memory-and-page-faults)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the default: blocks up to 1 GiB from the heap, up to 1 GiB of freed memory kept
LIMIT = 1 << 30
ENV = "MDN_SNNTORCH_KEEP_FREED_MEMORY"

_state: dict[str, int | None] = {"limit": None}


def keep_freed_memory(limit: int = LIMIT) -> bool:
    """Serve blocks up to ``limit`` bytes from the heap and keep up to ``limit`` bytes of freed memory for reuse
    (glibc's ``mallopt``). Returns whether the C library took the setting (False off glibc)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 2**31:
        raise ValueError(f"limit must be a number of bytes in 1..2**31-1, got {limit!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))
    _state["limit"] = limit if ok else None
    return ok


def kept_limit() -> int | None:
    """The limit :func:`keep_freed_memory` set in this process, or None."""
    return _state["limit"]


def ensure_default() -> None:
    """:func:`keep_freed_memory` with :data:`LIMIT`, once per process, unless the environment says ``0``."""
    if _state["limit"] is not None or _state.get("declined"):
        return
    _state["declined"] = 1  # asked once, whatever the answer
    if os.environ.get(ENV, "1").strip() not in ("0", "false", "no", "off"):
        keep_freed_memory(LIMIT)


def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
        # gnu_get_libc_version exists only in glibc: the thresholds mean what this module says only there
        libc.gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn
