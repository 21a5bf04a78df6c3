"""Safe output files: atomic writes and the checks that an output can be written at all.

An atomic write goes to a temporary file created exclusively (``mkstemp``: ``O_CREAT | O_EXCL |
O_NOFOLLOW``, an unpredictable name, so no other process and no planted symlink shares it) in the
target's folder, is flushed and fsynced, and is renamed onto the target when complete; the folder is
fsynced after the rename. An interrupted or failed write (an exception, Ctrl-C, SIGTERM through
:mod:`mdn_snntorch.signals`) removes the temporary file and leaves the previous target as it was.

A failure to write (disk full, I/O error, permission lost) is a :class:`WriteError` naming the file;
an output that cannot be used at all (an existing file where a folder is wanted, a read-only folder,
a path under a file) is an :class:`OutputError`, raised by :func:`prepare_dir` / :func:`prepare_file`
before any work starts.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class OutputError(ValueError):
    """An output path that cannot be used (bad input: exit code 2)."""

    exit_code = 2


class WriteError(OSError):
    """Writing an output failed while the run was going (disk full, I/O error): exit code 1.

    The message names the file and says that what was there before is unchanged.
    """

    exit_code = 1


def write_error(path: str | os.PathLike, err: OSError, kept: str | None = None) -> WriteError:
    """A :class:`WriteError` for ``path`` from the OSError ``err`` (``kept``: what the message says was kept)."""
    reason = err.strerror or str(err) or type(err).__name__
    kept = kept or f"the previous {Path(path).name}, if any, is unchanged"
    out = WriteError(f"cannot write {path}: {reason}; {kept}")
    out.errno = err.errno
    return out


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_file(path: str | os.PathLike) -> tuple[int, Path]:
    """An exclusively created, empty temporary file beside ``path`` (``.<name>.<pid>.<random>.tmp``, mode 0600):
    ``(open fd, path)``. The caller removes it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    return fd, Path(tmp)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems cannot fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None] | str | bytes, binary: bool = False) -> Path:
    """Write ``path`` atomically: ``write`` is the content (str or bytes) or a callable given the open file.

    :class:`WriteError` (naming ``path``) when the file system refuses; the previous ``path`` stays as it was.
    """
    path = Path(path)
    if isinstance(write, (str, bytes)):
        content, binary = write, isinstance(write, bytes)
        write = lambda f: f.write(content)  # noqa: E731
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file(path)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        os.fchmod(fd, _default_mode())  # mkstemp makes 0600; the result should look like any other file
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise write_error(path, err) from err
        raise
    fsync_dir(path.parent)
    return path


# --------------------------------------------------------------------------------------------
# checking outputs before the work starts
def _existing_ancestor(path: Path) -> Path:
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            return parent
    return Path(".")


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: the one test of writability that also holds for root and read-only mounts."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mdn-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        reason = "read-only or not writable" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else err.strerror
        raise OutputError(f"{what}: cannot write into {folder} ({reason})") from err


def prepare_dir(path: str | os.PathLike, what: str = "output directory") -> list[Path]:
    """Make sure ``path`` is (or can become) a writable folder: create it and write-probe it.

    Returns the folders created, outermost first (see :func:`remove_if_empty`); :class:`OutputError`
    when ``path`` is an existing file, lies under a file, or is not writable.
    """
    path = Path(path)
    label = f"{what} {path}"
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{label} is an existing file, not a folder; give a folder name")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise OutputError(f"{label} lies under {ancestor}, which is a file, not a folder")
    missing = [p for p in (path, *path.parents) if not os.path.lexists(p)][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        remove_if_empty(missing)
        raise OutputError(f"{label}: cannot create it ({err.strerror})") from err
    try:
        _probe(path, label)
    except OutputError:
        remove_if_empty(missing)
        raise
    return missing


def prepare_file(path: str | os.PathLike, what: str = "output file") -> list[Path]:
    """Make sure the file ``path`` can be written: not a folder, its folder writable (created when missing).
    Returns the folders created, outermost first."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file name")
    return prepare_dir(path.parent, f"folder of {what} {path}")


def remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (outermost first, as :func:`prepare_dir` returns them) that are empty, innermost first."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return
