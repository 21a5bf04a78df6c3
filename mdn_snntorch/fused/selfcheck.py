r"""A first-use self-check of the kernels behind the fused ops, against the exact PyTorch loop.

The Triton kernels are compiled per GPU and are the default for every CUDA user (``backend="auto"``). If a
compiler, driver or GPU computed them wrongly, every model trained on that GPU would be wrong without a
word. So the first time a fused op would run a checked kernel (:data:`CHECKED`: Triton) for a (neuron
type, dtype, device) in a process, :func:`passed` runs a small fixed problem through that kernel and
through :mod:`mdn_snntorch.fused.torch_loop` (the same algorithm in plain PyTorch ops, exact) and compares:

- **forward, bitwise**: spikes, final state, traces and checkpointed states (the kernels repeat the
  loop's float operations without fused multiply-adds, ``docs/model.md#tolerances``). When the kernel
  applies the input sigmoid itself, its current ``I`` must be within :data:`SIGMOID_ULPS` units in the last
  place of ``torch.sigmoid`` and the loop is then run on the kernel's ``I``;
- **backward, to rounding**: every gradient (input, initial state, each parameter row) within
  :data:`GRAD_RTOL` of its largest entry (float64 1e-12, float32 1e-4, as the fused-op tests).

The problem: ``T = 16`` steps, ``M = 300`` elements (two Triton programs of 256, the second masked),
per-neuron parameters near 2-FS, two configurations per neuron type (:data:`CASES`: the one training uses
and one with sub-steps, the sigmoid in the kernel, traces and every gradient input). It is drawn from its
own generator (the global RNG is untouched) and takes well under a second once the kernels are compiled.

The verdict is cached for the process. A mismatch, or any exception while compiling or launching the
kernel, gives one ``RuntimeWarning`` naming the kernel, the device and the difference, and the ops use
the exact PyTorch-loop kernel for that (neuron type, dtype, device) from then on.
``MDN_SNNTORCH_SKIP_SELFCHECK=1`` skips the check (the kernel is trusted). During CUDA-graph capture no
check runs (it would break the capture) and the kernel is used unchecked, without caching a verdict.

The check is generic over the kernel module (any module with the ``mdn_forward`` / ``mdn_backward`` /
``first_order_forward`` / ``first_order_backward`` functions of :mod:`~mdn_snntorch.fused.c_kernels`), so
its mechanism is tested on the CPU with injected wrong kernels, and ``python -m mdn_snntorch.fused.selfcheck``
prints the verdicts of a machine (``--kernel c`` checks the C kernels, ``--kernel triton`` the GPU's).
"""

from __future__ import annotations

import argparse
import importlib
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch

from mdn_snntorch.fused import torch_loop

Tensor = torch.Tensor

