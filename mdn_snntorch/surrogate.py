r"""Window surrogate gradient (paper Eq. 6).

Forward: the Heaviside step :math:`S = H(x)`, with :math:`x = V - V_{th}` (the snnTorch
``spike_grad`` convention) and :math:`H(0) = 0` (strict threshold).
Backward: :math:`\partial S / \partial x = 1` if :math:`|x| < w` else 0 (height 1, not normalised).
The paper gives no :math:`w`; the default 0.5 follows the STBP convention it cites.
"""

from __future__ import annotations

import torch


class _WindowSpike(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, width: float) -> torch.Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, width = inputs
        ctx.save_for_backward(x)
        ctx.width = width

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() < ctx.width).to(grad_output.dtype), None


class Window:
    """Spike function with the window surrogate; pass it as ``spike_grad=`` to any snnTorch neuron."""

    def __init__(self, width: float = 0.5):
        width = float(width)
        if not width > 0:
            raise ValueError(f"window width must be > 0, got {width}")
        self.width = width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _WindowSpike.apply(x, self.width)

    def __repr__(self) -> str:
        return f"window(width={self.width})"


def window(width: float = 0.5) -> Window:
    """The window surrogate spike function of paper Eq. 6 with half-width ``width``."""
    return Window(width)


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Strict Heaviside without a surrogate (no gradient); keeps the input's dtype."""
    return (x > 0).to(x.dtype)
