r"""Input currents that drive the replayed neurons; every family returns ``I [T, n]`` in (0, 1).

- ``sine``: :math:`I_k = \sigma(\sqrt2\,s\,\sin(2\pi (k + \phi)/P))`, std ``s = 0.723``, period
  ``P = 50``; column 0 is exactly the sine stimulus of ``docs/model.md#meta-neuron-generation``
  (phase 0), the others have a random phase and a std scaled by 0.5-1.5.
- ``f-I``: constant currents evenly spaced in (0, 1), one level per column (f-I curves).
- ``noise``: :math:`\sigma(x_k)`, :math:`x_k \sim N(\mu, 1)` i.i.d. per step, :math:`\mu \sim U(-2, 2)` per column.
- ``random``: piecewise-constant currents, a new :math:`U(0, 1)` level after geometric hold
  times of mean 10 steps.
"""

from __future__ import annotations

import numpy as np

SINE_STD = 0.723
SINE_PERIOD = 50
FAMILIES = ("sine", "f-I", "noise", "random")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def sine(steps: int, n: int, rng: np.random.Generator, std: float = SINE_STD, period: int = SINE_PERIOD) -> np.ndarray:
    k = np.arange(steps)[:, None]
    phase = np.concatenate([[0.0], rng.uniform(0, period, n - 1)])
    scale = np.concatenate([[1.0], rng.uniform(0.5, 1.5, n - 1)])
    return sigmoid(np.sqrt(2.0) * std * scale * np.sin(2 * np.pi * (k + phase) / period))


def constant(steps: int, n: int) -> np.ndarray:
    """Levels ``j / (n + 1)``, ``j = 1..n``: an f-I curve over the whole sigmoid range."""
    return np.tile(np.arange(1, n + 1) / (n + 1), (steps, 1))


def noise(steps: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return sigmoid(rng.normal(rng.uniform(-2, 2, n), 1.0, size=(steps, n)))


def random_steps(steps: int, n: int, rng: np.random.Generator, mean_hold: float = 10.0) -> np.ndarray:
    change = rng.random((steps, n)) < 1.0 / mean_hold
    change[0] = True
    segment = np.cumsum(change, axis=0) - 1  # index of the level in force at each step
    levels = rng.random((steps, n))
    return np.take_along_axis(levels, segment, axis=0)


def families(steps: int, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` columns split over the four families (sine and f-I get at least one each)."""
    if n < len(FAMILIES):
        raise ValueError(f"need at least {len(FAMILIES)} neurons per type to cover every stimulus family, got {n}")
    sizes = [n // 4] * 3 + [n - 3 * (n // 4)]
    return {
        "sine": sine(steps, sizes[0], rng),
        "f-I": constant(steps, sizes[1]),
        "noise": noise(steps, sizes[2], rng),
        "random": random_steps(steps, sizes[3], rng),
    }
