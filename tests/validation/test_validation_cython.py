"""Brian2's Cython target, default (fast-math) and strict IEEE mode, each with its own cache directory.

Compiles on the first run (about a minute on 2 cores); later runs load the modules from
``~/.cache/mdn_snntorch/brian2-<mode>`` (or ``$MDN_BRIAN2_CACHE``).
"""

import numpy as np
import pytest
import torch

from mdn_snntorch.meta_neurons import get
from validation import brian2_sim, snntorch_sim, stimuli
from validation.metrics import compare
from validation.population import Population
from validation.rules import FLOAT64, judge
from validation.targets import STRICT_FLAGS, compile_args, default_cache_root, use_target

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # pyparsing, inside Brian2


def test_strict_flags_replace_fast_math():
    base = ["-w", "-O3", "-ffast-math", "-fno-finite-math-only", "-march=native", "-std=c++11"]
    strict = compile_args("cython-strict", base)
    assert "-ffast-math" not in strict and "-fno-finite-math-only" not in strict
    assert all(f in strict for f in STRICT_FLAGS) and "-O3" in strict
    assert compile_args("cython", base) == base


def test_use_target_sets_and_restores_prefs(tmp_path):
    from brian2 import prefs

    before = (
        prefs["codegen.target"],
        prefs["codegen.runtime.cython.cache_dir"],
        list(prefs["codegen.cpp.extra_compile_args_gcc"]),
    )
    with use_target("cython-strict", tmp_path):
        assert prefs["codegen.target"] == "cython"
        assert prefs["codegen.runtime.cython.cache_dir"] == str(tmp_path / "brian2-cython-strict")
        assert "-ffp-contract=off" in prefs["codegen.cpp.extra_compile_args_gcc"]
    assert (
        prefs["codegen.target"],
        prefs["codegen.runtime.cython.cache_dir"],
        list(prefs["codegen.cpp.extra_compile_args_gcc"]),
    ) == before
    with pytest.raises(ValueError, match="unknown Brian2 target 'cuda'"):
        with use_target("cuda"):
            pass


@pytest.mark.slow
def test_cython_modes_agree_with_numpy_and_snntorch():
    rng = np.random.default_rng(5)
    pop = Population.concat(
        [
            Population.of(get(n), {"sine": stimuli.sine(150, 3, rng), "noise": stimuli.noise(150, 3, rng)})
            for n in ("2-RS", "2-SDS")
        ]
    )
    numpy_run = brian2_sim.simulate(pop, "numpy")
    strict = brian2_sim.simulate(pop, "cython-strict")
    fast = brian2_sim.simulate(pop, "cython")
    # strict IEEE Cython evaluates the same expression as numpy with one rounding per operation: same bits
    for a, b in zip(strict, numpy_run):
        np.testing.assert_array_equal(a, b)
    ours = snntorch_sim.simulate(pop, torch.float64)
    for run in (strict, fast):
        assert judge(compare(ours, run, pop), FLOAT64).ok.all()
    assert np.abs(fast.v - numpy_run.v)[:100].max() < 1e-13  # fast-math: last-bit differences at most
    root = default_cache_root()
    modules = {mode: {p.name for p in (root / f"brian2-{mode}").glob("*.so")} for mode in ("cython", "cython-strict")}
    assert modules["cython"] and modules["cython-strict"]  # each mode compiled into its own cache
