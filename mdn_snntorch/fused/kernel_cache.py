r"""The kernel cache: a folder only its owner can change, and libraries loaded from it only after checks.

A shared library runs code as whoever loads it (its constructors run inside ``dlopen``), so a library that
another user could have written or swapped must never be loaded. The trust rests on ownership:

- **the folder** (``$MDN_SNNTORCH_CACHE``, default ``~/.cache/mdn_snntorch``) is created mode 0700 whatever
  the umask (each missing folder above it too), and used only when, with symbolic links resolved, it is a
  folder owned by this user that group and others cannot write, and no folder above it can be changed by
  another user: each is owned by this user or root and is not writable by group or others unless it is
  sticky (``/tmp``: there only an entry's owner may rename or remove it) (:func:`folder_problem`);
- **a refused folder** gets one warning per process naming the reason, and the kernels are built in a fresh
  private temporary folder instead (``mkdtemp``, checked the same way, removed at exit) (:func:`cache_dir`);
  worker processes started afterwards are pointed at that folder (:func:`environment`);
- **a library file** is opened without following a symbolic link and without blocking (a FIFO), and before
  one byte is read it must be a regular file of this user that group and others cannot write, of at most
  :data:`MAX_LIBRARY_BYTES`; its seal is checked from that descriptor in bounded reads (:func:`open_checked`);
- **loading** maps the file through that same descriptor (``/proc/self/fd/N``, kept open while the process
  lives so its name stays unique), so what ``dlopen`` maps is the file that was checked, even if the name
  is replaced meanwhile (:func:`load`). Without ``/proc`` the checked name is loaded; the private folder is
  then what keeps others from replacing it.

The seal (the SHA-256 of the library, appended to it) is for integrity: an empty, truncated or damaged
file (a crash, a full disk) is rebuilt instead of loaded. It is not for authenticity: anyone can compute a
SHA-256, so the seal says nothing about who wrote the file.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import shutil
import stat
import tempfile
import threading
import warnings
from pathlib import Path

from mdn_snntorch.printable import printable

#: what a cached library ends with, followed by the hex SHA-256 of every byte before it (:func:`intact`)
SEAL = b"\0mdn_snntorch-sha256:"
#: the largest file taken for a library (the kernels are a few hundred KB): nothing larger is read
MAX_LIBRARY_BYTES = 64 << 20
_SEAL_BYTES = len(SEAL) + 64
_CHUNK = 1 << 20
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH

_lock = threading.Lock()
_chosen: dict[str, Path] = {}  # configured folder -> the folder used for it in this process
_fallbacks: set[Path] = set()
_loaded_fds: list[int] = []  # descriptors whose /proc/self/fd name a loaded library carries


class UntrustedCache(OSError):
    """Neither the configured kernel cache nor a private temporary folder can be trusted."""


class RefusedLibrary(OSError):
    """A cached library file that is not loaded: not a regular file of this user, too large, or not sealed."""


def configured_dir() -> Path:
    """The folder asked for: ``$MDN_SNNTORCH_CACHE``, else ``~/.cache/mdn_snntorch``."""
    return Path(os.environ.get("MDN_SNNTORCH_CACHE") or Path.home() / ".cache" / "mdn_snntorch").expanduser()


def _dir_problem(path: Path, st: os.stat_result, own: bool) -> str | None:
    """Why the folder ``path`` (``lstat`` ``st``) lets another user change what is below it; ``own``: it is the
    cache itself (owned by this user, writable by nobody else), else a folder above it."""
    uid = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        return f"{path} became a symbolic link while it was checked"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if st.st_uid != uid and (own or st.st_uid != 0):
        return f"{path} belongs to uid {st.st_uid}, not to this user (uid {uid})" + ("" if own else " or root")
    if st.st_mode & _OTHERS_WRITE and (own or not st.st_mode & stat.S_ISVTX):
        who = {stat.S_IWGRP: "group", stat.S_IWOTH: "others"}.get(st.st_mode & _OTHERS_WRITE, "group and others")
        return f"{path} can be written by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _chain_problem(real: Path, own: bool) -> str | None:
    """:func:`_dir_problem` of the resolved folder ``real`` (``own`` as there) and of every folder above it."""
    for i, folder in enumerate([real, *real.parents]):
        try:
            st = os.lstat(folder)
        except OSError as err:
            return f"{folder}: {err.strerror}"
        problem = _dir_problem(folder, st, own and i == 0)
        if problem:
            return problem
    return None


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why the existing folder ``path`` may not hold kernels this user loads (another user could write or swap
    it or a folder above it), or None when it may (module docstring)."""
    return _chain_problem(Path(os.path.realpath(path)), own=True)


def _make_private(real: Path) -> str | None:
    """Create the missing folders of the resolved path ``real``, each mode 0700 whatever the umask, only below a
    folder no other user can change; then :func:`_chain_problem` of ``real`` (None: usable)."""
    missing, existing = [], real
    while not os.path.lexists(existing):
        missing.append(existing)
        existing = existing.parent
    problem = _chain_problem(existing, own=not missing)
    if problem or not missing:
        return problem
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: the check below judges it
        except OSError as err:
            return f"{folder} cannot be created: {err.strerror}"
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o700)  # mkdir's mode is masked by the umask (0700 & ~umask can be less)
        finally:
            os.close(fd)
    return _chain_problem(real, own=True)


