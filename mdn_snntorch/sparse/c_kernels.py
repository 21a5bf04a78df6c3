r"""CPU kernels of the event-driven Linear layer: plain C, built once with the system compiler, called through ctypes.

The C source is shipped next to this module: ``c/spike_linear.c`` (vector width, threading, the two
instantiations) includes the dtype-generic ``c/spike_linear_impl.h`` once for ``float`` and once for
``double``; the exported functions carry the suffix of their type (``sl_gather_f32``, ``sl_gather_f64``, ...):

- ``sl_scan_rows``: one pass over ``x [R, K]``: the bit mask of its nonzeros (``ceil(K / 64)`` words per row), row
  pointers, and whether every value is 0 or 1;
- ``sl_fill_rows``: from the mask, the column (and, for non-binary inputs, the value) of every nonzero, row by
  row (CSR);
- ``sl_columns``: from the mask, the same entries by column (CSC), for the weight gradient;
- ``sl_gather``: ``out[i, :] = init + sum_p val[p] D[idx[p], :]`` over the entries of row ``i`` in their order,
  in blocks of columns whose accumulators stay in vector registers and chunks of ``D``'s rows that stay in
  the L1 cache.
- the run coding over time (``c/spike_runs_impl.h``): ``sl_runs_changes`` (the step-to-step changes, an upper
  bound on its terms), ``sl_runs_split`` (which inputs of each 32-step segment of each chain are run coded),
  ``sl_runs_count_rows`` and ``sl_runs_fill_rows`` (the direct and the run entries by row) and ``sl_runs_add``
  (the carried run sums added to the output);
- the complement coding over time (``c/spike_complement.h``, ``c/spike_complement_impl.h``, the same segments):
  ``sl_complement_split`` (which inputs of each segment are complemented, from bit-sliced counts, and the
  entries that leaves), ``sl_complement_count_rows`` and ``sl_complement_fill_rows`` (the forward's entries by
  row, over ``[W^T; A]``), ``sl_count_bit_rows`` (the lists that sum ``A``), ``sl_complement_grad_rows`` (the
  output gradient's rows and its sums over each segment) and ``sl_complement_columns`` (the weight gradient's
  entries by column).

The compiler is found, and the library cached, as for the fused op's kernels
(:mod:`mdn_snntorch.fused.c_kernels`: ``$CC``, ``cc``, ``gcc``, ``clang``; ``$MDN_SNNTORCH_CACHE`` or
``~/.cache/mdn_snntorch``, keyed by a hash of the sources, the compiler, its flags and the CPU's features,
a folder only this user can change and libraries loaded only after the checks of
:mod:`mdn_snntorch.fused.kernel_cache`; ``MDN_SNNTORCH_NO_CEXT=1`` turns both off). :func:`library`
returns ``None`` when no compiler works, and the layer then runs ``nn.Linear``'s dense product.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import warnings
from pathlib import Path

import torch

from mdn_snntorch.fused import c_kernels as fused_c

Tensor = torch.Tensor

_SUFFIX = {torch.float32: "_f32", torch.float64: "_f64"}
DTYPES = tuple(_SUFFIX)
SOURCE_DIR = Path(__file__).with_name("c")
SOURCE = "spike_linear.c"
STEM = "spike_linear"
#: -ffp-contract=off: a product and a sum round separately, as in PyTorch's eager ops
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared")
#: tried first; without OpenMP the kernels run on one thread
OPENMP = ("-fopenmp",)
#: below this much work (entries x columns) one thread is faster than waking more
_PARALLEL_MIN_WORK = 1 << 17
#: the same for the passes that scan the input and list its nonzeros (in values of the input): a smaller
#: input is not worth waking threads for, and every parallel region is a place where a thread that a busy
#: machine has descheduled holds up the others (the paper's 2000 x 784 input is above it)
_SCAN_MIN_WORK = 1 << 20

_lock = threading.Lock()
_state: dict[str, object] = {}


def sources(src_dir: Path = SOURCE_DIR) -> dict[str, str]:
    """The C sources, every ``.c`` and ``.h`` file of ``src_dir``, by file name."""
    return fused_c.sources(src_dir)


def cache_path(cc: str, flags: tuple[str, ...], src_dir: Path = SOURCE_DIR) -> Path:
    """``spike_linear_<key>.so`` in the kernel cache (:func:`mdn_snntorch.fused.c_kernels.cache_path`)."""
    return fused_c.cache_path(cc, flags, src_dir, STEM)


def _build(cc: str, flags: tuple[str, ...], src_dir: Path = SOURCE_DIR) -> Path:
    """Compile (or reuse the intact cached build), sealed and renamed into place, as the fused kernels are
    (:func:`mdn_snntorch.fused.c_kernels._build`)."""
    return fused_c._build(cc, flags, src_dir, source=SOURCE, stem=STEM)


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for sfx in _SUFFIX.values():
        fn = getattr(lib, "sl_scan_rows" + sfx)
        fn.argtypes, fn.restype = [p, i64, i64, p, p, p, i32], i64
        getattr(lib, "sl_fill_rows" + sfx).argtypes = [p, p, i64, i64, p, p, p, i32]
        fn = getattr(lib, "sl_columns" + sfx)
        fn.argtypes, fn.restype = [p, p, i64, i64, p, p, p, i32], i32
        fn = getattr(lib, "sl_gather" + sfx)
        fn.argtypes, fn.restype = [i64, i64, p, p, p, p, i64, i64, p, p, i64, i64, i32], i32
        getattr(lib, "sl_runs_fill_rows" + sfx).argtypes = [p, p, i64, i64, i64, p, p, p, p, p, i32]
        getattr(lib, "sl_runs_add" + sfx).argtypes = [i64, i64, i64, p, p, p, p, i64, p, i32]
        getattr(lib, "sl_complement_fill_rows" + sfx).argtypes = [p, p, i64, i64, i64, p, p, p, i32]
        getattr(lib, "sl_complement_grad_rows" + sfx).argtypes = [p, i64, i64, i64, p, i64, i32]
        fn = getattr(lib, "sl_complement_columns" + sfx)
        fn.argtypes, fn.restype = [p, p, i64, i64, i64, p, p, p, i32], i32
    lib.sl_runs_split.argtypes = [p, i64, i64, i64, p, i32]
    lib.sl_runs_changes.argtypes, lib.sl_runs_changes.restype = [p, i64, i64, i64], i64
    lib.sl_runs_count_rows.argtypes = [p, p, i64, i64, i64, p, p, i32]
    lib.sl_complement_split.argtypes, lib.sl_complement_split.restype = [p, i64, i64, i64, p, i32], i64
    lib.sl_complement_count_rows.argtypes = [p, p, i64, i64, i64, p, i32]
    lib.sl_count_bit_rows.argtypes = [p, i64, i64, p]


def _load(cc: str) -> ctypes.CDLL:
    return fused_c._load(cc, cflags=CFLAGS, openmp=OPENMP, declare=_declare, src_dir=SOURCE_DIR, source=SOURCE, stem=STEM)


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; ``None`` if they cannot be built here (no compiler, a
    failed build, or ``MDN_SNNTORCH_NO_CEXT=1``). The outcome is remembered."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        cc = fused_c._compiler()
        if os.environ.get("MDN_SNNTORCH_NO_CEXT", "") not in ("", "0") or cc is None:
            _state["lib"] = None
            return None
        try:
            lib = _load(cc)
        except (OSError, subprocess.SubprocessError, AttributeError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            warnings.warn(
                f"mdn_snntorch: building the event-driven Linear kernels failed, using the dense product instead: {detail[:500]}",
                RuntimeWarning,
                stacklevel=2,
            )
            lib = None
        _state["lib"] = lib
        return lib


def _scan_min_work() -> int:
    return _SCAN_MIN_WORK


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the kernels are built (building them at the first call); a constant under ``torch.compile``."""
    return library() is not None


