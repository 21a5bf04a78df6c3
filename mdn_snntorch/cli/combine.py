"""``mdn combine``: one Table 3, capability and Fig. 8 from finished evaluations (nothing is trained)."""

from __future__ import annotations

import argparse

from mdn_snntorch.pipeline.evaluate import REPORTS, combine
from mdn_snntorch.printable import printable


def _source(text: str) -> str | tuple[str, str]:
    """``FOLDER`` or ``LABEL=FOLDER``."""
    label, sep, folder = text.partition("=")
    if not sep:
        return text
    if not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not FOLDER or LABEL=FOLDER")
    return label, folder


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", nargs="+", type=_source, metavar="[LABEL=]FOLDER",
        help="evaluation folders (mdn evaluate --out); LABEL renames a folder's one task",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="folder for table.md, results.json and the figures")
    parser.add_argument("--neurons", nargs="+", help="neuron types to keep (default: those every evaluation has)")
    parser.add_argument(
        "--report", choices=REPORTS,
        help="each run's value: final, best or last10 epochs (default: the one the evaluations used)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    doc = combine(args.results, args.out, args.neurons, args.report)
    print(printable(f"{len(doc['tasks'])} task(s) x {len(doc['neurons'])} neuron type(s) -> {args.out}/table.md"))
    for neuron, groups in doc["group_capability"].items():
        shown = ", ".join(f"{kind} {value:+.2f}" for kind, value in groups.items() if value is not None)
        print(printable(f"  {neuron:<14} {shown}"))
    return 0