#: setting this environment variable to anything but "" or "0" skips the check
ENV_SKIP = "MDN_SNNTORCH_SKIP_SELFCHECK"
#: the kernels checked before their first use (the C kernels are checked by the test suite of every build)
CHECKED = {"triton"}
NEURONS = ("mdn", "first_order")
#: gradients: largest difference allowed, relative to the largest entry (docs/model.md#tolerances)
GRAD_RTOL = {torch.float64: 1e-12, torch.float32: 1e-4}
#: the kernel's own sigmoid may differ from torch.sigmoid's by this many units in the last place
SIGMOID_ULPS = 8
#: the fixed problem: steps, batch, neurons (M = B x N = 300 elements)
T, B, N = 16, 3, 100
#: the configurations checked per neuron type: (dt, substeps, sigmoid in the kernel, traces, gradient inputs)
CASES = {
    "mdn": (
        dict(dt=1.0, substeps=1, sigmoid=False, traces=False, grads=("spikes",)),
        dict(dt=0.5, substeps=2, sigmoid=True, traces=True, grads=("spikes", "v_trace", "u_trace", "v_final", "u_final")),
    ),
    "first_order": (
        dict(sigmoid=False, traces=False, grads=("spikes",)),
        dict(sigmoid=True, traces=True, grads=("spikes", "v_trace", "v_final")),
    ),
}
WIDTH = 0.5
_KERNEL_MODULES = {"c": "mdn_snntorch.fused.c_kernels", "triton": "mdn_snntorch.fused.triton_kernels"}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``ok``, and when not, what differed (``detail``)."""

    ok: bool
    kernel: str
    neuron: str
    dtype: torch.dtype
    device: str
    detail: str = ""

    def message(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        if self.ok:
            return f"{self.kernel} kernel, {self.neuron}, {dtype}, {self.device}: OK (equal to the PyTorch loop)"
        return (
            f"mdn_snntorch: the {self.kernel} kernel of the fused {self.neuron} op does not match the exact PyTorch "
            f"loop on {self.device} ({dtype}): {self.detail}. Using the PyTorch-loop kernel instead for this "
            f"neuron type, dtype and device (same results as the reference, slower). Set {ENV_SKIP}=1 to skip "
            "this check."
        )


_lock = threading.Lock()
_verdicts: dict[tuple[str, str, torch.dtype, str], Verdict] = {}


def skipped() -> bool:
    """Whether :data:`ENV_SKIP` is set (to anything but ``""`` or ``"0"``)."""
    return os.environ.get(ENV_SKIP, "") not in ("", "0")


def clear() -> None:
    """Forget every cached verdict (the next use checks again)."""
    with _lock:
        _verdicts.clear()


def verdicts() -> list[Verdict]:
    """The verdicts reached so far in this process."""
    with _lock:
        return list(_verdicts.values())


def _device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def describe(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200, sm_90)``, or the device's name."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{device} ({torch.cuda.get_device_name(device)}, sm_{major}{minor})"
    return str(device)


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def passed(
    kernel: str,
    dtype: torch.dtype,
    device: str | torch.device,
    neuron: str | None = None,
    module: ModuleType | str | None = None,
) -> bool:
    """Whether ``kernel`` may run the fused ops for ``neuron`` (``None``: both neuron types) in ``dtype`` on
    ``device``: ``True`` for kernels not in :data:`CHECKED` and when :data:`ENV_SKIP` is set; otherwise the
    cached verdicts, checking at first use (``module``: the kernel module, by default the kernel's own)."""
    if kernel not in CHECKED or skipped():
        return True
    device = _device(device)
    if _capturing(device):
        return True
    return all(verdict(kernel, n, dtype, device, module).ok for n in ((neuron,) if neuron else NEURONS))


def verdict(
    kernel: str, neuron: str, dtype: torch.dtype, device: str | torch.device, module: ModuleType | str | None = None
) -> Verdict:
    """The cached verdict for (kernel, neuron, dtype, device), checked now if there is none; a failed
    check warns once (:meth:`Verdict.message`)."""
    device = _device(device)
    key = (kernel, neuron, dtype, str(device))
    with _lock:  # one check per key, even with several threads
        found = _verdicts.get(key)
        if found is None:
            mod = module if module is not None else _KERNEL_MODULES.get(kernel, kernel)
            result = check(importlib.import_module(mod) if isinstance(mod, str) else mod, neuron, dtype, device)
            found = _verdicts[key] = Verdict(result.ok, kernel, neuron, dtype, describe(device), result.detail)
            if not found.ok:
                warnings.warn(found.message(), RuntimeWarning, stacklevel=3)
    return found


# ---------------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------------
class _Mismatch(Exception):
    pass


def check(module: ModuleType, neuron: str, dtype: torch.dtype, device: str | torch.device = "cpu") -> Verdict:
    """Run the fixed problem through ``module``'s kernels and through the PyTorch loop and compare (see the
    module's docstring). Never raises: an exception of the kernel becomes a failed verdict."""
    device = torch.device(device)
    name = getattr(module, "__name__", repr(module)).rsplit(".", 1)[-1]
    try:
        with torch.autocast(device.type, enabled=False), torch.no_grad():
            for i, case in enumerate(CASES[neuron]):
                _compare_case(module, neuron, dtype, device, i, case)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    except _Mismatch as e:
        return Verdict(False, name, neuron, dtype, str(device), str(e))
    except Exception as e:  # noqa: BLE001 - any failure of the kernel (compile, launch, shapes) is a verdict
        text = " ".join(str(e).split())
        return Verdict(False, name, neuron, dtype, str(device), f"it raised {type(e).__name__}: {text[:300]}")
    return Verdict(True, name, neuron, dtype, str(device))


def _problem(neuron: str, case: dict, dtype: torch.dtype, device: torch.device, seed: int) -> dict[str, Tensor]:
    """The inputs of one case, drawn in float64 on the CPU from a fixed generator, then cast and moved."""
    g = torch.Generator().manual_seed(seed)
    M = B * N
    drive = 2.0 * torch.randn(T, M, generator=g, dtype=torch.float64) + 0.5 + torch.randn(T, 1, generator=g, dtype=torch.float64)
    x = drive if case["sigmoid"] else torch.sigmoid(drive)
    noise = lambda: 0.01 * torch.randn(N, generator=g, dtype=torch.float64)  # noqa: E731
    if neuron == "mdn":
        rows = (0.06 + noise(), 0.219 + noise(), -0.065 + noise(), 0.003 + noise(), 0.5 + noise(), 1.5 + noise())
        state = {"v0": 0.3 * torch.randn(M, generator=g, dtype=torch.float64), "u0": 0.08 + noise().repeat(B)}
    else:
        rows = (0.8 + noise(), 0.5 + noise(), 0.1 * noise(), 1.5 + noise())
        state = {"v0": 0.3 * torch.randn(M, generator=g, dtype=torch.float64)}
    out = {"x": x, "params": torch.stack(rows), **state}
    for name in case["grads"]:
        out[name] = torch.randn(M if name.endswith("final") else (T, M), generator=g, dtype=torch.float64)
    return {k: v.to(device=device, dtype=dtype).contiguous() for k, v in out.items()}


def _compare_case(module: ModuleType, neuron: str, dtype, device, i: int, case: dict) -> None:
    p = _problem(neuron, case, dtype, device, seed=1000 + i)
    sigmoid, traces, every = case["sigmoid"], case["traces"], 1
    where = f"case {i + 1} ({', '.join(f'{k}={v}' for k, v in case.items() if k != 'grads')})"
    if neuron == "mdn":
        names = ("spikes", "V_T", "U_T", "V trace", "U trace", "I", "checkpoints")

        def fwd(m, x, sig):
            return m.mdn_forward(x, p["v0"], p["u0"], p["params"], case["dt"], case["substeps"], sig, traces, every)
    else:
        names = ("spikes", "V_T", "V trace", "I", "checkpoints")

        def fwd(m, x, sig):
            return m.first_order_forward(x, p["v0"], p["params"], sig, traces, every)

    got = fwd(module, p["x"], sigmoid)
    current = got[names.index("I")] if sigmoid else p["x"]
    if sigmoid:
        _close_to_sigmoid(current, p["x"], where)
    want = fwd(torch_loop, current, False)  # the loop on the kernel's own current
    for name, a, b in zip(names, got, want):
        if name == "I" or (not traces and "trace" in name):
            continue
        _bitwise(a, b, f"{where}, forward {name}")
    _compare_backward(module, neuron, case, p, current, got[-1], where)


def _compare_backward(module, neuron: str, case: dict, p: dict, current: Tensor, ck: Tensor, where: str) -> None:
    sigmoid, every = case["sigmoid"], 1
    g = {k: p.get(k) for k in ("spikes", "v_trace", "u_trace", "v_final", "u_final")}
    if neuron == "mdn":
        names = ("input", "V_0", "U_0", "parameters (a, b, c, d, V_th, scale)")

        def bwd(m):
            grads = (g["spikes"], g["v_trace"], g["u_trace"], g["v_final"], g["u_final"])
            return m.mdn_backward(current, ck, p["params"], *grads, case["dt"], case["substeps"], WIDTH, sigmoid, every)
    else:
        names = ("input", "V_0", "parameters (decay, V_th, reset, scale)")

        def bwd(m):
            return m.first_order_backward(
                current, ck, p["params"], g["spikes"], g["v_trace"], g["v_final"], WIDTH, sigmoid, every
            )

    for name, a, b in zip(names, bwd(module), bwd(torch_loop)):
        if name.startswith("parameters"):
            for row, (ra, rb) in enumerate(zip(a, b)):
                _close(ra, rb, f"{where}, gradient of {name} row {row}")
        else:
            _close(a, b, f"{where}, gradient of {name}")


def _first(mask: Tensor) -> str:
    idx = mask.nonzero()[0].tolist()
    return "[" + ", ".join(map(str, idx)) + "]"


def _bitwise(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise _Mismatch(f"{what}: shape {tuple(a.shape)} instead of {tuple(b.shape)}")
    if torch.equal(a, b):
        return
    diff = a != b
    worst = (a.double() - b.double()).abs().nan_to_num(float("inf")).max().item()
    raise _Mismatch(
        f"{what} differs at {int(diff.sum())} of {a.numel()} elements (first at {_first(diff)}; "
        f"largest difference {worst:.3g}; required: bitwise equal)"
    )


def _close(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise _Mismatch(f"{what}: shape {tuple(a.shape)} instead of {tuple(b.shape)}")
    a64, b64 = a.double(), b.double()
    scale = max(b64.abs().max().item(), 1e-30)
    err = (a64 - b64).abs().nan_to_num(float("inf"))
    tol = GRAD_RTOL.get(b.dtype, 1e-2) * scale
    if err.max().item() > tol or not torch.isfinite(a64).all():
        raise _Mismatch(
            f"{what} differs by {err.max().item():.3g} (first at {_first(err > tol)}; tolerance {tol:.3g} = "
            f"{GRAD_RTOL.get(b.dtype, 1e-2):g} x its largest entry {scale:.3g})"
        )


def _close_to_sigmoid(current: Tensor, x: Tensor, what: str) -> None:
    want = torch.sigmoid(x)
    tol = SIGMOID_ULPS * torch.finfo(x.dtype).eps * want.abs()
    bad = ~((current - want).abs() <= tol)
    if bad.any():
        worst = (current.double() - want.double()).abs().max().item()
        raise _Mismatch(
            f"{what}, the kernel's sigmoid differs from torch.sigmoid by up to {worst:.3g} at {int(bad.sum())} elements "
            f"(first at {_first(bad)}; allowed: {SIGMOID_ULPS} units in the last place)"
        )


# ---------------------------------------------------------------------------------------------
# python -m mdn_snntorch.fused.selfcheck
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Check a kernel on every device of its kind (or ``--device``) and print the verdicts; exit status 1
    if any failed. Runs the check even when :data:`ENV_SKIP` is set (this is what it is for)."""
    parser = argparse.ArgumentParser(prog="python -m mdn_snntorch.fused.selfcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", choices=sorted(_KERNEL_MODULES), default="triton")
    parser.add_argument(
        "--device", action="append", help="a device to check (repeatable); default: every CUDA device for triton, cpu for c"
    )
    parser.add_argument("--dtype", action="append", choices=("float32", "float64"), help="default: both")
    args = parser.parse_args(argv)
    if args.device:
        devices = args.device
    elif args.kernel == "triton":
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        devices = ["cpu"]
    if not devices:
        out("no CUDA device here: nothing to check (try --kernel c)")
        return 0
    module = importlib.import_module(_KERNEL_MODULES[args.kernel])
    failed = 0
    for device in devices:
        device = _device(device)
        for dtype in [getattr(torch, d) for d in (args.dtype or ("float32", "float64"))]:
            for neuron in NEURONS:
                v = check(module, neuron, dtype, device)
                v = Verdict(v.ok, args.kernel, neuron, dtype, describe(device), v.detail)
                out(("PASS " if v.ok else "FAIL ") + (v.message() if v.ok else v.message().removeprefix("mdn_snntorch: ")))
                failed += not v.ok
    out(f"{failed} of {len(devices) * len(args.dtype or (1, 2)) * len(NEURONS)} checks failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
