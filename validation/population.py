"""A population of independent neurons to replay, with the input current of every neuron.

Each neuron has a type (a meta-neuron name), an order (1 or 2), its parameters (theta for
order 2, the decay g for order 1) and the name of the stimulus family that drives it. The
currents ``[T, N]`` are the input current I itself (already through the sigmoid, in (0, 1)),
so both simulators get bit-identical input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdn_snntorch.meta_neurons import MetaNeuron


@dataclass(frozen=True)
class Population:
    """``N`` neurons and their currents; per-neuron arrays have length ``N``, ``currents`` is ``[T, N]``."""

    kind: np.ndarray  # neuron type name, str
    order: np.ndarray  # 1 or 2
    theta: np.ndarray  # [N, 4] (a, b, c, d); NaN rows for order-1 neurons
    decay: np.ndarray  # [N]; NaN for order-2 neurons
    stimulus: np.ndarray  # stimulus family name, str
    currents: np.ndarray  # [T, N] float64

    def __post_init__(self):
        n = len(self.kind)
        for name in ("order", "decay", "stimulus"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Population.{name} has length {len(getattr(self, name))}, expected {n}")
        if self.theta.shape != (n, 4):
            raise ValueError(f"Population.theta has shape {self.theta.shape}, expected ({n}, 4)")
        if self.currents.ndim != 2 or self.currents.shape[1] != n:
            raise ValueError(f"Population.currents has shape {self.currents.shape}, expected [T, {n}]")

    @property
    def size(self) -> int:
        return len(self.kind)

    @property
    def steps(self) -> int:
        return self.currents.shape[0]

    def index(self, order: int) -> np.ndarray:
        """Indices of the neurons of one order."""
        return np.flatnonzero(self.order == order)

    def first(self, kind: str, family: str) -> int:
        """Index of the first neuron of type ``kind`` driven by the stimulus ``family``."""
        return int(np.flatnonzero((self.kind == kind) & (self.stimulus == family))[0])

    def select(self, idx: np.ndarray) -> Population:
        """The sub-population ``idx`` (indices or a boolean mask)."""
        return Population(
            self.kind[idx], self.order[idx], self.theta[idx], self.decay[idx], self.stimulus[idx], self.currents[:, idx]
        )

    @staticmethod
    def of(neuron: MetaNeuron, stimulus: dict[str, np.ndarray]) -> Population:
        """Copies of ``neuron`` driven by ``stimulus`` (family name -> currents ``[T, n_family]``)."""
        currents = np.concatenate(list(stimulus.values()), axis=1)
        n = currents.shape[1]
        family = np.concatenate([[name] * c.shape[1] for name, c in stimulus.items()])
        theta = np.tile(np.array(neuron.theta if neuron.order == 2 else [np.nan] * 4, dtype=np.float64), (n, 1))
        decay = np.full(n, neuron.decay if neuron.order == 1 else np.nan, dtype=np.float64)
        return Population(np.array([neuron.name] * n), np.full(n, neuron.order), theta, decay, family, currents)

    @staticmethod
    def concat(parts: list[Population]) -> Population:
        """One population made of ``parts`` side by side (all with the same number of steps)."""
        return Population(
            np.concatenate([p.kind for p in parts]),
            np.concatenate([p.order for p in parts]),
            np.concatenate([p.theta for p in parts]),
            np.concatenate([p.decay for p in parts]),
            np.concatenate([p.stimulus for p in parts]),
            np.concatenate([p.currents for p in parts], axis=1),
        )


#: Box the random per-neuron theta are drawn from: it spans the paper's presets (Table 2),
#: including negative theta_a (unbounded U, as 2-SDS).
RANDOM_THETA_BOX = np.array([[-0.01, 0.07], [0.15, 0.25], [-0.07, 0.0], [0.0, 0.08]])


#: the type name of the random-theta neurons
RANDOM_THETA = "random-theta"


def random_theta_population(stimulus: dict[str, np.ndarray], rng: np.random.Generator) -> Population:
    """2nd-order neurons with theta drawn uniformly from :data:`RANDOM_THETA_BOX`, one per stimulus column."""
    pop = Population.of(MetaNeuron(RANDOM_THETA, 2, (0.0, 0.0, 0.0, 0.0)), stimulus)
    theta = rng.uniform(RANDOM_THETA_BOX[:, 0], RANDOM_THETA_BOX[:, 1], size=(pop.size, 4))
    return Population(pop.kind, pop.order, theta, pop.decay, pop.stimulus, pop.currents)
