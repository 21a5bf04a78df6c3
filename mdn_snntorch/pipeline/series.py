"""Summaries of a run's per-epoch series: the final value, the best with its epoch, the mean of the last ten.

The paper reports one number per run without saying which epoch it is; the paper authors' script prints the
best test score and the mean of the last ten. A run records all three for every score it has
(``summary`` in ``metrics.json``), and tables say which one they show (docs/training.md#mdn-evaluate-paper-table-3-eq-7-figs-6-8).
Only ``final`` and the validation series are free of choosing on the test split: ``best`` of a test series
is the authors' figure, kept to compare with theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: the per-epoch scores summarised (those a run has)
SCORES = ("test_acc", "test_cosine", "test_cosine_first_of_5", "val_acc", "val_cosine")
#: the epochs the last-epochs mean covers
LAST = 10
#: the summaries, in table order
STATISTICS = ("final", "best", "last10")


def summarise(metrics: Sequence[dict[str, Any]], last: int = LAST) -> dict[str, dict[str, float | int]]:
    """``{score: {"final", "best", "best_epoch", "last10", "last10_epochs"}}`` for every score of :data:`SCORES`
    that the rows record; ``last10`` is the mean over the last ``min(last, epochs)`` rows and ``best_epoch``
    the 1-based first epoch that reached the best."""
    out: dict[str, dict[str, float | int]] = {}
    for score in SCORES:
        rows = [row for row in metrics if row.get(score) is not None]
        if not rows:
            continue
        values = [float(row[score]) for row in rows]
        tail = values[-last:]
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        out[score] = {
            "final": values[-1],
            "best": values[best],
            "best_epoch": int(rows[best]["epoch"]),
            "last10": sum(tail) / len(tail),
            "last10_epochs": len(tail),
        }
    return out
