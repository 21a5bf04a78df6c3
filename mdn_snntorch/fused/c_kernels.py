r"""CPU kernels of the fused time loop: plain C, built once with the system compiler, called through ctypes.

The C source is shipped next to this module: ``c/mdn_kernels.c`` (threading, and the two instantiations)
includes the dtype-generic ``c/mdn_kernels_impl.h`` once for ``float`` and once for ``double``; the exported
functions carry the suffix of their type (``mdn_fwd_f32``, ``mdn_fwd_f64``, ...). The Euler step of each
neuron and its adjoint are written there once, as ``static inline`` functions called by the forward and by
the backward's recomputation and adjoint (equations: ``docs/model.md#discretisation``,
``#surrogate-gradient-and-reset``, ``#the-1st-order-neuron``).

Both neurons are elementwise recurrences over the leading time axis of ``[T, M]`` (``M`` = batch x neurons,
the neuron index of element ``e`` is ``e % N``). The forward keeps the state only every ``K`` steps
(checkpoints); the backward recomputes each segment of ``K`` steps from its checkpoint, with the forward's
own step function, and runs the adjoint over it. The C is built with ``-ffp-contract=off``, so every ``+``
and ``*`` rounds as in PyTorch's eager ops: the forward is bitwise the reference loop's in float32 and
float64 (``docs/model.md#tolerances``). Parameter gradients are summed over time per element, then per
neuron over the batch in a fixed order, in double, so no result depends on the number of threads (the
threads take blocks of 512 elements as they go; :data:`PARALLEL_MIN_WORK`; docs/performance.md#threads).

The shared library is cached under ``$MDN_SNNTORCH_CACHE`` (default ``~/.cache/mdn_snntorch``), keyed by
a hash of the C sources, the compiler, its flags and the CPU's feature flags, so an edited source is
rebuilt. The cache is a folder only this user can change, and a library is loaded only after checks
(:mod:`mdn_snntorch.fused.kernel_cache`: a regular file of this user, sealed with its own SHA-256, mapped
through the descriptor that was checked); an empty, truncated or foreign file is rebuilt, never loaded.
:func:`library` returns ``None`` (and the caller falls back to the PyTorch loop) when no compiler works or
the build does not load.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from mdn_snntorch.atomic import fsync_dir
from mdn_snntorch.fused import dispatch, kernel_cache
from mdn_snntorch.fused.kernel_cache import cache_dir, intact, seal

Tensor = torch.Tensor

#: float dtype -> suffix of its functions' symbols (the instantiations at the end of mdn_kernels.c)
_SUFFIX = {torch.float32: "_f32", torch.float64: "_f64"}
DTYPES = tuple(_SUFFIX)
#: the folder of the C sources (package data), and the file compiled (it includes the others)
SOURCE_DIR = Path(__file__).with_name("c")
SOURCE = "mdn_kernels.c"
#: -ffp-contract=off: no fused multiply-add, so every operation rounds as PyTorch's eager kernels do
#: (docs/model.md#tolerances)
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-pthread")
#: tried first: OpenMP threads from the libgomp PyTorch has loaded (one pool, no competing spinners);
#: without an OpenMP-capable compiler the kernels start their own pthreads
OPENMP = ("-fopenmp",)
#: calls of fewer element-steps run on one thread (the backward counts 2 substeps + 1 per element-step): below
#: it, starting the other threads costs more than they save. Measured (benchmarks/bench_threads.py --kernels,
#: docs/performance.md#threads): from 20,480 on (T = 20 x 1,024 elements, two blocks) every size ran at least
#: 10 % faster on two threads, at 10,240 (one block, which runs on one thread anyway) no faster
PARALLEL_MIN_WORK = 20_480
_PARALLEL_MIN_WORK = PARALLEL_MIN_WORK  # the earlier name
#: what a cached library ends with, followed by the hex SHA-256 of every byte before it (:func:`intact`)
SEAL = kernel_cache.SEAL
#: steps per checkpoint segment: the backward recomputes a segment in a per-thread buffer of
#: 3 x SEGMENT x BLK values (V, U, V' - V_th per step; cache-resident) before running its adjoint
SEGMENT = 32

_lock = threading.Lock()
_state: dict[str, object] = {}


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def sources(src_dir: Path = SOURCE_DIR) -> dict[str, str]:
    """The C sources, every ``.c`` and ``.h`` file of ``src_dir``, by file name."""
    return {p.name: p.read_text() for p in sorted(src_dir.iterdir()) if p.suffix in (".c", ".h")}


def cache_path(cc: str, flags: tuple[str, ...], src_dir: Path = SOURCE_DIR, stem: str = "mdn_cpu") -> Path:
    """Where the library built from ``src_dir`` by ``cc`` with ``flags`` is cached: ``<stem>_<key>.so``, the key
    a hash of every source file of ``src_dir`` (name and text), the compiler and its version, the flags and
    the CPU, so any change of these builds a new library."""
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    text = "\0".join(f"{name}\0{body}" for name, body in sources(src_dir).items())
    key = hashlib.sha256("\0".join([text, cc, version, *flags, platform.machine(), _cpu_flags()]).encode()).hexdigest()[:16]
    return cache_dir() / f"{stem}_{key}.so"


def _build(
    cc: str, flags: tuple[str, ...], src_dir: Path = SOURCE_DIR, *, source: str = SOURCE, stem: str = "mdn_cpu",
    rebuild: bool = False,
) -> Path:  # fmt: skip
    """Compile ``src_dir / source`` with ``flags``, or reuse the cached build when it is :func:`intact`
    (``rebuild``: compile anyway); returns the library's path (:func:`cache_path` with ``stem``). The
    event-driven Linear layer's kernels (:mod:`mdn_snntorch.sparse.c_kernels`) are built here too.

    The build goes to a temporary file, is sealed and fsynced, then renamed over the cached name (atomic:
    concurrent builders all end with one complete file; a crash leaves no partial one under that name)."""
    out = cache_path(cc, flags, src_dir, stem)
    if not rebuild and intact(out):
        return out
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        lib = Path(tmp) / f"{stem}.so"
        command = [cc, *flags, str(src_dir / source), "-o", str(lib)]  # its #include finds the header beside it
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        seal(lib)
        os.replace(lib, out)
    fsync_dir(out.parent)
    return out


def _open(path: Path, declare) -> ctypes.CDLL:
    lib = kernel_cache.load(path)  # only a checked file, through the descriptor that was checked
    declare(lib)
    return lib


def _load(cc: str, *, cflags: tuple[str, ...] = CFLAGS, openmp: tuple[str, ...] = OPENMP, declare=None, **where) -> ctypes.CDLL:
    """Build with OpenMP, else without (or take the intact cached build); load and declare the library
    (``declare``, default this module's). A library that fails to load is rebuilt once; if that one fails
    too, the error says so. ``where``: :func:`_build`'s ``src_dir``, ``source`` and ``stem``."""
    declare = declare or _declare
    flags = cflags + openmp
    try:
        path = _build(cc, flags, **where)
    except subprocess.SubprocessError:
        flags = cflags
        path = _build(cc, flags, **where)
    try:
        return _open(path, declare)
    except (OSError, AttributeError):
        path = _build(cc, flags, rebuild=True, **where)
    try:
        return _open(path, declare)
    except (OSError, AttributeError) as err:
        raise _LoadError(f"loading {path} failed even after rebuilding it: {err}") from err


class _LoadError(OSError):
    """The kernels were built but do not load."""


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, dbl, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for sfx in _SUFFIX.values():
        getattr(lib, "mdn_fwd" + sfx).argtypes = [p] * 18 + [i64, i64, i64, i64, dbl, i32, i32, i32]
        getattr(lib, "mdn_bwd" + sfx).argtypes = [p] * 19 + [i64, i64, i64, i64, i64, dbl, dbl, i32, i32, i32, i32, i32, i32]
        getattr(lib, "fo_fwd" + sfx).argtypes = [p] * 13 + [i64, i64, i64, i64, i32, i32]
        getattr(lib, "fo_bwd" + sfx).argtypes = [p] * 13 + [i64, i64, i64, i64, dbl, i32, i32, i32, i32, i32]


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; ``None`` if they cannot be built here
    (no compiler, a failed build, or ``MDN_SNNTORCH_NO_CEXT=1``). The outcome is remembered."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        cc = _compiler()
        if os.environ.get("MDN_SNNTORCH_NO_CEXT", "") not in ("", "0") or cc is None:
            _state["lib"] = None
            return None
        try:
            lib = _load(cc)
        except (OSError, subprocess.SubprocessError, AttributeError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            what = "loading" if isinstance(e, _LoadError) else "building"
            warnings.warn(
                f"mdn_snntorch: {what} the CPU kernels failed, using the PyTorch loop instead (the same results, "
                f"{dispatch.C_KERNEL_GAIN}): {detail[:500]}",
                RuntimeWarning,
                stacklevel=2,
            )
            lib = None
        _state["lib"] = lib
        return lib


def loaded() -> ctypes.CDLL | None:
    """The kernels if :func:`library` has built and loaded them already, else ``None`` (it builds nothing)."""
    return _state.get("lib")


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if t is None else t


def _threads(work: int) -> int:
    """Threads for a call of ``work`` element-steps: PyTorch's intra-op count (so the kernels follow
    ``torch.set_num_threads`` and the thread policy of :mod:`mdn_snntorch.threads`), or 1 for a small call."""
    return torch.get_num_threads() if work >= PARALLEL_MIN_WORK else 1


def _fn(name: str, dtype: torch.dtype):
    fns = _state.get("fns")
    if fns is None:  # looked up once per library (a test that forgets the library forgets these too)
        lib = library()
        names = ("mdn_fwd", "mdn_bwd", "fo_fwd", "fo_bwd")
        fns = _state["fns"] = {(n, t): getattr(lib, n + s) for n in names for t, s in _SUFFIX.items()}
    return fns[name, dtype]


#: every parameter gradient of the MDN (a, b, c, d, V_th, scale) and of the 1st-order neuron (g, V_th, V_reset, scale)
ALL_MDN, ALL_FIRST_ORDER = 0b111111, 0b1111


def _rows(params: Tensor) -> list[int]:
    """The addresses of the rows of a contiguous ``[P, N]`` tensor."""
    base, stride = params.data_ptr(), params.stride(0) * params.element_size()
    return [base + q * stride for q in range(params.shape[0])]


def mdn_forward(
    x: Tensor, v0: Tensor, u0: Tensor, params: Tensor, dt: float, substeps: int, sigmoid: bool, traces: bool, every: int
):
    """Forward over ``x [T, M]`` from ``v0, u0 [M]`` with ``params = (a, b, c, d, V_th, scale) [6, N]``, all
    contiguous; the current is ``I = sigmoid(x)`` if ``sigmoid`` else ``x``; the spikes are ``S * scale``.

    Returns ``(spikes, v_T, u_T, v_trace, u_trace, I, checkpoints)``; the traces are empty unless asked
    for; ``checkpoints [ceil(T / every), 2, M]`` holds ``(V, U)`` before steps ``0, every, 2 every, ...``.
    """
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    spk, ck = torch.empty_like(I), I.new_empty(-(-T // every), 2, M)
    vT, uT = torch.empty_like(v0), torch.empty_like(v0)
    vtr, utr = (torch.empty_like(I), torch.empty_like(I)) if traces else (None, None)
    _fn("mdn_fwd", I.dtype)(
        *map(_ptr, (I, v0, u0)),
        *_rows(params),
        None,
        None,
        *map(_ptr, (spk, vT, uT, vtr, utr, ck)),
        None,
        T,
        M,
        params.shape[1],
        every,
        dt / substeps,
        substeps,
        0,
        _threads(T * M * substeps),
    )
    return spk, vT, uT, _or_empty(vtr, I), _or_empty(utr, I), I, ck


def mdn_backward(
    I,
    ck,
    params,
    gs,
    gvtr,
    gutr,
    gvT,
    guT,
    dt: float,
    substeps: int,
    width: float,
    sigmoid: bool,
    every: int,
    undetached: bool = False,
    param_grads: bool = True,
):
    """Backward of :func:`mdn_forward`; gradient arguments may be ``None`` (zero); ``undetached``: the spike's
    gradient flows through the reset (docs/model.md#surrogate-gradient-and-reset); ``param_grads``: the
    parameters' gradients are computed (else ``g_params`` is ``None`` and the kernel skips their sums).

    Returns ``(g_input, g_v0, g_u0, g_params [6, N] float64)``.
    """
    T, M = I.shape
    N, threads = params.shape[1], _threads(T * M * (2 * substeps + 1))
    gx, gv0, gu0 = torch.empty_like(I), I.new_empty(M), I.new_empty(M)
    scratch, gp = (I.new_empty(6, M), torch.empty(6, N, dtype=torch.float64)) if param_grads else (None, None)
    _fn("mdn_bwd", I.dtype)(
        I.data_ptr(),
        ck.data_ptr(),
        ck.data_ptr() + M * ck.element_size(),  # U of checkpoint j: V's, M further
        *_rows(params),
        *map(_ptr, (gs, gvtr, gutr, gvT, guT, gx, gv0, gu0, scratch, gp)),
        T,
        M,
        N,
        every,
        2 * M,
        dt / substeps,
        width,
        substeps,
        int(sigmoid),
        int(undetached),
        ALL_MDN if param_grads else 0,
        0,
        threads,
    )
    return gx, gv0, gu0, gp


def first_order_forward(x: Tensor, v0: Tensor, params: Tensor, sigmoid: bool, traces: bool, every: int):
    """Forward of the 1st-order neuron; ``params = (g, V_th, V_reset, scale) [4, N]``.
    Returns ``(spikes, v_T, v_trace, I, checkpoints [ceil(T / every), M])``."""
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    spk, ck, vT = torch.empty_like(I), I.new_empty(-(-T // every), M), torch.empty_like(v0)
    vtr = torch.empty_like(I) if traces else None
    _fn("fo_fwd", I.dtype)(
        *map(_ptr, (I, v0)),
        *_rows(params),
        None,
        None,
        *map(_ptr, (spk, vT, vtr, ck)),
        None,
        T,
        M,
        params.shape[1],
        every,
        0,
        _threads(T * M),
    )
    return spk, vT, _or_empty(vtr, I), I, ck


def first_order_backward(I, ck, params, gs, gvtr, gvT, width: float, sigmoid: bool, every: int, undetached: bool = False,
                         param_grads: bool = True):  # fmt: skip
    """Backward of :func:`first_order_forward`: ``(g_input, g_v0, g_params [4, N] float64)`` (``undetached``,
    ``param_grads``: see :func:`mdn_backward`)."""
    T, M = I.shape
    N, threads = params.shape[1], _threads(T * M * 2)
    gx, gv0 = torch.empty_like(I), I.new_empty(M)
    scratch, gp = (I.new_empty(4, M), torch.empty(4, N, dtype=torch.float64)) if param_grads else (None, None)
    _fn("fo_bwd", I.dtype)(
        *map(_ptr, (I, ck)),
        *_rows(params),
        *map(_ptr, (gs, gvtr, gvT, gx, gv0, scratch, gp)),
        T,
        M,
        N,
        every,
        width,
        int(sigmoid),
        int(undetached),
        ALL_FIRST_ORDER if param_grads else 0,
        0,
        threads,
    )
    return gx, gv0, gp


# ---------------------------------------------------------------------------------------------
# one step (T = 1): no checkpoints, the backward reads the step's own state
# ---------------------------------------------------------------------------------------------
def mdn_step_forward(x: Tensor, I: Tensor, v0: Tensor, u0: Tensor, params, N: int, shared: int, dt: float, substeps: int,
                     check_x: bool, check_v: bool, bad):  # fmt: skip
    """One step of :func:`mdn_forward` over the ``M`` elements of ``I``, ``v0``, ``u0`` (contiguous, one shape);
    ``params``: the addresses of ``(a, b, c, d, V_th, scale)``, each ``N`` values or, where bit ``q`` of ``shared``
    is set, one. ``check_x``, ``check_v``: count the non-finite values of ``x`` and ``v0`` into ``bad[0]``, ``bad[1]``
    (a ``ctypes`` array of two int64). Returns ``(spikes, v, u)``."""
    M = I.numel()
    spk, v, u = torch.empty_like(I), torch.empty_like(I), torch.empty_like(I)
    _fn("mdn_fwd", I.dtype)(
        I.data_ptr(), v0.data_ptr(), u0.data_ptr(), *params, x.data_ptr() if check_x else None,
        v0.data_ptr() if check_v else None, spk.data_ptr(), v.data_ptr(), u.data_ptr(), None, None, None,
        ctypes.addressof(bad), 1, M, N, 1, dt / substeps, substeps, shared, _threads(M * substeps),
    )  # fmt: skip
    return spk, v, u


def mdn_step_backward(I: Tensor, v0: Tensor, u0: Tensor, params, N: int, shared: int, gs, gv, gu, dt: float, substeps: int,
                      width: float, sigmoid: bool, undetached: bool, want: int):  # fmt: skip
    """Backward of :func:`mdn_step_forward` from the gradients of its spikes and state (each ``None`` or contiguous
    like ``I``): ``(g_input, g_v0, g_u0, g_params [6, N] float64)``, of ``g_params`` only the rows of the bits of
    ``want`` (``None`` when it is 0)."""
    M = I.numel()
    gx, gv0, gu0 = torch.empty_like(I), torch.empty_like(I), torch.empty_like(I)
    scratch, gp = (I.new_empty(6, M), torch.empty(6, N, dtype=torch.float64)) if want else (None, None)
    _fn("mdn_bwd", I.dtype)(
        I.data_ptr(), v0.data_ptr(), u0.data_ptr(), *params, _ptr(gs), None, None, _ptr(gv), _ptr(gu), gx.data_ptr(),
        gv0.data_ptr(), gu0.data_ptr(), _ptr(scratch), _ptr(gp), 1, M, N, 1, 0, dt / substeps, width, substeps, int(sigmoid),
        int(undetached), want, shared,
        _threads(M * (2 * substeps + 1)),
    )  # fmt: skip
    return gx, gv0, gu0, gp


def first_order_step_forward(x: Tensor, I: Tensor, v0: Tensor, params, N: int, shared: int, check_x: bool, check_v: bool,
                             bad):  # fmt: skip
    """One step of :func:`first_order_forward`; ``params``: the addresses of ``(g, V_th, V_reset, scale)``, the rest as
    :func:`mdn_step_forward`. Returns ``(spikes, v)``."""
    M = I.numel()
    spk, v = torch.empty_like(I), torch.empty_like(I)
    _fn("fo_fwd", I.dtype)(
        I.data_ptr(), v0.data_ptr(), *params, x.data_ptr() if check_x else None, v0.data_ptr() if check_v else None,
        spk.data_ptr(), v.data_ptr(), None, None, ctypes.addressof(bad), 1, M, N, 1, shared, _threads(M),
    )  # fmt: skip
    return spk, v


def first_order_step_backward(I: Tensor, v0: Tensor, params, N: int, shared: int, gs, gv, width: float, sigmoid: bool,
                              undetached: bool, want: int):  # fmt: skip
    """Backward of :func:`first_order_step_forward`: ``(g_input, g_v0, g_params [4, N] float64 or None)`` (``want``:
    as :func:`mdn_step_backward`)."""
    M = I.numel()
    gx, gv0 = torch.empty_like(I), torch.empty_like(I)
    scratch, gp = (I.new_empty(4, M), torch.empty(4, N, dtype=torch.float64)) if want else (None, None)
    _fn("fo_bwd", I.dtype)(
        I.data_ptr(), v0.data_ptr(), *params, *map(_ptr, (gs, None, gv, gx, gv0, scratch, gp)),
        1, M, N, 1, width, int(sigmoid), int(undetached), want, shared, _threads(M * 2),
    )  # fmt: skip
    return gx, gv0, gp
