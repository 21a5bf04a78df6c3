"""snnTorch plumbing shared by :class:`~mdn_snntorch.MDN` and :class:`~mdn_snntorch.FirstOrder`:
constructor vocabulary, input current (paper sigmoid), input checks, lazily shaped state,
inhibition, and the class-wide ``reset_hidden`` / ``detach_hidden``."""

from __future__ import annotations

import torch
from snntorch import SpikingNeuron

from mdn_snntorch.surrogate import heaviside, window


class MDNFamilyNeuron(SpikingNeuron):
    """Base of the neurons in this package; not used directly.

    Subclasses name their state buffers in ``_state_names`` and implement ``_initial_states``.
    """

    _state_names: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        threshold: float,
        spike_grad,
        surrogate_disable: bool,
        init_hidden: bool,
        inhibition: bool,
        learn_threshold: bool,
        state_quant,
        output: bool,
        graded_spikes_factor: float,
        learn_graded_spikes_factor: bool,
        input_sigmoid: bool,
        check_input: bool,
        num_neurons: int | None,
    ):
        super().__init__(
            threshold,
            spike_grad if spike_grad is not None else window(),
            surrogate_disable,
            init_hidden,
            inhibition,
            learn_threshold,
            "zero",  # both neuron orders reset to a value (theta_c or V_reset), never by subtraction
            state_quant,
            output,
            graded_spikes_factor,
            learn_graded_spikes_factor,
        )
        if surrogate_disable:
            self.spike_grad = heaviside  # snnTorch's bypass casts to float32; this keeps the dtype
        if num_neurons is not None and (not isinstance(num_neurons, int) or num_neurons < 1):
            raise ValueError(f"num_neurons must be a positive int or None, got {num_neurons!r}")
        self.num_neurons = num_neurons
        self.input_sigmoid = bool(input_sigmoid)
        self.check_input = bool(check_input)
        for name in self._state_names:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    # ---- input -------------------------------------------------------------------------
    def _checked_current(self, input_: torch.Tensor) -> torch.Tensor:
        """I = sigmoid(input) (or the input itself), after checking dtype, size and finiteness."""
        name = type(self).__name__
        if not torch.is_tensor(input_) or not input_.is_floating_point():
            raise TypeError(f"{name} input must be a floating-point tensor, got {getattr(input_, 'dtype', type(input_))}")
        if self.num_neurons is not None and input_.shape[-1:] != (self.num_neurons,):
            raise ValueError(
                f"{name} has per-neuron parameters for num_neurons={self.num_neurons}, "
                f"but its input has shape {tuple(input_.shape)} (last dimension must be {self.num_neurons})"
            )
        if self.check_input and not torch.compiler.is_compiling() and not bool(torch.isfinite(input_).all()):
            raise ValueError(f"{name} input contains NaN or inf (pass check_input=False to skip this check)")
        return torch.sigmoid(input_) if self.input_sigmoid else input_

    def _spike_fn(self, x: torch.Tensor) -> torch.Tensor:
        """The spike function handed to the functional step (winner-take-all along dim 1 with inhibition)."""
        spikes = self.spike_grad(x)
        if self.inhibition:
            winner = torch.zeros_like(spikes).scatter_(1, x.argmax(dim=1, keepdim=True), 1.0)
            spikes = spikes * winner
        return spikes

    # ---- state -------------------------------------------------------------------------
    def _initial_states(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _ensure_states(self, like: torch.Tensor) -> None:
        """(Re)create the state with ``like``'s shape, dtype and device when its shape differs."""
        if getattr(self, self._state_names[0]).shape != like.shape:
            for name, value in zip(self._state_names, self._initial_states(like)):
                setattr(self, name, value)

    def _take_states(self, **given) -> None:
        if self.init_hidden and any(v is not None for v in given.values()):
            raise TypeError(f"{', '.join(f'`{k}`' for k in given)} should not be passed as an argument while `init_hidden=True`")
        for name, value in given.items():
            if value is not None:
                setattr(self, name, value)

    def reset_mem(self):
        """Put this neuron back to its initial state (keeps the shape); returns the states."""
        like = getattr(self, self._state_names[0])
        for name, value in zip(self._state_names, self._initial_states(like)):
            setattr(self, name, value)
        return tuple(getattr(self, n) for n in self._state_names)

    def detach_states(self) -> None:
        """Cut the state from the autograd graph (truncated BPTT)."""
        for name in self._state_names:
            setattr(self, name, getattr(self, name).detach())

    @classmethod
    def _instances(cls):
        return [n for n in SpikingNeuron.instances if isinstance(n, cls)]

    @classmethod
    def reset_hidden(cls):
        """Reset every live instance of this class (snnTorch's convention; prefer :func:`mdn_snntorch.reset`)."""
        for n in cls._instances():
            n.reset_mem()

    @classmethod
    def detach_hidden(cls):
        """Detach the state of every live instance of this class from the graph."""
        for n in cls._instances():
            n.detach_states()
