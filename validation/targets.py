"""Brian2 code-generation targets: ``numpy``, ``cython`` (Brian2's default flags) and ``cython-strict``.

Brian2 compiles Cython code with ``-ffast-math`` (and ``-march=native``, which lets the compiler
fuse multiply-adds), so the last bit of a result may differ from numpy / PyTorch. The strict
mode compiles with ``-fno-fast-math -ffp-contract=off`` instead: IEEE arithmetic, one rounding
per operation. Brian2 keys its compiled-module cache on the code only, not on the compiler
flags, so each mode gets its own cache directory (``~/.cache/mdn_snntorch/brian2-<mode>`` by
default) and its own in-process module table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TARGETS = ("numpy", "cython", "cython-strict")
STRICT_FLAGS = ["-fno-fast-math", "-ffp-contract=off"]

_module_tables: dict[str, dict] = {}


def default_cache_root() -> Path:
    """``$MDN_BRIAN2_CACHE`` or ``~/.cache/mdn_snntorch``."""
    return Path(os.environ.get("MDN_BRIAN2_CACHE", Path.home() / ".cache" / "mdn_snntorch"))


def compile_args(target: str, base: list[str]) -> list[str]:
    """gcc flags of a Cython mode: ``base`` (Brian2's), with fast-math swapped for the strict flags."""
    if target == "cython-strict":
        return [f for f in base if f not in ("-ffast-math", "-fno-finite-math-only")] + STRICT_FLAGS
    return list(base)


def check_available(target: str) -> None:
    """``ValueError`` naming what is missing when ``target`` cannot work here (numpy always can)."""
    import importlib.util
    import shutil

    if target == "numpy":
        return
    if importlib.util.find_spec("Cython") is None:
        raise ValueError(f"Brian2 target {target!r} needs Cython (pip install cython); use --targets numpy instead")
    compiler = os.environ.get("CXX") or "g++"
    if shutil.which(compiler.split()[0]) is None and shutil.which("c++") is None:
        raise ValueError(f"Brian2 target {target!r} needs a C++ compiler ({compiler} not found); use --targets numpy instead")


@contextmanager
def use_target(target: str, cache_root: str | os.PathLike | None = None) -> Iterator[None]:
    """Run the enclosed Brian2 code with ``target``; prefs are restored afterwards."""
    if target not in TARGETS:
        raise ValueError(f"unknown Brian2 target {target!r}; choose from {', '.join(TARGETS)}")
    from brian2 import prefs
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager

    check_available(target)
    names = ("codegen.target", "codegen.runtime.cython.cache_dir", "codegen.cpp.extra_compile_args_gcc")
    saved = {name: prefs[name] for name in names}
    saved_table = cython_extension_manager._code_cache
    try:
        prefs["codegen.target"] = "numpy" if target == "numpy" else "cython"
        if target != "numpy":
            cache = Path(cache_root or default_cache_root()) / f"brian2-{target}"
            cache.mkdir(parents=True, exist_ok=True)
            prefs["codegen.runtime.cython.cache_dir"] = str(cache)
            prefs["codegen.cpp.extra_compile_args_gcc"] = compile_args(target, saved["codegen.cpp.extra_compile_args_gcc"])
            # the in-process table of loaded modules is keyed on the code alone too
            cython_extension_manager._code_cache = _module_tables.setdefault(f"{target}:{cache}", {})
        yield
    finally:
        cython_extension_manager._code_cache = saved_table
        for name, value in saved.items():
            prefs[name] = value
