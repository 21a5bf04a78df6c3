"""Summarising a validation run: per-type figures of every comparison, the judged checks and the
``metrics.json`` document (:func:`document`); :func:`summary_lines` prints its verdicts."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import numpy as np
import torch

from validation.population import Population
from validation.rules import RULES
from validation.run import Comparison, Outcome

if TYPE_CHECKING:
    from validation.network import ReplayResult

#: network replay: float64 must give the same prediction as Brian2 on this fraction of samples
#: (docs/validation.md#network-replay)
NETWORK_AGREEMENT_FLOAT64 = 0.99
#: float32 rounds the Linear outputs and the state (~1e-7), which flips a hidden spike where a potential
#: grazes the threshold; a prediction moves only when that changes the order of the two top output counts
NETWORK_AGREEMENT_FLOAT32 = 0.95


def document(outcome: Outcome) -> dict:
    """The ``metrics.json`` document: the verdict, every check, the settings, the rules, per-type figures of
    every comparison, the alignment check, the dt study, the network replay, timings and the environment."""
    network = _network(outcome.network)
    checks = [_comparison_check(c) for c in outcome.comparisons]
    checks.append(_alignment_check(outcome.alignment))
    checks += _network_checks(network)
    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "settings": _settings(outcome),
        "rules": _rules(),
        "comparisons": [
            {
                "candidate": c.candidate,
                "reference": c.reference,
                "rule": c.rule.name,
                "passed": c.passed,
                "by_type": _by_type(c, outcome.pop),
            }
            for c in outcome.comparisons
        ],
        "alignment": outcome.alignment,
        "dt_study": outcome.study.to_json(),
        "network": network,
        "timings_s": outcome.timings,
        "environment": _environment(),
    }


def summary_lines(result: dict) -> list[str]:
    """One ``PASS``/``FAIL`` line per check, then the overall verdict."""
    checks = result["checks"]
    lines = [f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}" for c in checks]
    lines.append(f"{'PASS' if result['passed'] else 'FAIL'}: {sum(c['passed'] for c in checks)}/{len(checks)} checks passed")
    return lines


def _by_type(c: Comparison, pop: Population) -> dict[str, dict]:
    """Per neuron type: the figures of the comparison table."""
    m, j = c.metrics, c.judgement
    out = {}
    for kind in dict.fromkeys(pop.kind):
        s = pop.kind == kind
        out[kind] = {
            "neurons": int(s.sum()),
            "identical_fraction": float(m.identical[s].mean()),
            "past_horizon": int((m.horizon[s] < m.steps).sum()),
            "grazes": int(((m.first_divergence < m.horizon) & s).sum()),
            "max_graze": float(np.where((m.first_divergence < m.horizon) & s, m.graze, 0.0).max()),
            "max_dv": float(m.max_dv[s].max()),
            "max_du": float(m.max_du[s].max()),
            "first_divergence": int(m.first_divergence[s].min()),
            "max_rate_error": float(m.rate_error[s].max()),
            "mean_rate_error": float(m.rate_error[s].mean()),
            "max_free_rate_error": float(m.free_rate_error[s].max()),
            "van_rossum_mean": float(m.van_rossum[s].mean()),
            "van_rossum_max": float(m.van_rossum[s].max()),
            "failed_state": int(j.state_failed[s].sum()),
            "failed_spikes": int(j.spikes_failed[s].sum()),
            "failed_rate": int(j.rate_failed[s].sum()),
            "passed": bool(j.ok[s].all()),
        }
    return out


def _comparison_check(c: Comparison) -> dict:
    m, j = c.metrics, c.judgement
    detail = (
        f"{len(m.horizon)} neurons, identical spike trains {m.identical.mean():.1%}, "
        f"max dV {m.max_dv.max():.1e}, max dU {m.max_du.max():.1e}, "
        f"failing neurons: state {int(j.state_failed.sum())}, spikes {int(j.spikes_failed.sum())}, "
        f"rate {int(j.rate_failed.sum())}"
    )
    return {"name": f"{c.label} ({c.rule.name} rule)", "passed": c.passed, "detail": detail}


def _alignment_check(alignment: dict) -> dict:
    return {
        "name": "recording alignment (StateMonitor when='after_resets')",
        "passed": alignment["passed"],
        "detail": (
            f"after_resets vs snnTorch max diff {alignment['after_resets_vs_snntorch_max_diff']:.1e}; "
            f"'start' is one step behind: {alignment['start_is_after_resets_one_step_behind']} "
            f"(max diff to snnTorch {alignment['start_vs_snntorch_max_diff']:.2g})"
        ),
    }


def _network(network: ReplayResult | None) -> dict | None:
    """The network replay's section: accuracy of every simulator and agreement with Brian2."""
    if network is None:
        return None
    return {
        "checkpoint": network.checkpoint,
        "data": network.data,
        "target": network.target,
        "samples": int(len(network.truth)),
        "accuracy": {name: network.accuracy(name) for name in network.counts},
        "agreement": {name: network.agreement(name) for name in network.counts if name != "brian2"},
    }


def _network_checks(net: dict | None) -> list[dict]:
    if net is None:
        return []
    checks = []
    for name, bar in (("snntorch-float64", NETWORK_AGREEMENT_FLOAT64), ("snntorch-float32", NETWORK_AGREEMENT_FLOAT32)):
        same = net["agreement"][name]["same_prediction"]
        checks.append(
            {
                "name": f"network replay: {name} predicts as Brian2",
                "passed": bool(same >= bar),
                "detail": f"same prediction on {same:.1%} of {net['samples']} samples (needs >= {bar:.0%})",
            }
        )
    return checks


def _settings(outcome: Outcome) -> dict:
    settings = outcome.settings
    return {
        "neurons": [n.to_dict() for n in outcome.neurons],
        "per_type": settings.per_type,
        "steps": settings.steps,
        "population": outcome.pop.size,
        "targets": list(settings.targets),
        "seed": outcome.seed,
        "dt": 1.0,
    }


def _rules() -> dict:
    return {
        name: {
            "state_atol": r.state_atol,
            "graze_atol": r.graze_atol,
            "rate_sigmas": r.rate_sigmas,
            "use_horizon": r.use_horizon,
            "text": r.describe(),
        }
        for name, r in RULES.items()
    }


def _environment() -> dict:
    import brian2

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "brian2": brian2.__version__,
    }
