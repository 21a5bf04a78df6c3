"""From cluster centres to meta neurons: the candidates and the filters they go through (docs/model.md#meta-neuron-generation).

1. Every (a, b) centre x (c, d) centre is a candidate; its support is the number of points in both clusters.
   One with fewer than ``min_support`` points (default 1: a combination no trained neuron had) is dropped.
2. Each remaining candidate is simulated on the sine stimulus and constant currents
   (:mod:`mdn_snntorch.dynamics`): degenerate ones (diverging, silent, runaway) are dropped.
3. The paper's accuracy criterion, when an ``accuracy(neuron) -> float`` is given: it is called once per
   remaining candidate (a fraction in [0, 1]: the candidate's accuracy, frozen, on held-out data of the
   source task, never its test split); one below ``min_accuracy`` times the best candidate's is dropped.
4. The rest, in order of accuracy (of support without step 3), are kept unless their response distance
   to an already kept neuron is below ``duplicate_distance`` (relative): a near-duplicate.

Every candidate's record says what happened to it (``status`` ``"kept"`` with its ``name``, or
``"dropped"`` with the ``reason``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from mdn_snntorch import dynamics
from mdn_snntorch.discovery.clustering import Clustering
from mdn_snntorch.meta_neurons import MetaNeuron, MetaNeuronLibrary
from mdn_snntorch.neurons import factory

DUPLICATE_DISTANCE = 0.1
MIN_SUPPORT = 1
MIN_ACCURACY = 0.95
#: steps of the sine and constant-current simulations
STEPS = 150

Accuracy = Callable[[MetaNeuron], float]


def _candidates(ab: Clustering, cd: Clustering) -> list[dict[str, Any]]:
    """Every (a, b) x (c, d) centre with its support, best supported first."""
    records = []
    for i, (a, b) in enumerate(ab.centres):
        for j, (c, d) in enumerate(cd.centres):
            support = int(((ab.labels == i) & (cd.labels == j)).sum())
            theta = [float(a), float(b), float(c), float(d)]
            records.append({"id": f"ab{i}-cd{j}", "ab_centre": i, "cd_centre": j, "theta": theta, "support": support})
    records.sort(key=lambda r: -r["support"])
    return records


def _candidate(record: dict[str, Any]) -> MetaNeuron:
    return MetaNeuron(record["id"], 2, tuple(record["theta"]))


def _filter_dynamics(records, min_support: int, steps: int) -> dict[str, dynamics.Characterisation]:
    """Steps 1-2: drop thin and degenerate candidates; the characterisation of each survivor, by id."""
    chars = {}
    for record in records:
        if record["support"] < min_support:
            record.update(status="dropped", reason=f"support {record['support']} < min_support {min_support}")
            continue
        char = dynamics.characterise(_candidate(record), steps)
        record["sine_rate"] = char.sine_rate
        if char.problem:
            record.update(status="dropped", reason=f"degenerate: {char.problem}")
            continue
        chars[record["id"]] = char
    return chars


def _filter_accuracy(order: list[dict[str, Any]], accuracy: Accuracy, min_accuracy: float) -> list[dict[str, Any]]:
    """Step 3: score every survivor once; the ones that reach the bar, most accurate first."""
    for record in order:
        value = accuracy(_candidate(record))
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and 0 <= value <= 1):
            raise ValueError(f"accuracy({record['id']}) returned {value!r}; it must be a fraction in [0, 1]")
        record["accuracy"] = float(value)
    best = max(r["accuracy"] for r in order)
    for record in order:
        if record["accuracy"] < min_accuracy * best:
            record.update(
                status="dropped",
                reason=f"accuracy {100 * record['accuracy']:.2f} % < {min_accuracy:g} x the best {100 * best:.2f} %",
            )
    return sorted((r for r in order if "status" not in r), key=lambda r: -r["accuracy"])


def _meta_neuron(record: dict[str, Any], name: str) -> MetaNeuron:
    return MetaNeuron(
        name,
        2,
        tuple(record["theta"]),
        description=f"generated: (a, b) centre {record['ab_centre']}, (c, d) centre {record['cd_centre']}, "
        f"support {record['support']} neurons",
        provenance={"candidate": record["id"], "support": record["support"], "accuracy": record.get("accuracy")},
    )


def select_candidates(
    ab: Clustering,
    cd: Clustering,
    prefix: str,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    steps: int = STEPS,
    *,
    min_support: int = MIN_SUPPORT,
    accuracy: Accuracy | None = None,
    min_accuracy: float = MIN_ACCURACY,
) -> tuple[list[MetaNeuron], list[dict[str, Any]], dict[str, dynamics.Characterisation]]:
    """Steps 1-4 of the module docstring on the centres of two clusterings; kept neurons are named
    ``<prefix>-1``, ``<prefix>-2``, ... Returns (kept neurons, a record per candidate, characterisations of
    the kept, by name)."""
    records = _candidates(ab, cd)
    chars = _filter_dynamics(records, min_support, steps)
    order = [r for r in records if r["id"] in chars]
    if accuracy is not None and order:
        order = _filter_accuracy(order, accuracy, min_accuracy)
    kept: list[MetaNeuron] = []
    kept_chars: dict[str, dynamics.Characterisation] = {}
    n_bins = steps // dynamics.RATE_BIN
    for record in order:
        char = chars[record["id"]]
        distances = {name: dynamics.response_distance(char.response, c.response, n_bins) for name, c in kept_chars.items()}
        closest = min(distances, key=distances.get) if distances else None
        if closest is not None and distances[closest] < duplicate_distance:
            record.update(
                status="dropped",
                reason=f"near-duplicate of {closest} (response distance {distances[closest]:.3f} < {duplicate_distance})",
            )
            continue
        neuron = _meta_neuron(record, f"{prefix}-{len(kept) + 1}")
        record.update(status="kept", name=neuron.name)
        kept.append(neuron)
        kept_chars[neuron.name] = dynamics.Characterisation(neuron, char.sine, char.constant, char.response, None)
    return kept, records, kept_chars


def check_names(neurons: Sequence[MetaNeuron]) -> None:
    """Each generated name must resolve to its own neuron (:func:`factory.lookup`): none may shadow a preset."""
    library = MetaNeuronLibrary(list(neurons))
    for neuron in neurons:
        factory.lookup(neuron.name, [library])
