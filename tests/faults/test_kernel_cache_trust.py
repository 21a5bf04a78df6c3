"""The kernel cache runs no code another user wrote and never hangs (docs/robustness.md#the-kernel-cache).

The attack: a shared library whose constructor runs at ``dlopen`` (here it writes a marker file), sealed with
the plain SHA-256 anyone can compute, planted under the cache's file name by another user. Each case runs a
fresh interpreter (``dlopen`` and the library choice are per process) with ``MDN_SNNTORCH_CACHE`` (or
``HOME``) prepared here, and checks that the marker never appears, that the fused op still gives the
reference loop's result bitwise, and which warnings came. The other user is ``nobody`` (uid 65534), writing
through ``runuser`` where that works, else files are ``chown``'ed to that uid.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mdn_snntorch.fused import c_kernels, kernel_cache

pytestmark = pytest.mark.slow

OTHER = 65534  # nobody
IS_ROOT = os.geteuid() == 0

PROBE = """
import json, warnings
import torch
import mdn_snntorch as mdn
from mdn_snntorch.fused import c_kernels
from mdn_snntorch.sparse import c_kernels as sparse_c
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    x = torch.randn(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = mdn.MDN("2-FS", dtype=torch.float64).multi_step(x)
    ref = mdn.MDN("2-FS", dtype=torch.float64, backend="reference").multi_step(x)
    lib, sparse = c_kernels.library(), sparse_c.library()
print(json.dumps({"equal": torch.equal(out, ref), "c": lib is not None, "sparse": sparse is not None,
                  "folder": str(c_kernels.cache_dir()),
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}))
"""


def probe(env: dict[str, str], umask: int | None = None, memory: int | None = None, timeout: float = 300) -> dict:
    """Run :data:`PROBE` with ``env`` on top of this environment (a value None removes the variable)."""
    full = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    for k in [k for k, v in env.items() if v is None] + ["MDN_SNNTORCH_NO_CEXT"]:
        full.pop(k, None)

    def limits():
        if umask is not None:
            os.umask(umask)
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=full, timeout=timeout, preexec_fn=limits
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cc():
    cc = c_kernels._compiler()
    if cc is None:
        pytest.skip("no C compiler here")
    return cc


@pytest.fixture(scope="module")
def names(cc, tmp_path_factory) -> list[str]:
    """The file names the probe's fused library takes (with and without OpenMP), from a private cache."""
    saved = os.environ.get("MDN_SNNTORCH_CACHE")
    os.environ["MDN_SNNTORCH_CACHE"] = str(tmp_path_factory.mktemp("names"))
    try:
        return [c_kernels.cache_path(cc, c_kernels.CFLAGS + extra).name for extra in (c_kernels.OPENMP, ())]
    finally:
        if saved is None:
            os.environ.pop("MDN_SNNTORCH_CACHE")
        else:
            os.environ["MDN_SNNTORCH_CACHE"] = saved


@pytest.fixture
def shared():
    """A folder every user can reach (the test's own tmp_path is private to root), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="mdn-trust-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def planted_library(cc, tmp_path_factory):
    """``planted_library(marker)``: the bytes of a sealed library whose constructor writes ``marker``."""
    folder = tmp_path_factory.mktemp("planted")

    def build(marker: Path) -> bytes:
        source = folder / "evil.c"
        source.write_text(
            "#include <stdio.h>\n"
            "__attribute__((constructor)) static void planted(void) {\n"
            f'  FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}\n'
            "}\n"
        )
        out = folder / "evil.so"
        subprocess.run([cc, "-shared", "-fPIC", str(source), "-o", str(out)], check=True, capture_output=True)
        body = out.read_bytes()
        return body + kernel_cache.SEAL + hashlib.sha256(body).hexdigest().encode()

    return build


def _can_runuser() -> bool:
    if not IS_ROOT or shutil.which("runuser") is None:
        return False
    return subprocess.run(["runuser", "-u", "nobody", "--", "true"]).returncode == 0


def plant(folder: Path, names: list[str], data: bytes, how: str) -> None:
    """Every library name in ``folder`` holds ``data``, written by uid :data:`OTHER` (``how``: ``runuser`` runs
    ``cp`` as that user; ``chown`` writes here and gives the file away)."""
    source = folder.parent / f".{folder.name}-planted.so"
    source.write_bytes(data)
    source.chmod(0o644)
    for name in names:
        if how == "runuser":
            subprocess.run(["runuser", "-u", "nobody", "--", "cp", str(source), str(folder / name)], check=True)
        else:
            (folder / name).write_bytes(data)
            os.chown(folder / name, OTHER, OTHER)
    source.unlink()


def _need(how: str) -> None:
    if not IS_ROOT:
        pytest.skip("giving files to another uid needs root")
    if how == "runuser" and not _can_runuser():
        pytest.skip("runuser cannot run a command as nobody here")


def assert_refused_once(result: dict, reason: str) -> None:
    """The C kernels ran, built in a private temporary folder after one warning naming ``reason``."""
    assert result["equal"] and result["c"] and result["sparse"], result
    assert len(result["warnings"]) == 1, result["warnings"]  # one for both libraries
    message = result["warnings"][0]
    assert reason in message and "private temporary folder" in message, message
    folder = Path(result["folder"])
    assert folder.name.startswith("mdn_snntorch-kernels-") and not folder.exists()  # removed at exit


# ---- a library of another user never runs -----------------------------------------------------
@pytest.mark.parametrize("how", ["runuser", "chown"])
@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_a_library_planted_in_a_cache_others_can_write_never_runs(how, mode, shared, names, planted_library):
    _need(how)
    cache, marker = shared / "cache", shared / "constructor-ran"
    cache.mkdir()
    cache.chmod(mode)
    if mode == 0o775:
        os.chown(cache, 0, OTHER)  # group-writable by the other user's group
    evil = planted_library(marker)
    plant(cache, names, evil, how if mode != 0o775 else "chown")
    result = probe({"MDN_SNNTORCH_CACHE": str(cache)})
    assert not marker.exists(), "the planted library's constructor ran"
    assert_refused_once(result, f"{cache} can be written by")
    assert all((cache / n).read_bytes() == evil for n in names)  # a refused folder is not written to


@pytest.mark.parametrize("how", ["runuser", "chown"])
def test_a_cache_folder_of_another_user_is_refused(how, shared, names, planted_library):
    _need(how)
    cache, marker = shared / "theirs", shared / "constructor-ran"
    cache.mkdir()
    cache.chmod(0o777)
    plant(cache, names, planted_library(marker), how)
    os.chown(cache, OTHER, OTHER)
    cache.chmod(0o755)  # theirs, and only they can write it
    result = probe({"MDN_SNNTORCH_CACHE": str(cache)})
    assert not marker.exists()
    assert_refused_once(result, f"{cache} belongs to uid {OTHER}, not to this user")


def test_a_library_of_another_uid_in_the_own_cache_is_rebuilt_not_loaded(tmp_path, names, planted_library):
    _need("chown")
    cache, marker = tmp_path / "cache", tmp_path / "constructor-ran"
    cache.mkdir(mode=0o700)
    plant(cache, names, planted_library(marker), "chown")
    result = probe({"MDN_SNNTORCH_CACHE": str(cache)})
    assert not marker.exists()
    assert result == {**result, "equal": True, "c": True, "warnings": []} and result["folder"] == str(cache)
    built = [cache / n for n in names if (cache / n).stat().st_uid == os.geteuid()]
    assert built and all(kernel_cache.intact(p) for p in built)  # replaced by this user's own build


@pytest.mark.parametrize("parent_mode, refused", [(0o777, True), (0o1777, False)])
def test_a_parent_others_can_write_is_refused_unless_sticky(parent_mode, refused, tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    parent.chmod(parent_mode)
    (parent / "cache").mkdir(mode=0o700)
    result = probe({"MDN_SNNTORCH_CACHE": str(parent / "cache")})
    if refused:  # another user could rename cache away and put their own folder there
        assert_refused_once(result, f"{parent} can be written by group and others (mode 0777)")
    else:  # /tmp-like: only the owner of cache may rename it
        assert result["c"] and result["warnings"] == [] and result["folder"] == str(parent / "cache")


def test_a_symlinked_cache_is_judged_where_it_leads(tmp_path, shared, names, planted_library):
    _need("chown")
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    (tmp_path / "link-own").symlink_to(own)
    result = probe({"MDN_SNNTORCH_CACHE": str(tmp_path / "link-own" / "cache")})
    assert result["warnings"] == [] and result["folder"] == str(own / "cache")  # a link to one's own folder is fine
    assert stat.S_IMODE((own / "cache").stat().st_mode) == 0o700

    theirs, marker = shared / "theirs", shared / "constructor-ran"
    theirs.mkdir()
    plant(theirs, names, planted_library(marker), "chown")
    os.chown(theirs, OTHER, OTHER)
    (tmp_path / "link-theirs").symlink_to(theirs)
    result = probe({"MDN_SNNTORCH_CACHE": str(tmp_path / "link-theirs")})
    assert not marker.exists()
    assert_refused_once(result, f"{theirs} belongs to uid {OTHER}")


def test_a_home_of_another_user_is_not_used(shared):
    """``sudo`` without ``-H`` keeps the user's ``HOME``: root must not load what that user can write."""
    _need("chown")
    home = shared / "home"
    home.mkdir()
    os.chown(home, OTHER, OTHER)
    result = probe({"MDN_SNNTORCH_CACHE": None, "HOME": str(home)})
    assert_refused_once(result, f"{home} belongs to uid {OTHER}, not to this user (uid 0) or root")
    assert list(home.iterdir()) == []  # nothing created in it


# ---- files that are not libraries: no hang, no memory blow-up ------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dangling"])
def test_a_cache_name_that_is_no_regular_file_is_replaced_without_hanging(kind, tmp_path, names):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    make = {
        "fifo": os.mkfifo,
        "dev-zero": lambda p: p.symlink_to("/dev/zero"),
        "dangling": lambda p: p.symlink_to(tmp_path / "missing"),
    }[kind]
    for name in names:
        make(cache / name)
    # reading a FIFO whole waits for a writer forever, /dev/zero whole fills the memory: neither may happen
    result = probe({"MDN_SNNTORCH_CACHE": str(cache)}, memory=4 << 30, timeout=240)
    assert result["equal"] and result["c"] and result["warnings"] == []
    assert stat.S_ISREG(os.lstat(cache / names[0]).st_mode) or stat.S_ISREG(os.lstat(cache / names[1]).st_mode)


def test_open_checked_refuses_without_reading(tmp_path):
    fifo, big, zero = tmp_path / "fifo", tmp_path / "big", tmp_path / "zero"
    os.mkfifo(fifo)
    with open(big, "wb") as f:
        f.truncate(kernel_cache.MAX_LIBRARY_BYTES + 1)  # sparse: no disk used
    zero.symlink_to("/dev/zero")
    with pytest.raises(kernel_cache.RefusedLibrary, match="is not a regular file"):
        kernel_cache.open_checked(fifo)  # returns at once (O_NONBLOCK), nothing read
    with pytest.raises(kernel_cache.RefusedLibrary, match="more than a kernel library"):
        kernel_cache.open_checked(big)
    with pytest.raises(OSError):  # O_NOFOLLOW: ELOOP
        kernel_cache.open_checked(zero)
    assert not kernel_cache.intact(fifo) and not kernel_cache.intact(big) and not kernel_cache.intact(zero)


# ---- what is created: private whatever the umask ------------------------------------------------
@pytest.mark.parametrize("umask", [0o000, 0o002, 0o022])
def test_the_cache_is_private_whatever_the_umask(umask, tmp_path):
    cache = tmp_path / "a" / "b" / "cache"
    result = probe({"MDN_SNNTORCH_CACHE": str(cache)}, umask=umask)
    assert result["c"] and result["warnings"] == [] and result["folder"] == str(cache)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", cache):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = list(cache.iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in files)  # fused and sparse
    assert all(p.stat().st_uid == os.geteuid() for p in [*files, cache])


# ---- what is loaded is what was checked -----------------------------------------------------------
def test_load_maps_the_checked_descriptor_not_the_name(tmp_path, monkeypatch, cc):
    """A name swapped between the check and ``dlopen`` does not matter: the checked descriptor is mapped."""
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path / "cache"))
    flags = ("-O0", "-fPIC", "-shared")
    path = c_kernels._build(cc, flags)
    checked = os.stat(path)
    seen = {}

    def fake_cdll(name):
        (tmp_path / "other").write_bytes(b"swapped")
        os.replace(tmp_path / "other", path)  # the name now points elsewhere
        st = os.stat(name)
        seen.update(name=name, ino=st.st_ino, dev=st.st_dev)
        return object()

    monkeypatch.setattr(kernel_cache.ctypes, "CDLL", fake_cdll)
    kernel_cache.load(path)
    assert seen["name"].startswith("/proc/self/fd/") and (seen["ino"], seen["dev"]) == (checked.st_ino, checked.st_dev)


def test_a_library_of_another_uid_is_never_loaded(tmp_path, monkeypatch, cc):
    _need("chown")
    monkeypatch.setenv("MDN_SNNTORCH_CACHE", str(tmp_path / "cache"))
    path = c_kernels._build(cc, ("-O0", "-fPIC", "-shared"))
    os.chown(path, OTHER, OTHER)
    calls = []
    monkeypatch.setattr(kernel_cache.ctypes, "CDLL", lambda name: calls.append(name))
    with pytest.raises(kernel_cache.RefusedLibrary, match=f"belongs to uid {OTHER}"):
        kernel_cache.load(path)
    assert calls == [] and not kernel_cache.intact(path)
