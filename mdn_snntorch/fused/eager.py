"""The library's custom ops in eager mode without the dispatcher: an op's implementation and autograd formula run
as one ``torch.autograd.Function``.

A call of a ``torch.library.custom_op`` with an autograd formula passes through the dispatcher, the generated
autograd wrapper (which re-reads the op's schema to fill in its defaults) and a redispatch before it reaches the
implementation: on the 2-core VM about 90 us a call, three times what the C kernels of a whole 10-neuron layer
take (docs/performance.md#what-the-op-does). Where nothing needs to see the op itself, :func:`direct` says so and
the op's own implementation, ``setup_context`` and ``backward`` run as the plain autograd Function that
:func:`function` makes of them: the same code, so the same results, bit for bit. Under ``torch.compile``, a JIT
trace, a dispatch or function mode (``FakeTensorMode``, ``FlopCounterMode``, ``with torch.device(...)``), a
functorch transform, or on a tensor subclass, the op is called as registered, and those see one node with its
fake kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def direct(*tensors: torch.Tensor | None) -> bool:
    """Whether an op on ``tensors`` may run as its plain autograd Function (:func:`function`) instead of through the
    dispatcher: eager mode, no tracer, mode or transform active, and only plain tensors (or ``None``)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled():
        return False
    if torch._C._are_functorch_transforms_active():
        return False
    return all(t is None or type(t) in _PLAIN for t in tensors)


def named(op: str, impl: Callable) -> Callable:
    """``impl``, recorded under the op's name ``op`` (``"mdn_snntorch::mdn_backward"``) while the profiler runs, as the
    op itself would be: a profile of the direct path names the same pieces as one through the dispatcher."""

    def call(*args):
        if not torch.autograd._profiler_enabled():
            return impl(*args)
        with torch.profiler.record_function(op):
            return impl(*args)

    return call


def function(op: str, impl: Callable, setup_context: Callable, backward: Callable) -> type[torch.autograd.Function]:
    """An autograd Function that runs ``impl(*inputs)`` (the implementation of the op named ``op``, recorded under
    that name while the profiler runs: :func:`named`), then ``setup_context(ctx, inputs, output)``, and
    ``backward(ctx, *grads)`` for its gradients: what the op's registered autograd does, without the dispatcher.
    ``ctx.direct`` is True in its context, so that a backward can call its own backward op's implementation directly
    too. Its backward is not differentiable (as the ops' backward ops are not). Its name is the op's in CamelCase
    (``mdn_snntorch::mdn_forward``: ``MdnForward``; its autograd node ``MdnForwardBackward``)."""
    run = named(op, impl)

    def forward(ctx, *inputs):
        output = run(*inputs)
        ctx.direct = True
        setup_context(ctx, inputs, output)
        return output

    @torch.autograd.function.once_differentiable
    def _backward(ctx, *grads):
        return backward(ctx, *grads)

    name = "".join(part.title() for part in op.split("::")[-1].split("_"))
    doc = f"``{op}`` as a plain autograd Function (:mod:`mdn_snntorch.fused.eager`)."
    body = {"forward": staticmethod(forward), "backward": staticmethod(_backward), "__doc__": doc}
    return type(name, (torch.autograd.Function,), body)
