"""One run per output: a lock file created exclusively next to (or inside) what a run writes.

``mdn train``, ``discover``, ``evaluate``, ``validate`` and ``prep`` claim their output before any work:
:func:`claim_dir` (a run directory: the lock is ``DIR/.mdn-lock``) or :func:`claim_file` (a single output
file ``F``: the lock is ``.F.mdn-lock`` beside it). Claiming checks the path is writable
(:mod:`mdn_snntorch.atomic`), creates the lock with ``O_CREAT | O_EXCL`` holding the process id, host,
process start time and a random token as JSON, and removes it on the way out (also after an exception,
Ctrl-C or SIGTERM); folders the claim created are removed again when the run left them empty.

A second run on the same output fails at once with :class:`LockedError`, naming the lock file. A pid means
something only in the PID namespace and the boot it was taken in, so the lock also records the namespace
(the inode of ``/proc/self/ns/pid``) and the boot id (``/proc/sys/kernel/random/boot_id``). A lock is
*stale* when its host, namespace and boot are this process's and its pid is gone or now another process
(its start time differs): it is removed with a warning and the claim goes on. A lock of another host,
PID namespace (a container on the same host name) or boot cannot be checked, and neither can a lock
without these fields (written by an earlier version): the claim is refused, and the message names the
lock file to delete once that run is known to be gone. Claims are re-entrant within a process
(``evaluate`` claims its folder and each training run inside claims its own).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mdn_snntorch.atomic import prepare_dir, prepare_file, remove_if_empty
from mdn_snntorch.printable import printable

LOCK_NAME = ".mdn-lock"
#: a lock file without readable content is left alone for this long (it may be being written)
UNREADABLE_GRACE_S = 10.0

_held: dict[str, int] = {}


class LockedError(RuntimeError):
    """The output is in use by another run (bad input: exit code 2)."""

    exit_code = 2


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``; None elsewhere): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def pid_namespace() -> int | None:
    """The inode of this process's PID namespace (Linux; None elsewhere): pids of two namespaces are unrelated."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def boot_id() -> str | None:
    """This boot's id (Linux; None elsewhere): a pid of an earlier boot, or of another machine, is unrelated."""
    return _read_text("/proc/sys/kernel/random/boot_id")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class RunLock:
    """An exclusively created lock file at ``path``; ``what`` names the locked output in messages."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self.what = what
        self._key = os.path.abspath(self.path)
        self._token: str | None = None

    def acquire(self) -> RunLock:
        if self._key in _held:
            _held[self._key] += 1
            return self
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                holder = _read(self.path)
                if holder is not None and self._stale(holder):
                    self._break(holder)
                    continue
                if holder is None and self._age() < UNREADABLE_GRACE_S:
                    time.sleep(0.05)
                    continue
                raise LockedError(self._message(holder)) from None
            self._token = uuid.uuid4().hex
            doc = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "start": _process_start(os.getpid()),
                "pid_ns": pid_namespace(),
                "boot": boot_id(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:300],
                "token": self._token,
            }
            try:
                os.write(fd, json.dumps(doc).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            _held[self._key] = 1
            return self
        raise LockedError(self._message(_read(self.path)))

    def release(self) -> None:
        count = _held.get(self._key, 0)
        if count > 1:
            _held[self._key] = count - 1
            return
        _held.pop(self._key, None)
        holder = _read(self.path)
        if holder is not None and holder.get("token") == self._token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ---- stale locks ------------------------------------------------------------------------
    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    @staticmethod
    def _checkable(holder: dict[str, Any]) -> bool:
        """Whether the holder's pid names a process here: same host, PID namespace and boot (a lock without the
        namespace and boot fields, from an earlier version, is not)."""
        if holder.get("host") != socket.gethostname() or "pid_ns" not in holder or "boot" not in holder:
            return False
        return holder["pid_ns"] == pid_namespace() and holder["boot"] == boot_id()

    @classmethod
    def _stale(cls, holder: dict[str, Any]) -> bool:
        """The holder's pid can be checked here (:meth:`_checkable`) and its process is gone (or the pid now
        belongs to another process)."""
        if not cls._checkable(holder):
            return False
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        if pid == os.getpid():  # not in _held: a previous process with this pid (pid namespaces restart at 1)
            return True
        if not _alive(pid):
            return True
        start = _process_start(pid)
        return start is not None and holder.get("start") is not None and start != holder.get("start")

    def _break(self, holder: dict[str, Any]) -> None:
        """Remove the stale lock ``holder``, never a fresh one another process just created."""
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it
        if _read(aside) != holder:  # it was replaced meanwhile by a live claim: put it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        else:
            print(
                printable(
                    f"mdn: warning: removed the stale lock {self.path} of pid {holder.get('pid')} on {holder.get('host')} "
                    "(that process is gone)"
                ),
                file=sys.stderr,
            )
        aside.unlink(missing_ok=True)

    def _message(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            who = "another run (the lock file is unreadable)"
        else:
            who = f"another mdn run: pid {holder.get('pid')} on host {holder.get('host')}"
            if holder.get("since"):
                who += f" since {holder['since']}"
            if holder.get("host") == socket.gethostname() and not self._checkable(holder):
                who += f" ({self._unrelated(holder)}, so that pid cannot be checked from here)"
        return printable(
            f"{self.what} is in use by {who}; lock file {self.path}. Wait for that run to end or use another output; "
            f"if it is gone (e.g. its machine crashed), delete {self.path}"
        )

    @staticmethod
    def _unrelated(holder: dict[str, Any]) -> str:
        """Why a lock of this host's name holds a pid of another process table."""
        if "pid_ns" not in holder or "boot" not in holder:
            return "the lock does not record its PID namespace and boot: an earlier version wrote it"
        if holder["boot"] != boot_id():
            return "it was taken in another boot, or on another machine of the same name"
        return "it was taken in another PID namespace (a container)"


@contextmanager
def _holding(lock: RunLock, created: list[Path]) -> Iterator[None]:
    """Hold ``lock`` for the block; the folders the claim ``created`` are removed again when left empty."""
    try:
        lock.acquire()
    except BaseException:
        remove_if_empty(created)
        raise
    try:
        yield
    finally:
        lock.release()
        remove_if_empty(created)


@contextmanager
def claim_dir(path: str | os.PathLike, what: str = "run directory") -> Iterator[Path]:
    """Check, create and lock the folder ``path`` for one run (see the module docstring)."""
    path = Path(path)
    created = prepare_dir(path, what)
    with _holding(RunLock(path / LOCK_NAME, f"{what} {path}"), created):
        yield path


@contextmanager
def claim_file(path: str | os.PathLike, what: str = "output file") -> Iterator[Path]:
    """Check and lock the output file ``path`` (the lock ``.NAME.mdn-lock`` lies beside it)."""
    path = Path(path)
    created = prepare_file(path, what)
    with _holding(RunLock(path.with_name(f".{path.name}{LOCK_NAME}"), f"{what} {path}"), created):
        yield path
