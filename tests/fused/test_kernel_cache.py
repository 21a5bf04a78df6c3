"""The cached C kernel library never crashes a process: a damaged file is rebuilt, a failure falls back.

Each case runs in a fresh interpreter (a truncated shared library loaded with dlopen kills the process with
SIGBUS, which no test in this process could report) with ``MDN_SNNTORCH_CACHE`` pointing at a folder
prepared here, and checks the fused op's result against the reference loop, bitwise.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from mdn_snntorch.fused import c_kernels

pytestmark = pytest.mark.slow

PROBE = """
import json, warnings
import torch
import mdn_snntorch as mdn
from mdn_snntorch.fused import c_kernels
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    x = torch.randn(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = mdn.MDN("2-FS", dtype=torch.float64).multi_step(x)
    ref = mdn.MDN("2-FS", dtype=torch.float64, backend="reference").multi_step(x)
    lib = c_kernels.library()
print(json.dumps({"equal": torch.equal(out, ref), "c": lib is not None,
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}))
"""


def probe(cache, cc: str | None = None) -> dict:
    env = {**os.environ, "MDN_SNNTORCH_CACHE": str(cache)}
    env.pop("MDN_SNNTORCH_NO_CEXT", None)
    if cc:
        env["CC"] = cc
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode} (-7: SIGBUS): {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built():
    """The intact library this machine builds (path in the default cache) and the flags it was built with."""
    cc = c_kernels._compiler()
    if cc is None or c_kernels.library() is None:
        pytest.skip("no C compiler here")
    for flags in (c_kernels.CFLAGS + c_kernels.OPENMP, c_kernels.CFLAGS):
        path = c_kernels.cache_path(cc, flags)
        if c_kernels.intact(path):
            return path, flags
    pytest.skip("the library in the cache was built by another process under another name")


def _damaged(tmp_path, monkeypatch, built, how: str):
    """A copy of the built library in a fresh cache folder under its own name, damaged ``how``."""
    path, flags = built
    cache = tmp_path / "cache"
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(cache))
    target = c_kernels.cache_path(c_kernels._compiler(), flags)  # creates the folder, mode 0700
    assert target.name == path.name and target.parent == cache
    data = path.read_bytes()
    target.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": os.urandom(len(data))}[how])
    return cache, target, len(data)


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage"])
def test_a_damaged_cached_library_is_rebuilt(how, tmp_path, monkeypatch, built):
    cache, target, size = _damaged(tmp_path, monkeypatch, built, how)
    assert not c_kernels.intact(target)
    result = probe(cache)
    assert result == {"equal": True, "c": True, "warnings": []}  # rebuilt silently, the C kernels run
    assert c_kernels.intact(target) and target.stat().st_size == size
    assert [p.name for p in cache.iterdir()] == [target.name]  # no temporary files left


def test_an_intact_library_is_sealed_and_reused(built):
    path, _ = built
    data = path.read_bytes()
    assert data.startswith(b"\x7fELF") and c_kernels.SEAL in data[-100:]
    assert c_kernels.intact(path)


def _fake_compiler(tmp_path, output: bytes | None):
    """A compiler that answers --version and then fails (``output`` None) or writes ``output`` as the library."""
    script = tmp_path / "fakecc"
    write = f"printf '%s' '{output.decode()}' > \"$2\"; exit 0" if output is not None else "exit 1"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "fakecc 1.0"; exit 0; fi\n'
        'while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then break; fi; shift; done\n' + write + "\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_a_damaged_library_that_cannot_be_rebuilt_falls_back(tmp_path, monkeypatch):
    if shutil.which("sh") is None:
        pytest.skip("needs /bin/sh")
    cc = _fake_compiler(tmp_path, None)
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(cache))
    (c_kernels.cache_path(cc, c_kernels.CFLAGS + c_kernels.OPENMP)).write_bytes(b"garbage")
    result = probe(cache, cc)
    assert result["equal"] and not result["c"]  # the PyTorch loop: the same result
    assert len(result["warnings"]) == 1 and "building the CPU kernels failed" in result["warnings"][0]


def test_a_library_that_does_not_load_even_rebuilt_falls_back_with_a_clear_warning(tmp_path):
    if shutil.which("sh") is None:
        pytest.skip("needs /bin/sh")
    cc = _fake_compiler(tmp_path, b"not an ELF file")
    result = probe(tmp_path / "cache", cc)
    assert result["equal"] and not result["c"]
    assert len(result["warnings"]) == 1
    message = result["warnings"][0]
    assert "loading the CPU kernels failed" in message and "even after rebuilding" in message
