"""Command-line options shared by ``mdn train``, ``discover``, ``evaluate``: the training settings.

Precedence: explicit options beat ``--recipe`` (a data set's training recipe, e.g. the paper's
Table 1 row), which beats :class:`~mdn_snntorch.pipeline.trainer.TrainConfig`'s defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.trainer import TrainConfig

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
SETTINGS = (
    "epochs", "batch_size", "lr", "lr_theta", "lr_decay", "lr_step", "resample", "hidden", "dt", "substeps",
    "device", "bf16", "eval_batch_size", "num_workers", "threads", "progress",
)  # fmt: skip


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training settings (defaults resolved later by :func:`settings_from_args`)."""
    g = parser.add_argument_group("training settings (explicit values beat --recipe, which beats the defaults)")
    g.add_argument("--recipe", help=f"training recipe of a data set (paper Table 1): {', '.join(recipes.RECIPES)}")
    g.add_argument("--preset", dest="recipe", help=argparse.SUPPRESS)  # another name for --recipe
    g.add_argument("--epochs", type=int, help=f"epochs (default {_DEFAULTS['epochs']})")
    g.add_argument("--batch-size", type=int, help=f"global batch size (default {_DEFAULTS['batch_size']})")
    g.add_argument("--lr", type=float, help=f"eta_W, learning rate of the weights (default {_DEFAULTS['lr']})")
    g.add_argument("--lr-theta", type=float, help="eta_D, learning rate of learnable theta (default: --lr)")
    g.add_argument(
        "--lr-decay", type=float,
        help=f"decay factor gamma: lr(e) = lr * gamma^floor(e / lr_step) (default {_DEFAULTS['lr_decay']})",
    )  # fmt: skip
    g.add_argument(
        "--lr-step", type=int,
        help="epochs per decay step (default 1: decay every epoch; 50 with --lr-decay 0.1 is StepLR(50, 0.1))",
    )  # fmt: skip
    g.add_argument(
        "--resample", action="store_true", default=None,
        help="draw new Bernoulli spikes from the file's intensities for every training batch of every epoch (image data sets)",
    )  # fmt: skip
    g.add_argument("--hidden", type=int, help=f"hidden neurons (default {_DEFAULTS['hidden']})")
    g.add_argument("--dt", type=float, help="MDN time step (default 1)")
    g.add_argument("--substeps", type=int, help="MDN Euler sub-steps per time step (default 1)")
    g.add_argument("--device", help="auto (GPU when there is one), cpu, cuda, cuda:N (default auto)")
    g.add_argument(
        "--bf16", action="store_true", default=None, help="bf16 autocast for the Linear layers (dynamics stay float32)"
    )
    g.add_argument("--eval-batch-size", type=int, help=f"batch size of the test pass (default {_DEFAULTS['eval_batch_size']})")
    g.add_argument("--num-workers", type=int, help="data-loader worker processes (default 0)")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    g.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar or per-epoch lines"
    )


def settings_from_args(args: argparse.Namespace, dataset: str | None = None) -> dict[str, Any]:
    """Training settings from the command line: ``--recipe`` (or, when ``dataset`` is given and no
    recipe, that data set's recipe if it has one), then the explicit options."""
    settings: dict[str, Any] = {}
    recipe = getattr(args, "recipe", None) or (recipes.canonical(dataset) if dataset else None)
    if recipe:
        settings.update(recipes.settings(recipe))
        settings["recipe"] = recipes.canonical(recipe)
    for name in SETTINGS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    return settings
