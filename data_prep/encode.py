"""Spike encodings: random (Bernoulli) sampling of intensities in [0, 1] (paper §4.1).

``S[n, t, d] = 1  if  u[n, t, d] < p[n, t, d]  else 0``,  u ~ U[0, 1) i.i.d., so E[S] = p exactly
(p = 1 always spikes, p = 0 never does). Spikes come out packed (:func:`mdn_snntorch.spikefile.pack_spikes`).

:func:`analog_levels` gives the same per-step probabilities as the spike file's ``analog`` levels,
``round(L * p)`` (``L`` = :data:`ANALOG_LEVELS`), for feeding the network analog input instead of spikes.
"""

from __future__ import annotations

import numpy as np

from mdn_snntorch.spikefile import pack_spikes

#: levels of the stored analog input: ``p`` is kept as ``round(255 p)``, uint8
ANALOG_LEVELS = 255


def per_step(prob: np.ndarray, time_steps: int) -> np.ndarray:
    """float32 ``[n, 1 | T, D]`` probabilities from ``[n, D]`` (the same at every step) or ``[n, T, D]``."""
    p = np.asarray(prob, dtype=np.float32)
    if p.ndim == 2:
        p = p[:, None, :]
    if p.ndim != 3 or p.shape[1] not in (1, time_steps):
        raise ValueError(f"intensities must be [n, D] or [n, {time_steps}, D], got {np.shape(prob)}")
    return p


def bernoulli(prob: np.ndarray, time_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Packed spikes uint8 ``[n, T, ceil(D / 8)]`` from intensities ``prob``: ``[n, D]`` (the same
    at every step: rate coding) or ``[n, T, D]`` (one intensity per step)."""
    p = per_step(prob, time_steps)
    u = rng.random((p.shape[0], time_steps, p.shape[2]), dtype=np.float32)
    return pack_spikes(u < p)


def analog_levels(prob: np.ndarray, time_steps: int, levels: int = ANALOG_LEVELS) -> np.ndarray:
    """uint8 ``[n, T, D]``: ``round(levels * p)`` of the per-step probabilities :func:`bernoulli` samples
    from the same ``prob`` (clipped to [0, 1])."""
    p = per_step(prob, time_steps)
    q = np.rint(np.clip(p, 0.0, 1.0) * np.float32(levels)).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(q, (p.shape[0], time_steps, p.shape[2])))


def repeat_steps(frames: np.ndarray, steps_per_frame: int) -> np.ndarray:
    """``[n, F, D]`` -> ``[n, F * k, D]``: each frame held for ``k = steps_per_frame`` steps."""
    return np.repeat(frames, steps_per_frame, axis=1)