def _private_temporary(configured: Path, problem: str) -> Path:
    folder = Path(os.path.realpath(tempfile.mkdtemp(prefix="mdn_snntorch-kernels-")))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    second = _chain_problem(folder, own=True)
    if second:
        raise UntrustedCache(
            printable(f"the kernel cache {configured} is not used ({problem}), nor the temporary folder {folder} ({second})")
        )
    _fallbacks.add(folder)
    warnings.warn(
        printable(
            f"mdn_snntorch: the kernel cache {configured} is not used: {problem}; the kernels are built in the private "
            f"temporary folder {folder} instead (give MDN_SNNTORCH_CACHE a folder of your own, mode 0700, to keep them)"
        ),
        RuntimeWarning,
        stacklevel=4,
    )
    return folder


def cache_dir() -> Path:
    """The folder built kernels are kept in: the configured one (:func:`configured_dir`, resolved, created
    0700 when missing) when no other user can change it, else, after one warning naming the reason, a fresh
    private temporary folder; :class:`UntrustedCache` when not even that one can be trusted. Decided once per
    configured folder and process."""
    configured = configured_dir()
    with _lock:
        key = str(configured)
        if key not in _chosen or not os.path.isdir(_chosen[key]):  # decided, unless the folder was removed since
            real = Path(os.path.realpath(configured))
            problem = _make_private(real)
            _chosen[key] = real if problem is None else _private_temporary(configured, problem)
        return _chosen[key]


def environment() -> dict[str, str]:
    """Environment for child processes: after a refusal, ``MDN_SNNTORCH_CACHE`` pointing at this process's
    private temporary folder (so they neither warn nor build again); else nothing."""
    used = _chosen.get(str(configured_dir()))
    return {"MDN_SNNTORCH_CACHE": str(used)} if used in _fallbacks else {}


def _file_problem(path: Path, st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    if st.st_mode & _OTHERS_WRITE:
        return f"{path} can be written by others (mode {stat.S_IMODE(st.st_mode):04o})"
    if st.st_size > MAX_LIBRARY_BYTES:
        return f"{path} holds {st.st_size} bytes, more than a kernel library ({MAX_LIBRARY_BYTES})"
    return None


def digest(fd: int, size: int) -> str:
    """The hex SHA-256 of the first ``size`` bytes of the open file ``fd``, read in chunks of at most 1 MiB."""
    h, offset = hashlib.sha256(), 0
    while offset < size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def _sealed(fd: int, size: int) -> bool:
    """Whether the file ``fd`` of ``size`` bytes ends with :data:`SEAL` and the SHA-256 of every byte before it."""
    if size <= _SEAL_BYTES:
        return False
    body = size - _SEAL_BYTES
    return os.pread(fd, _SEAL_BYTES, body) == SEAL + digest(fd, body).encode()


def open_checked(path: str | os.PathLike) -> int:
    """A read-only descriptor of ``path`` when it is a library this user built and sealed, whole: opened without
    following a symbolic link or blocking on a FIFO, a regular file of this user that others cannot write,
    at most :data:`MAX_LIBRARY_BYTES`, sealed. :class:`RefusedLibrary` (or the OSError of ``open``) otherwise."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        problem = _file_problem(path, st)
        if problem is None and not _sealed(fd, st.st_size):
            problem = f"{path} is not a whole sealed library (empty, truncated or foreign)"
        if problem:
            raise RefusedLibrary(printable(problem))
    except BaseException:
        os.close(fd)
        raise
    return fd


def intact(path: str | os.PathLike) -> bool:
    """Whether ``path`` passes :func:`open_checked`. An empty, truncated or foreign file does not (and is never
    loaded: ``dlopen`` of a truncated library maps pages past the end of the file, and touching them kills the
    process with SIGBUS); nor does a FIFO, a device, a symbolic link or a file of another user."""
    try:
        os.close(open_checked(path))
    except OSError:
        return False
    return True


def seal(path: str | os.PathLike) -> None:
    """Make the new library ``path`` (a file of this process's private folder) mode 0700 and append
    :data:`SEAL` and its SHA-256 (after the ELF data: the loader ignores it), on disk."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o700)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_LIBRARY_BYTES:
            raise RefusedLibrary(printable(f"the compiler's output {path} is not a library of at most {MAX_LIBRARY_BYTES} bytes"))
        os.write(fd, SEAL + digest(fd, st.st_size).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: str | os.PathLike) -> ctypes.CDLL:
    """``ctypes.CDLL`` of ``path`` after :func:`open_checked`, mapped through the checked descriptor."""
    fd = open_checked(path)
    name = f"/proc/self/fd/{fd}"
    if not os.path.exists(name):
        name = str(path)
    try:
        lib = ctypes.CDLL(name)
    except BaseException:
        os.close(fd)
        raise
    _loaded_fds.append(fd)  # dlopen knows the library by this name: the number must not be reused
    return lib
