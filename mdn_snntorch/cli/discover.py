"""``mdn discover``: generate meta neurons from learnable theta of the built-in network
(:func:`mdn_snntorch.pipeline.discover.discover`, a client of :mod:`mdn_snntorch.discovery`)."""

from __future__ import annotations

import argparse

from mdn_snntorch.cli.options import add_training_arguments, float_in, int_in, settings_from_args
from mdn_snntorch.discovery import SPACES
from mdn_snntorch.discovery.selection import DUPLICATE_DISTANCE, MIN_ACCURACY, MIN_SUPPORT
from mdn_snntorch.pipeline.discover import ACCURACY_EPOCHS, PROTOCOLS, VALIDATION_FRACTION, dataset_name, discover
from mdn_snntorch.printable import printable


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
        "--protocol",
        choices=list(PROTOCOLS),
        default="paper",
        help="paper: the paper's text (per-neuron theta, detached reset, standardised clustering, quantile 0.3); "
        "authors: their published code (theta per batch row, undetached reset, raw theta, quantile 0.5)",
    )
    parser.add_argument(
        "--quantile", type=float_in("quantile", 0, 1), help="estimate_bandwidth quantile (default: the protocol's)"
    )
    parser.add_argument("--space", choices=SPACES, help="cluster standardised or raw theta (default: the protocol's)")
    parser.add_argument(
        "--ab-clusters", type=int_in("ab_clusters", 1, 100), help="force the number of (a, b) centres (default: MeanShift's)"
    )
    parser.add_argument(
        "--cd-clusters", type=int_in("cd_clusters", 1, 100), help="force the number of (c, d) centres (default: MeanShift's)"
    )
    parser.add_argument(
        "--min-support",
        type=int_in("min_support", 0),
        default=MIN_SUPPORT,
        help=f"drop candidates that fewer trained neurons had (default {MIN_SUPPORT}: none that no neuron had)",
    )
    parser.add_argument(
        "--accuracy-epochs",
        type=int_in("accuracy_epochs", 0, 1000),
        default=ACCURACY_EPOCHS,
        help=f"epochs of each candidate on the source task for the accuracy criterion (0: skip; default {ACCURACY_EPOCHS})",
    )
    parser.add_argument(
        "--min-accuracy",
        type=float_in("min_accuracy", 0, 1, low_open=False),
        default=MIN_ACCURACY,
        help=f"keep candidates reaching this fraction of the best candidate's accuracy (default {MIN_ACCURACY})",
    )
    parser.add_argument(
        "--duplicate-distance",
        type=float_in("duplicate_distance", 0, 1, low_open=False),
        default=DUPLICATE_DISTANCE,
        help="response distance (relative, 0..1) below which a candidate is a near-duplicate (default 0.1)",
    )
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="skip the figures")
    add_training_arguments(parser, protocol=False)
    for action in parser._actions:  # the training option, here the accuracy criterion's split (not the source runs')
        if action.dest == "validation_fraction":
            action.help = (
                "fraction of the training split held out (chosen by the seed) on which the accuracy criterion scores "
                f"candidates; the source runs train on the whole split and the test split is never used "
                f"(default {VALIDATION_FRACTION})"
            )


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, dataset=dataset_name(args.data))
    fraction = settings.pop("validation_fraction", VALIDATION_FRACTION)
    library = discover(
        args.data, args.out, seeds=args.seeds, runs_dir=args.runs, protocol=args.protocol, quantile=args.quantile,
        space=args.space, ab_clusters=args.ab_clusters, cd_clusters=args.cd_clusters, min_support=args.min_support,
        accuracy_epochs=args.accuracy_epochs, min_accuracy=args.min_accuracy, validation_fraction=fraction,
        duplicate_distance=args.duplicate_distance, figures=args.figures, **settings,
    )  # fmt: skip
    clusters = library.provenance["clustering"]
    print(f"(a, b) centres: {clusters['ab']['num_centres']}, (c, d) centres: {clusters['cd']['num_centres']}")
    for record in library.provenance["selection"]["candidates"]:
        theta = ", ".join(f"{t:.4g}" for t in record["theta"])
        outcome = record.get("name") or record.get("reason")
        acc = f"  validation acc. {100 * record['accuracy']:.2f} %" if "accuracy" in record else ""
        print(printable(f"  {record['id']:<9} ({theta})  support {record['support']:>4}{acc}  {record['status']}: {outcome}"))
    print(printable(f"{len(library.neurons)} meta neuron(s) written to {args.out}"))
    return 0
