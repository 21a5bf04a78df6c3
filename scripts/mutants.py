"""The mutation check: realistic one-line bugs planted in the core, one at a time, each in a copy of the
repository; the fast tests that guard that code must fail on it ("kill" it). Survivors are printed.

    python scripts/mutants.py              # every mutant (5 to 8 minutes on 2 cores)
    python scripts/mutants.py --list       # the mutants, without running them
    python scripts/mutants.py --only loss-mean-over-outputs triton-adjoint-dt-dropped
    make mutants                           # the same as the first line, with the project's venv

A mutant replaces one exact line fragment (found once in its file, so the list survives edits elsewhere)
and runs its test subset with ``-m "not slow" -x`` (the fast suite's tests of that code). The copy holds
the files git tracks plus the working tree's changes to them; the C kernels of mutated C sources build in
a cache folder of the run. Exit status: 0 when every mutant is killed, 1 when one survives, 2 when the
unmutated copy already fails a subset or a mutant's fragment is not found (the list needs an update).
Not run by CI: it takes minutes and proves the tests, not the code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
    name: str
    path: str  # relative to the repository
    old: str  # an exact fragment, found once in the file
    new: str
    tests: tuple[str, ...]


NEURON_STEP = ("tests/neurons/test_fast_step.py", "tests/neurons/test_edge_inputs.py")
FUSED = ("tests/fused/test_fused_ops.py",)
C_STEP = ("tests/fused/test_c_step.py",)
MUTANTS = (
    # the loss and what the trainer reports
    Mutant(
        "loss-mean-over-outputs",
        "mdn_snntorch/pipeline/loss.py",
        ".sum(dim=-1).mean()",
        ".mean(dim=-1).mean()",
        ("tests/pipeline/test_loss.py", "tests/pipeline/test_loss_reported_by_training.py"),
    ),
    Mutant(
        "predict-lowest-rate",
        "mdn_snntorch/pipeline/loss.py",
        "firing_rate(spikes).argmax(dim=-1)",
        "firing_rate(spikes).argmin(dim=-1)",
        ("tests/pipeline/test_loss.py",),
    ),
    Mutant(
        "nearest-code-farthest",
        "mdn_snntorch/pipeline/loss.py",
        "pred = torch.cdist(rate, codes).argmin(dim=-1)",
        "pred = torch.cdist(rate, codes).argmax(dim=-1)",
        ("tests/pipeline/test_loss.py",),
    ),
    Mutant(
        "epoch-loss-per-batch",
        "mdn_snntorch/pipeline/epochs.py",
        "loss.double() * n,",
        "loss.double(),",
        ("tests/pipeline/test_loss_reported_by_training.py",),
    ),
    # the equations and the reference step
    Mutant(
        "dv-dt-sign-of-u",
        "mdn_snntorch/equations.py",
        "return v * v - v - u + current",
        "return v * v - v + u + current",
        ("tests/neurons/test_golden_traces.py",),
    ),
    Mutant(
        "du-dt-without-b",
        "mdn_snntorch/equations.py",
        "return theta_a * (theta_b * v - u)",
        "return theta_a * (v - u)",
        ("tests/neurons/test_golden_traces.py",),
    ),
    Mutant(
        "first-order-no-decay",
        "mdn_snntorch/equations.py",
        "return decay * v + current",
        "return v + current",
        ("tests/neurons/test_golden_traces.py", "tests/neurons/test_dtype_and_traps.py"),
    ),
    Mutant(
        "substeps-full-dt",
        "mdn_snntorch/functional.py",
        "    sub_dt = dt / substeps\n",
        "    sub_dt = dt\n",
        ("tests/neurons/test_golden_traces.py", *NEURON_STEP),
    ),
    Mutant(
        "reset-lowers-u",
        "mdn_snntorch/functional.py",
        "u_next = u_next + theta.theta_d * fired",
        "u_next = u_next - theta.theta_d * fired",
        ("tests/neurons/test_golden_traces.py", *NEURON_STEP),
    ),
    Mutant(
        "window-one-sided",
        "mdn_snntorch/surrogate.py",
        "grad_output * (x.abs() < ctx.width)",
        "grad_output * (x < ctx.width)",
        ("tests/neurons/test_gradients.py", *NEURON_STEP),
    ),
    # the one-node single step and its named adjoint
    Mutant("node-u-jump-dropped", "mdn_snntorch/functional.py", "u_new = up.addcmul_(d, fired)", "u_new = up", NEURON_STEP),
    Mutant(
        "node-or-last-substep",
        "mdn_snntorch/functional.py",
        "fired_any = fired if fired_any is None else torch.maximum(fired_any, fired)",
        "fired_any = fired",
        NEURON_STEP,
    ),
    Mutant(
        "node-surrogate-wide",
        "mdn_snntorch/functional.py",
        "hardtanh_backward(grad, margin, -width, width)",
        "hardtanh_backward(grad, margin, -width, 2 * width)",
        NEURON_STEP,
    ),
    Mutant(
        "node-reset-passes-v",
        "mdn_snntorch/functional.py",
        "return g_v * keep if g_sh is None else g_sh.addcmul_(g_v, keep)",
        "return g_v * keep if g_sh is None else g_sh.add_(g_v)",
        NEURON_STEP,
    ),
    Mutant(
        "node-u-update-sign",
        "mdn_snntorch/functional.py",
        "return g_a, g_b, g_u * (a * b), g_u * (1 - a)",
        "return g_a, g_b, g_u * (a * b), g_u * (1 + a)",
        NEURON_STEP,
    ),
    Mutant(
        "node-v-update-slope",
        "mdn_snntorch/functional.py",
        "to_v.addcmul_(v, g_vp, value=2)",
        "to_v.addcmul_(v, g_vp, value=1)",
        NEURON_STEP,
    ),
    Mutant(
        "node-undetached-reset-sign",
        "mdn_snntorch/functional.py",
        "g = None if g_v is None else g_v * (c - vp)",
        "g = None if g_v is None else g_v * (vp - c)",
        NEURON_STEP,
    ),
    # the fused op's kernels
    Mutant(
        "triton-adjoint-dt-dropped",
        "mdn_snntorch/fused/triton_kernels.py",
        "return gvp * (1 + dt * (2 * v - 1)) + to_v, to_u - gvp * dt, gvp * dt",
        "return gvp * (1 + dt * (2 * v - 1)) + to_v, to_u - gvp, gvp * dt",
        ("tests/fused/test_triton_interpreter.py",),
    ),
    Mutant(
        "triton-window-one-sided",
        "mdn_snntorch/fused/triton_kernels.py",
        "return g * ((x < w) & (-x < w)).to(x.dtype)",
        "return g * (x < w).to(x.dtype)",
        ("tests/fused/test_triton_interpreter.py",),
    ),
    Mutant(
        "triton-undetached-without-u",
        "mdn_snntorch/fused/triton_kernels.py",
        "return gv * (c - _mdn_vprime(v, u, cur, dt)) + gu * d",
        "return gv * (c - _mdn_vprime(v, u, cur, dt))",
        ("tests/fused/test_triton_interpreter.py",),
    ),
    Mutant(
        "c-single-step-u-gradient-from-v",
        "mdn_snntorch/fused/c/mdn_kernels_impl.h",
        "gv0[i] = gvi; gu0[i] = gui;",
        "gv0[i] = gvi; gu0[i] = gvi;",
        C_STEP,
    ),
    Mutant(
        "c-rows-fill-only-the-first",
        "mdn_snntorch/fused/c/mdn_kernels_impl.h",
        "memcpy(dst + done, dst, more * sizeof(scalar_t));",
        "memset(dst + done, 0, more * sizeof(scalar_t));",
        C_STEP,
    ),
    Mutant(
        "c-step-counts-the-current-for-the-membrane",
        "mdn_snntorch/fused/c/mdn_kernels_impl.h",
        "if (cv) bv += !(v0[i] - v0[i] == 0);",
        "if (cv) bv += !(I[i] - I[i] == 0);",
        C_STEP,
    ),
    Mutant(
        "c-step-plan-ignores-a-new-storage",
        "mdn_snntorch/neurons/base.py",
        "key += (id(t), t._version, t.data_ptr())",
        "key += (id(t), t._version, 0)",
        ("tests/fused/test_fused_ops.py",),
    ),
    Mutant(
        "c-step-plan-keeps-its-copies",
        "mdn_snntorch/neurons/base.py",
        "elif plan.copies:",
        "elif False:",
        ("tests/fused/test_fused_ops.py",),
    ),
    Mutant(
        "node-scale-cached-on-cpu",
        "mdn_snntorch/neurons/base.py",
        "if g.is_cpu:",
        "if False:",
        ("tests/fused/test_fused_ops.py",),
    ),
    Mutant(
        "sparse-tiles-skip-a-row",
        "mdn_snntorch/sparse/c/spike_linear_impl.h",
        "for (int64_t t0 = lo; t0 < hi; t0 += tile)",
        "for (int64_t t0 = lo; t0 < hi; t0 += tile + (tile < hi - lo))",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "sparse-bit-lists-lose-word-offset",
        "mdn_snntorch/sparse/c/spike_linear_impl.h",
        "const int64_t i = w * 64 + __builtin_ctzll(m);",
        "const int64_t i = __builtin_ctzll(m);",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "sparse-runs-carry-across-segments",
        "mdn_snntorch/sparse/c/spike_runs_impl.h",
        "        if (t % RUN_STEPS == 0)\n            for (int v = 0; v < nv; v++) acc[v] = (VEC){0};",
        "        if (t == 0)\n            for (int v = 0; v < nv; v++) acc[v] = (VEC){0};",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "sparse-runs-lose-their-sign",
        "mdn_snntorch/sparse/c/spike_runs_impl.h",
        "rval[pr++] = sign[(m >> c) & 1];",
        "rval[pr++] = 1;",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "sparse-complement-off-steps-added",
        "mdn_snntorch/sparse/c/spike_complement_impl.h",
        "val[p++] = sign[(m[w] >> c) & 1];",
        "val[p++] = 1;",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "sparse-complement-totals-carry-across-segments",
        "mdn_snntorch/sparse/c/spike_complement_impl.h",
        "            if (t % RUN_STEPS == 0)\n                for (int64_t j = 0; j < N; j++) tot[j] = y[j];",
        "            if (t == 0)\n                for (int64_t j = 0; j < N; j++) tot[j] = y[j];",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "sparse-complement-when-it-saves-nothing",
        "mdn_snntorch/sparse/c/spike_complement.h",
        "count_planes_at_least(c, (n + 1) / 2 + 1)",
        "count_planes_at_least(c, (n + 1) / 2)",
        ("tests/sparse/test_spike_linear.py",),
    ),
    Mutant(
        "c-block-keeps-last-parameters",
        "mdn_snntorch/fused/c/mdn_kernels.c",
        "const int changed = n != *n0 || (!all_shared && k != *k0);",
        "const int changed = n != *n0;",
        FUSED,
    ),
    Mutant(
        "c-flags-drop-the-sums-of-an-undetached-linear-step",
        "mdn_snntorch/fused/c/mdn_kernels.c",
        "else { if (sums) call(1, 0, 1); else call(1, 0, 0); }",
        "else { if (sums) call(1, 0, 0); else call(1, 0, 0); }",
        FUSED + C_STEP,
    ),
    Mutant(
        "c-step-plan-ignores-in-place-changes",
        "mdn_snntorch/neurons/base.py",
        "key += (id(t), t._version, t.data_ptr())",
        "key += (id(t), 0, t.data_ptr())",
        C_STEP,
    ),
    Mutant(
        "c-parameter-sums-not-restarted",
        "mdn_snntorch/fused/c/mdn_kernels_impl.h",
        "        if (A->want) /* (unread sums are zeroed once, above) */\n            for (int i = 0; i < n; i++) ga[i]",
        "        if (0) /* (unread sums are zeroed once, above) */\n            for (int i = 0; i < n; i++) ga[i]",
        FUSED,
    ),
    Mutant(
        "c-theta-d-from-v",
        "mdn_snntorch/fused/c/mdn_kernels_impl.h",
        "*gd += fire ? gui : (scalar_t)0;",
        "*gd += fire ? gvi : (scalar_t)0;",
        FUSED,
    ),
    Mutant(
        "c-window-one-sided", "mdn_snntorch/fused/c/mdn_kernels_impl.h", "return (x < w) & (-x < w);", "return (x < w);", FUSED
    ),
    Mutant("c-decay-gradient", "mdn_snntorch/fused/c/mdn_kernels_impl.h", "*gg += gvp * v;", "*gg += gvi * v;", FUSED),
    Mutant("loop-threshold-gradient-sign", "mdn_snntorch/fused/torch_loop.py", "gp[4] -= gsh", "gp[4] += gsh", FUSED),
    Mutant(
        "loop-or-last-substep",
        "mdn_snntorch/fused/torch_loop.py",
        "acc = s if acc is None else (acc + s) - acc * s",
        "acc = s",
        FUSED,
    ),
    Mutant(
        "op-undetached-reset-dropped",
        "mdn_snntorch/fused/ops.py",
        "kernel, every, not detach_reset)  # fmt: skip",
        "kernel, every, False)  # fmt: skip",
        FUSED,
    ),
    # the path decision and the neurons around it
    Mutant(
        "path-ignores-use-reference",
        "mdn_snntorch/fused/dispatch.py",
        'if neuron.backend == "auto" and config["reference"]:',
        "if False:",
        ("tests/neurons/test_paths.py",),
    ),
    Mutant(
        "failed-build-warns-twice",
        "mdn_snntorch/fused/dispatch.py",
        'why["c"] not in (None, _BUILD_FAILED):',
        'why["c"] is not None:',
        ("tests/neurons/test_paths.py",),
    ),
    Mutant(
        "path-batch-varying-params",
        "mdn_snntorch/fused/dispatch.py",
        "if ndim >= 2 and k == ndim:",
        "if ndim >= 2 and k > ndim:",
        ("tests/neurons/test_paths.py", "tests/neurons/test_param_shapes.py"),
    ),
    Mutant(
        "empty-sequence-unguarded",
        "mdn_snntorch/functional.py",
        "return MDNTrace(empty, state, empty, empty) if return_traces else MDNTrace(empty, state)\n",
        "pass\n",
        ("tests/neurons/test_edge_inputs.py",),
    ),
    Mutant(
        "nonfinite-step-off-by-one",
        "mdn_snntorch/neurons/base.py",
        "int(bad[0]) + 1 if len(bad)",
        "int(bad[0]) if len(bad)",
        ("tests/neurons/test_edge_inputs.py",),
    ),
    Mutant(
        "horizon-late",
        "mdn_snntorch/neurons/base.py",
        "not (before <= horizon < before + steps)",
        "not (before < horizon < before + steps)",
        ("tests/neurons/test_dtype_and_traps.py",),
    ),
    Mutant(
        "time-distributed-keys",
        "mdn_snntorch/layers.py",
        "state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)",
        "state_dict[inner + key[len(inner) :]] = state_dict.pop(key)",
        ("tests/neurons/test_step_mode.py",),
    ),
    Mutant(
        "meter-counts-itself",
        "mdn_snntorch/threads.py",
        "others = max(0.0, (now[2] - last[2]) - mine) / wall",
        "others = max(0.0, (now[2] - last[2])) / wall",
        ("tests/fused/test_threads.py",),
    ),
)


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [p for p in out.split("\0") if p and (root / p).is_file()]


def make_copy(root: Path, dest: Path) -> Path:
    """The tracked files of ``root`` (as they are in the working tree) under ``dest``."""
    for rel in tracked_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return dest


def run_tests(copy: Path, tests: tuple[str, ...], env: dict[str, str], timeout: int) -> tuple[int, float, str]:
    """``(exit status, seconds, the first failing test or else the last lines)`` of the fast tests ``tests`` in ``copy``."""
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        rc, text = -1, f"timed out after {timeout} s"
    failed = [line.split(" - ")[0] for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return rc, time.perf_counter() - t0, failed[0] if failed else "\n".join(text.strip().splitlines()[-3:])


def apply(copy: Path, mutant: Mutant) -> str:
    """Plant ``mutant`` in ``copy``; returns the file's original text (to restore it)."""
    path = copy / mutant.path
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise LookupError(f"{mutant.name}: the fragment {mutant.old!r} occurs {text.count(mutant.old)} times in {mutant.path}")
    path.write_text(text.replace(mutant.old, mutant.new))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the mutants (and check their fragments) and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test run (default 900)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of every test subset")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    missing = [m.name for m in mutants if (ROOT / m.path).read_text().count(m.old) != 1]
    if args.list:
        for m in mutants:
            print(f"{m.name:32s} {m.path}: {m.old.strip()!r} -> {m.new.strip()!r}  [{' '.join(m.tests)}]")
    if missing:
        print(f"fragments not found exactly once (update the list): {', '.join(missing)}")
        return 2
    if args.list:
        return 0
    with tempfile.TemporaryDirectory(prefix="mdn-mutants-") as tmp:
        copy = make_copy(ROOT, Path(tmp) / "repo")
        env = {
            **os.environ,
            "PYTHONPATH": str(copy),
            "PYTHONDONTWRITEBYTECODE": "1",
            "MDN_SNNTORCH_CACHE": str(Path(tmp) / "cache"),
        }
        if not args.no_baseline:
            subsets = sorted({m.tests for m in mutants})
            for tests in subsets:
                rc, seconds, tail = run_tests(copy, tests, env, args.timeout)
                print(f"baseline {' '.join(tests)}: {'pass' if rc == 0 else 'FAIL'} ({seconds:.0f} s)", flush=True)
                if rc != 0:
                    print(tail)
                    return 2
        survivors = []
        for i, m in enumerate(mutants, 1):
            try:
                original = apply(copy, m)
            except LookupError as e:
                print(e)
                return 2
            try:
                rc, seconds, tail = run_tests(copy, m.tests, env, args.timeout)
            finally:
                (copy / m.path).write_text(original)
            verdict = "killed" if rc not in (0, 5) else "SURVIVED" if rc == 0 else "no tests ran"
            if verdict != "killed":
                survivors.append(m.name)
            caught = f": {tail}" if verdict == "killed" else ""
            print(f"[{i}/{len(mutants)}] {verdict:8s} {m.name} ({seconds:.0f} s){caught}", flush=True)
    killed = len(mutants) - len(survivors)
    print(f"killed {killed} of {len(mutants)} mutants ({killed / len(mutants):.0%})")
    if survivors:
        print("survivors: " + ", ".join(survivors))
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
