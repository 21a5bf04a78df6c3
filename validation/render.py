"""Rendering a validation run: ``report.md``, the self-contained ``report.html`` (one
:class:`~mdn_snntorch.pipeline.report.Report`) with their PNG figures, and ``metrics.json``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdn_snntorch.pipeline.checkpoint import write_json
from mdn_snntorch.pipeline.report import Report
from validation import figures, stimuli
from validation.continuous import DtStudy
from validation.run import Outcome


def write(out_dir: Path, result: dict, outcome: Outcome) -> None:
    """Write the report of ``outcome`` and its summary ``result`` (the ``metrics.json`` document) into ``out_dir``."""
    rep = Report("MDN validation: snnTorch against Brian2")
    _overview(rep, result, outcome)
    _rules(rep, result["rules"])
    _neuron_replay(rep, out_dir, result["comparisons"], outcome)
    for kind in dict.fromkeys(outcome.pop.kind):
        _neuron_figures(rep, out_dir, kind, outcome)
    _alignment(rep, result["alignment"])
    _dt_study(rep, out_dir, outcome)
    if outcome.network is not None:
        _network(rep, out_dir, result["network"], outcome)
    rep.heading("Timings")
    rep.table(["task", "seconds"], [[k, f"{v:.2f}"] for k, v in result["timings_s"].items()])
    rep.write(out_dir)
    write_json(out_dir / "metrics.json", result)


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _overview(rep: Report, result: dict, outcome: Outcome) -> None:
    settings = outcome.settings
    rep.paragraph(
        f"Overall: **{_verdict(result['passed'])}**. {outcome.pop.size} neurons ({settings.per_type} per type, over the "
        f"stimulus families {', '.join(stimuli.FAMILIES)}), {settings.steps} steps of dt = 1; Brian2 targets: "
        f"{', '.join(settings.targets)}."
    )
    rep.table(["check", "result", "detail"], [[c["name"], _verdict(c["passed"]), c["detail"]] for c in result["checks"]])


def _rules(rep: Report, rules: dict) -> None:
    rep.heading("Tolerance rules")
    rep.paragraph(
        "Exact window: the steps before the first spike difference and before the stability horizon (the first step "
        "where the reference's eps = U - I + 1/4 exceeds 1/dt^2 and the Euler map loses its stable point). "
        "Free window: the steps after it. See docs/validation.md for the reasons behind each number."
    )
    rep.table(["rule", "requirement"], [[name, r["text"]] for name, r in rules.items()])


def _neuron_replay(rep: Report, out_dir: Path, comparisons: list[dict], outcome: Outcome) -> None:
    """One table per comparison (a row per neuron type), and the overview figure of max ΔV."""
    rep.heading("Neuron replay")
    header = ["type", "n", "identical", "past horizon", "diffs before horizon (graze)", "max ΔV", "max ΔU", "first diff",
              "max rate err", "vR mean", "vR max", "failed s/sp/r", "result"]  # fmt: skip
    for comp in comparisons:
        rep.heading(f"{comp['candidate']} vs {comp['reference']} ({comp['rule']} rule): {_verdict(comp['passed'])}", 3)
        rep.table(header, [_type_row(kind, s) for kind, s in comp["by_type"].items()])
    overview = [
        (f"{c.candidate} vs {c.reference}", kind, s["max_dv"])
        for c, comp in zip(outcome.comparisons, comparisons)
        for kind, s in comp["by_type"].items()
    ]
    limits = {c.rule.name: c.rule.state_atol for c in outcome.comparisons}
    rep.figure(
        figures.agreement_overview(out_dir / "agreement.png", overview, limits),
        "max ΔV over the exact window, per comparison and neuron type",
    )


def _type_row(kind: str, s: dict) -> list:
    return [
        kind, s["neurons"], f"{s['identical_fraction']:.1%}", s["past_horizon"],
        f"{s['grazes']} (max {s['max_graze']:.0e})" if s["grazes"] else "0", f"{s['max_dv']:.1e}",
        f"{s['max_du']:.1e}", s["first_divergence"], f"{s['max_rate_error']:.4f}", f"{s['van_rossum_mean']:.3f}",
        f"{s['van_rossum_max']:.2f}", f"{s['failed_state']}/{s['failed_spikes']}/{s['failed_rate']}", _verdict(s["passed"]),
    ]  # fmt: skip


def _neuron_figures(rep: Report, out_dir: Path, kind: str, outcome: Outcome) -> None:
    """The traces of the type's sine neuron in both simulators, and rasters of a few neurons per stimulus family."""
    pop, settings, brian2, snntorch64 = outcome.pop, outcome.settings, outcome.reference, outcome.snntorch64
    window = min(settings.trace_window, pop.steps)
    rep.heading(kind, 3)
    j = pop.first(kind, "sine")
    params = f"theta = ({', '.join(f'{t:.4g}' for t in pop.theta[j])})" if pop.order[j] == 2 else f"g = {pop.decay[j]:g}"
    path = figures.neuron_traces(
        out_dir / f"traces_{_slug(kind)}.png", f"{kind}, {params}: sine (snnTorch float64 solid, Brian2 dashed)",
        pop.currents[:window, j], {"v": brian2.v[:window, j], "u": brian2.u[:window, j]},
        {"v": snntorch64.v[:window, j], "u": snntorch64.u[:window, j]},
    )  # fmt: skip
    rep.figure(path, f"{kind}: input, V, U and attractor under the sine, both simulators, and their difference")
    cols = np.concatenate(
        [np.flatnonzero((pop.kind == kind) & (pop.stimulus == f))[: settings.raster_per_family] for f in stimuli.FAMILIES]
    )
    path = figures.rasters(
        out_dir / f"raster_{_slug(kind)}.png", f"{kind}: spikes of {len(cols)} neurons (Brian2 | snnTorch float64)",
        brian2.spikes[:window, cols], snntorch64.spikes[:window, cols], pop.stimulus[cols],
    )  # fmt: skip
    rep.figure(path, f"{kind}: rasters side by side")


