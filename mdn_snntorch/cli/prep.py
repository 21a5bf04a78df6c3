"""``mdn prep DATASET``: the converters of :mod:`data_prep`, one subcommand per data set."""

from data_prep.cli import configure, main

__all__ = ["configure", "main"]
