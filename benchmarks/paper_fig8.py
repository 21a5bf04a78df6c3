"""Fig. 8 of the paper computed from its own Table 3, for both readings of N-MNIST's kind.

    python benchmarks/paper_fig8.py [--out docs/results/paper]

The paper calls N-MNIST both temporal (its Fig. 8 grouping, as the package's recipes do) and hybrid. This
computes Eq. 7 per task from the published means (docs/results/paper/table3.json) with the public
discovery functions, then the spatial and temporal columns twice: N-MNIST among the temporal tasks, and
N-MNIST left out. It checks the paper's own reading of Fig. 8 against each (2-FS weaker than 2-RS on
temporal tasks, the temporal neurons stronger on temporal than on spatial tasks, the 1st-order neuron the
reverse) and writes ``fig8_groupings.json``, ``fig8_groupings.md`` and one PNG per grouping. Nothing is trained.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.discovery import capability, capability_figure, group_capability

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "paper"
SPATIAL = ("mnist", "fashion-mnist", "nettalk", "cifar10")
TEMPORAL = ("tidigits", "timit")
#: the two readings of N-MNIST's kind
GROUPINGS = {"nmnist_temporal": "temporal", "nmnist_left_out": None}
#: the paper's sentences on Fig. 8 (section 4.8), as checks on the grouped capabilities
READING = {
    "2-FS has a weaker temporal capability than 2-RS": lambda g: g["2-FS"]["temporal"] < g["2-RS"]["temporal"],
    "2-FS has a stronger spatial capability than 2-RS": lambda g: g["2-FS"]["spatial"] > g["2-RS"]["spatial"],
    "2-SDS and 2-WDS: temporal above spatial": lambda g: all(g[n]["temporal"] > g[n]["spatial"] for n in ("2-SDS", "2-WDS")),
    "1st-order: spatial above temporal": lambda g: g["1st-order"]["spatial"] > g["1st-order"]["temporal"],
}


def paper_table(path: Path = RESULTS / "table3.json") -> dict[str, dict[str, float]]:
    """The paper's Table 3 means as ``{task: {neuron: accuracy}}``."""
    doc = json.loads(path.read_text())
    return {task: dict(zip(doc["neurons"], values, strict=True)) for task, values in doc["mean"].items()}


def groupings(table: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Per grouping: the kinds, the spatial / temporal capability per neuron, and the paper's reading checked."""
    caps = capability(table)
    out = {}
    for name, nmnist in GROUPINGS.items():
        kinds = dict.fromkeys(SPATIAL, "spatial") | dict.fromkeys(TEMPORAL, "temporal") | {"nmnist": nmnist}
        groups = group_capability(caps, kinds)
        out[name] = {
            "kinds": kinds,
            "group_capability": {n: {k: round(v, 4) for k, v in g.items()} for n, g in groups.items()},
            "paper_reading_holds": {sentence: bool(check(groups)) for sentence, check in READING.items()},
        }
    return out


def markdown(result: dict[str, dict]) -> str:
    neurons = list(next(iter(result.values()))["group_capability"])
    lines = [
        "# Fig. 8 from the paper's Table 3, N-MNIST temporal or left out",
        "",
        "Eq. 7 per task over the five neuron types (population std), then the mean over the tasks of each kind.",
        "Spatial: " + ", ".join(SPATIAL) + ". Temporal: " + ", ".join(TEMPORAL) + " (+ nmnist in the first grouping).",
        "",
        "| neuron | " + " | ".join(f"{g} spatial | {g} temporal" for g in result) + " |",
        "|---|" + "---|---|" * len(result),
    ]
    for n in neurons:
        cells = [
            f"{result[g]['group_capability'][n]['spatial']:+.4f} | {result[g]['group_capability'][n]['temporal']:+.4f}"
            for g in result
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "| the paper's reading of Fig. 8 | " + " | ".join(result) + " |", "|---|" + "---|" * len(result)]
    for sentence in READING:
        lines.append(
            f"| {sentence} | "
            + " | ".join("holds" if result[g]["paper_reading_holds"][sentence] else "does not hold" for g in result)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the files (default docs/results/paper)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = groupings(paper_table())
    atomic_write(args.out / "fig8_groupings.json", json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    atomic_write(args.out / "fig8_groupings.md", text)
    for name, doc in result.items():
        capability_figure(doc["group_capability"], args.out / f"fig8_{name}.png")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