def _alignment(rep: Report, a: dict) -> None:
    rep.heading("Recording alignment")
    rep.paragraph(
        f"StateMonitor(when='after_resets') records the post-reset state of step k, as the snnTorch traces do: max difference "
        f"{a['after_resets_vs_snntorch_max_diff']:.1e}. The default when='start' records the state before step k, i.e. one step "
        f"behind (bitwise: {a['start_is_after_resets_one_step_behind']}); read against the snnTorch traces it is off by up to "
        f"{a['start_vs_snntorch_max_diff']:.2g}."
    )


def _dt_study(rep: Report, out_dir: Path, outcome: Outcome) -> None:
    """Euler at several steps and the ODE reference: rates under the sine, f-I errors, and the f-I figure."""
    study, pop = outcome.study, outcome.pop
    rep.heading("dt = 1 against the ODE")
    rep.paragraph(_dt_study_text(study))
    schemes, rows = study.schemes(), []
    for k, kind in enumerate(study.types):
        for scheme in schemes:
            mean, worst = study.fi_error(scheme)
            rows.append([
                kind, scheme, f"{study.sine_rate[scheme][k]:.3f}", f"{study.sine_occupancy[scheme][k]:.3f}",
                f"{mean[k]:.3f}", f"{worst[k]:.3f}",
            ])  # fmt: skip
    rep.table(["type", "scheme", "sine rate", "sine occupancy", "f-I mean Δrate vs ODE", "f-I max Δrate"], rows)
    if study.types:
        fi = {}  # snnTorch's own f-I points over the same duration as the study (same start, same current)
        for kind in study.types if pop.steps >= study.steps else []:
            cols = np.flatnonzero((pop.kind == kind) & (pop.stimulus == "f-I"))
            fi[kind] = (pop.currents[0, cols], outcome.snntorch64.spikes[: study.steps, cols].mean(axis=0))
        rep.figure(
            figures.fi_curves(out_dir / "fi_curves.png", study, fi),
            "f-I curves of every scheme and the ODE, and of snnTorch at dt = 1",
        )


def _dt_study_text(study: DtStudy) -> str:
    unresolved = study.unresolved_types()
    return (
        f"Euler at step h (h = 1 is the paper's model; h = 1/n is what substeps=n integrates) against the continuous-time "
        f"reference {study.reference} (checked against {study.reference_check}: max difference per type "
        + ", ".join(f"{t} {d:.3f}" for t, d in zip(study.types, study.reference_spread()))
        + f", resolved when <= {study.reference_tolerance():.3f}"
        + (f"; not resolved, so no ODE verdict: {', '.join(unresolved)}" if unresolved else "")
        + "); "
        f"{study.steps} time units, {len(study.levels)} constant currents. Rates are spikes per unit time; the occupancy "
        "(fraction of unit steps with a spike) is what MDN(substeps=n) outputs, at most 1."
    )


def _network(rep: Report, out_dir: Path, net: dict, outcome: Outcome) -> None:
    """Accuracy and agreement with Brian2 of every simulator, and the figure of the output counts."""
    rep.heading("Network replay")
    rep.paragraph(
        f"Checkpoint {net['checkpoint']}, data {net['data']} (test split, first {net['samples']} samples), "
        f"Brian2 target {net['target']}."
    )
    rows = [["brian2", f"{net['accuracy']['brian2']:.2%}", "-", "-", "-"]]
    for name, ag in net["agreement"].items():
        rows.append([
            name, f"{net['accuracy'][name]:.2%}", f"{ag['same_prediction']:.2%}", f"{ag['identical_counts']:.2%}",
            f"{ag['mean_abs_count_diff']:.4f}",
        ])  # fmt: skip
    rep.table(["simulator", "accuracy", "same prediction as Brian2", "identical output counts", "mean Δcount"], rows)
    counts = outcome.network.counts
    others = {k: v for k, v in counts.items() if k != "brian2"}
    rep.figure(
        figures.network_counts(out_dir / "network_counts.png", counts["brian2"], others),
        "output spike counts, Brian2 vs snnTorch",
    )