def threads(work: int, least: int | None = None) -> int:
    """Threads for a call doing ``work`` units: all of PyTorch's from ``least`` (default
    :data:`_PARALLEL_MIN_WORK`) units on, else one."""
    return torch.get_num_threads() if work >= (_PARALLEL_MIN_WORK if least is None else least) else 1


def _fn(name: str, dtype: torch.dtype):
    return getattr(library(), name + _SUFFIX[dtype])


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def scan_rows(x: Tensor) -> tuple[Tensor, Tensor, int, bool]:
    """One pass over a contiguous ``x [R, K]``: the bit mask of its nonzeros (int64 ``[R, ceil(K / 64)]``, bit
    ``k % 64`` of word ``k // 64``), the row pointers ``[R + 1]`` (int64), their number, and whether every
    value is 0 or 1."""
    R, K = x.shape
    mask, ptr = torch.empty(R, -(-K // 64), dtype=torch.int64), torch.empty(R + 1, dtype=torch.int64)
    nonbinary = ctypes.c_int32(0)
    nnz = _fn("sl_scan_rows", x.dtype)(
        _ptr(x), R, K, _ptr(mask), _ptr(ptr), ctypes.byref(nonbinary), threads(R * K, _scan_min_work())
    )
    return mask, ptr, int(nnz), not nonbinary.value


def fill_rows(mask: Tensor, x: Tensor, ptr: Tensor, nnz: int, binary: bool) -> tuple[Tensor, Tensor | None]:
    """Column indices ``[nnz]`` (int32) of the nonzeros of ``x`` (marked in ``mask``), row by row, and their
    values (``None`` when ``binary``: all ones)."""
    R, K = x.shape
    idx = torch.empty(nnz, dtype=torch.int32)
    val = None if binary else x.new_empty(nnz)
    _fn("sl_fill_rows", x.dtype)(_ptr(mask), _ptr(x), R, K, _ptr(ptr), _ptr(idx), _ptr(val), threads(R * K, _scan_min_work()))
    return idx, val


def columns(mask: Tensor, x: Tensor, nnz: int, binary: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """The nonzeros of ``x [R, K]`` (marked in ``mask``) by column: ``(column pointers [K + 1], row indices,
    values)``, the values ``None`` when ``binary``."""
    R, K = x.shape
    cptr, cidx = torch.empty(K + 1, dtype=torch.int64), torch.empty(nnz, dtype=torch.int32)
    cval = None if binary else x.new_empty(nnz)
    if _fn("sl_columns", x.dtype)(
        _ptr(mask), _ptr(x), R, K, _ptr(cptr), _ptr(cidx), _ptr(cval), threads(R * K, _scan_min_work())
    ):
        raise MemoryError("sl_columns could not allocate the transposed mask")
    return cptr, cidx, cval


def run_steps() -> int:
    """Steps per segment of the complement and run codings over time (``RUN_STEPS`` of ``spike_linear.c``): a
    complemented input's segment sum and a run-coded input's carried sum start again at every segment, so
    rounding does not build up over long sequences."""
    return library().sl_run_steps()


def run_segments(S: int, T: int) -> int:
    """Segments of the codings over time for ``S`` chains of ``T`` steps (:func:`run_steps` steps each, the last of
    a chain shorter)."""
    return S * -(-T // run_steps())


def runs_changes(mask: Tensor, K: int, S: int, T: int) -> int:
    """How many entries the run coding would have were every input run coded (the changes from step to step of
    the 0/1 ``x [T x S, K]`` marked in ``mask``, row ``t S + b`` step ``t`` of chain ``b``): an upper bound."""
    return int(library().sl_runs_changes(_ptr(mask), K, S, T))


def runs_split(mask: Tensor, K: int, S: int, T: int) -> Tensor:
    """Which inputs of each segment are run coded (fewer changes than steps on): int64 ``[segments, ceil(K / 64)]``
    bits, from the mask of a 0/1 ``x [T x S, K]`` (rows as in :func:`runs_changes`)."""
    carried = torch.empty(run_segments(S, T), mask.shape[1], dtype=torch.int64)
    library().sl_runs_split(_ptr(mask), K, S, T, _ptr(carried), threads(mask.numel() * 64, _scan_min_work()))
    return carried


def runs_rows(mask: Tensor, carried: Tensor, dtype: torch.dtype, K: int, S: int, T: int):
    """The forward's two row lists: ``(dptr, didx)``, the direct entries (values 1), and ``(rptr, ridx, rval)``,
    the changes of the run-coded inputs (+1 on, -1 off)."""
    R, n = S * T, threads(mask.numel() * 64, _scan_min_work())
    dptr, rptr = torch.empty(R + 1, dtype=torch.int64), torch.empty(R + 1, dtype=torch.int64)
    library().sl_runs_count_rows(_ptr(mask), _ptr(carried), K, S, T, _ptr(dptr), _ptr(rptr), n)
    didx, ridx = torch.empty(int(dptr[R]), dtype=torch.int32), torch.empty(int(rptr[R]), dtype=torch.int32)
    rval = torch.empty(ridx.shape[0], dtype=dtype)
    _fn("sl_runs_fill_rows", dtype)(
        _ptr(mask), _ptr(carried), K, S, T, _ptr(dptr), _ptr(didx), _ptr(rptr), _ptr(ridx), _ptr(rval), n
    )
    return dptr, didx, rptr, ridx, rval


def runs_add(rptr: Tensor, ridx: Tensor, rval: Tensor, D: Tensor, out: Tensor, S: int, T: int) -> None:
    """``out [T x S, N] +=`` the carried sums of the run entries over ``D`` (W^T, e.g. :func:`padded_rows`)."""
    N = out.shape[1]
    _fn("sl_runs_add", D.dtype)(
        S, T, N, _ptr(rptr), _ptr(ridx), _ptr(rval), _ptr(D), D.stride(0), _ptr(out), threads(ridx.shape[0] * N)
    )


def complement_split(mask: Tensor, K: int, S: int, T: int) -> tuple[Tensor, int]:
    """``(comp, entries)``: which inputs of each segment are complemented (on at more steps than they are off, plus
    one), int64 ``[segments, ceil(K / 64)]`` bits, from the mask of a 0/1 ``x [T x S, K]`` (rows as in
    :func:`runs_changes`), and the weight gradient's entries under that coding."""
    comp = torch.empty(run_segments(S, T), mask.shape[1], dtype=torch.int64)
    n = library().sl_complement_split(_ptr(mask), K, S, T, _ptr(comp), threads(mask.numel() * 64, _scan_min_work()))
    return comp, int(n)


def complement_rows(mask: Tensor, comp: Tensor, dtype: torch.dtype, K: int, S: int, T: int):
    """The forward's complement-coded lists: ``(ptr, idx, val)`` by row over ``[W^T; A]`` (input ``k`` +1 on, -1 off
    where complemented; ``K + s``, the row of ``A``) and ``(aptr, aidx)``, the complemented inputs of each segment
    ``s`` (the sums ``A[s]``)."""
    R, n = S * T, threads(mask.numel() * 64, _scan_min_work())
    ptr = torch.empty(R + 1, dtype=torch.int64)
    library().sl_complement_count_rows(_ptr(mask), _ptr(comp), K, S, T, _ptr(ptr), n)
    idx, val = torch.empty(int(ptr[R]), dtype=torch.int32), torch.empty(int(ptr[R]), dtype=dtype)
    _fn("sl_complement_fill_rows", dtype)(_ptr(mask), _ptr(comp), K, S, T, _ptr(ptr), _ptr(idx), _ptr(val), n)
    G = comp.shape[0]
    aptr = torch.empty(G + 1, dtype=torch.int64)
    library().sl_count_bit_rows(_ptr(comp), G, comp.shape[1], _ptr(aptr))
    aidx = torch.empty(int(aptr[G]), dtype=torch.int32)
    _fn("sl_fill_rows", dtype)(_ptr(comp), None, G, K, _ptr(aptr), _ptr(aidx), None, 1)
    return ptr, idx, val, aptr, aidx


def complement_grad_rows(grad_out: Tensor, S: int, T: int) -> Tensor:
    """The complement-coded weight gradient's rows: those of the contiguous ``grad_out [T x S, N]``, then each
    chain's sum over each segment (``[T x S + segments, N]``, padded rows as :func:`padded_rows`)."""
    R, N = grad_out.shape
    ld = _padded_stride(N, grad_out.element_size())
    D = grad_out.new_empty(R + run_segments(S, T), ld)[:, :N]
    _fn("sl_complement_grad_rows", grad_out.dtype)(_ptr(grad_out), S, T, N, _ptr(D), ld, threads(R * N))
    return D


def complement_columns(mask: Tensor, comp: Tensor, entries: int, dtype: torch.dtype, K: int, S: int, T: int):
    """``(cptr, cidx, cval)``: the complement-coded weight gradient's ``entries`` (:func:`complement_split`) by
    column over :func:`complement_grad_rows`'s rows."""
    cptr = torch.empty(K + 1, dtype=torch.int64)
    cidx, cval = torch.empty(entries, dtype=torch.int32), torch.empty(entries, dtype=dtype)
    if _fn("sl_complement_columns", dtype)(
        _ptr(mask), _ptr(comp), K, S, T, _ptr(cptr), _ptr(cidx), _ptr(cval), threads(mask.numel() * 64, _scan_min_work())
    ):
        raise MemoryError("sl_complement_columns could not allocate the transposed words")
    return cptr, cidx, cval


def _padded_stride(N: int, size: int) -> int:
    """:func:`padded_rows`'s row stride (in values of ``size`` bytes) for rows of ``N`` values."""
    return (-(-N * size // 64) | 1) * 64 // size


def padded_rows(t: Tensor, extra_rows: int = 0) -> Tensor:
    """A copy of the 2-D ``t`` in a buffer whose rows are a whole, odd number of 64-byte cache lines apart, as a
    ``[R, N]`` view: the gather's vector loads then each lie within one cache line (a row stride such as 500
    floats splits three loads in four across two lines), and consecutive rows start in different sets of the
    cache (a stride of a power of two puts a chunk of rows in few of them). ``extra_rows``: that many more rows
    after the copy, left unset (the view is then ``[R + extra_rows, N]``)."""
    R, N = t.shape
    buf = t.new_empty(R + extra_rows, _padded_stride(N, t.element_size()))[:, :N]
    buf[:R].copy_(t)
    return buf


def gather(ptr: Tensor, idx: Tensor, val: Tensor | None, D: Tensor, init: Tensor | None, out: Tensor, si: int, sj: int) -> None:
    """``out(i, j) = init[j] + sum_p val[p] D[idx[p], j]`` over the entries ``p`` of row ``i`` (``out(i, j)`` at
    ``out[i * si + j * sj]``); ``D [*, N]`` with unit column stride (its rows any stride, e.g. :func:`padded_rows`),
    ``init`` contiguous."""
    n, (nd, N) = ptr.shape[0] - 1, D.shape
    if D.stride(1) != 1 and N > 1:
        raise ValueError(f"gather: D's columns must be adjacent (stride {D.stride(1)})")
    ld = D.stride(0) if nd > 1 else N
    if _fn("sl_gather", D.dtype)(
        n, N, _ptr(ptr), _ptr(idx), _ptr(val), _ptr(D), nd, ld, _ptr(init), _ptr(out), si, sj, threads(idx.shape[0] * N)
    ):
        raise MemoryError("sl_gather could not allocate its chunk starts and partial sums")
