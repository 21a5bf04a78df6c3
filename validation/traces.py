"""What one simulator produced for a population: spikes and post-reset state, each ``[T, N]``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Traces(NamedTuple):
    """``spikes`` (bool), ``v`` and ``u`` (float64; ``u`` is NaN for 1st-order neurons).

    Row ``k`` is the state after step ``k``'s update, threshold and reset.
    """

    spikes: np.ndarray
    v: np.ndarray
    u: np.ndarray
