"""``run_validation``, the entry point of ``mdn validate``: run the comparisons (:mod:`validation.run`), judge
and summarise them by the rules of :mod:`validation.rules` (:mod:`validation.summary`) and write the report
(:mod:`validation.render`).

Outputs in ``out_dir``: ``report.md``, ``report.html`` (self-contained), the PNG figures and
``metrics.json``; every file is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mdn_snntorch import meta_neurons
from mdn_snntorch.meta_neurons import MetaNeuron
from validation import render, run, summary


def run_validation(
    neurons: Sequence[str | MetaNeuron] = meta_neurons.PAPER_NEURONS,
    out_dir: str | Path = "validation_out",
    *,
    quick: bool = False,
    settings: run.Settings | None = None,
    checkpoint: str | Path | None = None,
    data: str | Path | None = None,
    samples: int = 200,
    seed: int = 0,
    random_theta: bool = True,
    extra_candidates: Sequence[run.Candidate] = (),
    cache_root: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Validate ``neurons`` (preset names or MetaNeurons) and, with ``checkpoint`` and ``data``, a trained
    network; write the report into ``out_dir`` and return the metrics (``result["passed"]``).

    ``quick`` uses :data:`~validation.run.QUICK` sizes (a few seconds, numpy target only), else
    :data:`~validation.run.FULL`; ``settings`` overrides both. ``extra_candidates`` are checked against
    Brian2 besides snnTorch (e.g. a deliberately wrong implementation).
    """
    settings = settings or (run.QUICK if quick else run.FULL)
    neuron_list = run.check_arguments(neurons, settings, checkpoint, data, random_theta)
    replay_inputs = None
    if checkpoint is not None:
        from validation.network import load_inputs

        replay_inputs = load_inputs(checkpoint, data, samples)  # fail before the long part
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = run.default_candidates() + list(extra_candidates)
    tasks = run.Progress(run.task_count(settings, candidates, network=replay_inputs is not None), enabled=progress)
    outcome = run.run_comparisons(
        neuron_list, settings, candidates, tasks, seed=seed, random_theta=random_theta, replay_inputs=replay_inputs,
        cache_root=cache_root,
    )  # fmt: skip
    result = summary.document(outcome)
    tasks.task("report", lambda: render.write(out_dir, result, outcome))
    tasks.close()
    return result
