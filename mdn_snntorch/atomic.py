"""Atomic file writes: a temporary file in the target's folder, renamed onto the target when complete,
so an interrupted write never leaves a half file and never destroys the previous one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None] | str | bytes, binary: bool = False) -> Path:
    """Write ``path`` atomically: ``write`` is the content (str or bytes) or a callable given the open file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(write, (str, bytes)):
        content, binary = write, isinstance(write, bytes)
        write = lambda f: f.write(content)  # noqa: E731
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _default_mode())  # mkstemp makes 0600; the result should look like any other file
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
