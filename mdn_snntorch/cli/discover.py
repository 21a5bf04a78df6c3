"""``mdn discover``: generate meta neurons from learnable theta (MeanShift + KMeans, filtered by dynamics)."""

from __future__ import annotations

import argparse

from mdn_snntorch.cli.options import add_training_arguments, float_in, int_in, settings_from_args
from mdn_snntorch.pipeline.discover import BANDWIDTH_QUANTILE, DUPLICATE_DISTANCE, dataset_name, discover


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="source HDF5 spike file (spatial: MNIST, temporal: TIDigits)")
    parser.add_argument("--out", required=True, help="library JSON to write (figures go beside it)")
    parser.add_argument(
        "--seeds",
        type=int_in("seeds", 1, 1000),
        default=1,
        help="number of training seeds (0..N-1) whose theta are pooled (default 1)",
    )
    parser.add_argument("--runs", help="folder for the training runs (default <out>_runs)")
    parser.add_argument(
        "--quantile",
        type=float_in("quantile", 0, 1),
        default=BANDWIDTH_QUANTILE,
        help="estimate_bandwidth quantile (default 0.3)",
    )
    parser.add_argument(
        "--duplicate-distance",
        type=float_in("duplicate_distance", 0, 1, low_open=False),
        default=DUPLICATE_DISTANCE,
        help="response distance (relative, 0..1) below which a candidate is a near-duplicate (default 0.1)",
    )
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="skip the figures")
    add_training_arguments(parser)


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, dataset=dataset_name(args.data))
    library = discover(
        args.data, args.out, seeds=args.seeds, runs_dir=args.runs, quantile=args.quantile,
        duplicate_distance=args.duplicate_distance, figures=args.figures, **settings,
    )  # fmt: skip
    clusters = library.provenance["clustering"]
    print(f"(a, b) centres: {clusters['ab']['num_centres']}, (c, d) centres: {clusters['cd']['num_centres']}")
    for record in library.provenance["selection"]["candidates"]:
        theta = ", ".join(f"{t:.4g}" for t in record["theta"])
        outcome = record.get("name") or record.get("reason")
        print(f"  {record['id']:<9} ({theta})  support {record['support']:>4}  {record['status']}: {outcome}")
    print(f"{len(library.neurons)} meta neuron(s) written to {args.out}")
    return 0
