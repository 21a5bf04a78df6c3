"""Command-line options shared by ``mdn train``, ``discover``, ``evaluate``: the training settings.

Precedence: explicit options beat ``--protocol`` (a whole training regime: the paper's text or the paper
authors' script, :mod:`mdn_snntorch.pipeline.protocols`), which beats ``--recipe`` (a data set's training
recipe, e.g. the paper's Table 1 row), which beats :class:`~mdn_snntorch.pipeline.trainer.TrainConfig`'s
defaults.

Every numeric option is parsed by a type that checks its range (:func:`int_in`, :func:`float_in`,
:func:`device`): a bad value is one line and exit code 2 before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from mdn_snntorch.pipeline import recipes
from mdn_snntorch.pipeline.protocols import PROTOCOLS, protocol_settings
from mdn_snntorch.pipeline.trainer import TrainConfig

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
SETTINGS = (
    "epochs", "batch_size", "lr", "lr_theta", "lr_decay", "lr_step", "resample", "hidden", "dt", "substeps",
    "device", "bf16", "eval_batch_size", "num_workers", "prefetch", "threads", "progress", "theta_per_row", "detach_reset",
    "analog", "lr_epoch_offset", "resample_test", "validation_fraction",
)  # fmt: skip


#: the largest seed (torch and numpy take 0..2**32 - 1 everywhere)
MAX_SEED = 2**32 - 1
#: the largest learning rate accepted (Adam's step must stay a finite float32)
MAX_LR = 1e6
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


def int_in(name: str, low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            span = f"in {low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{name}={value} is out of range (an integer {span})")
        return value

    return parse


def float_in(name: str, low: float, high: float, low_open: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number in ``(low, high]`` (``[low, high]`` with ``low_open=False``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{name}={text} is out of range (a finite number in {span})")
        return value

    return parse


def device(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"device {text!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return text


def seed(text: str) -> int:
    """An argparse type: a seed in ``0..2**32 - 1``."""
    return int_in("seed", 0, MAX_SEED)(text)


def add_training_arguments(parser: argparse.ArgumentParser, protocol: bool = True) -> None:
    """The training settings (defaults resolved later by :func:`settings_from_args`); ``protocol=False`` leaves
    out ``--protocol`` (for a command that defines its own)."""
    g = parser.add_argument_group("training settings (explicit values beat --recipe, which beats the defaults)")
    g.add_argument("--recipe", help=f"training recipe of a data set (paper Table 1): {', '.join(recipes.RECIPES)}")
    if protocol:
        g.add_argument(
        "--protocol", choices=PROTOCOLS,
        help="a whole training regime over the recipe: paper (its text, Table 1; the default) or authors (the paper "
        "authors' script: 80 epochs, StepLR(50, 0.1) stepped at each epoch's start, fresh input spikes in training and "
        "evaluation, the undetached reset); explicit options still beat it",
    )  # fmt: skip
    g.add_argument("--preset", dest="recipe", help=argparse.SUPPRESS)  # another name for --recipe
    g.add_argument("--epochs", type=int_in("epochs", 1, 100_000), help=f"epochs (default {_DEFAULTS['epochs']})")
    g.add_argument(
        "--batch-size", type=int_in("batch_size", 1, 10**7), help=f"global batch size (default {_DEFAULTS['batch_size']})"
    )
    g.add_argument(
        "--lr", type=float_in("lr", 0, MAX_LR), help=f"eta_W, learning rate of the weights (default {_DEFAULTS['lr']})"
    )
    g.add_argument(
        "--lr-theta", type=float_in("lr_theta", 0, MAX_LR), help="eta_D, learning rate of learnable theta (default: --lr)"
    )
    g.add_argument(
        "--lr-decay", type=float_in("lr_decay", 0, 1),
        help=f"decay factor gamma: lr(e) = lr * gamma^floor(e / lr_step) (default {_DEFAULTS['lr_decay']})",
    )  # fmt: skip
    g.add_argument(
        "--lr-step", type=int_in("lr_step", 1),
        help="epochs per decay step (default 1: decay every epoch; 50 with --lr-decay 0.1 is StepLR(50, 0.1))",
    )  # fmt: skip
    g.add_argument(
        "--lr-epoch-offset", type=int_in("lr_epoch_offset", 0, 100_000),
        help="lr(e) = lr * gamma^floor((e + offset) / lr_step); 1 is a scheduler stepped at the start of each epoch (default 0)",
    )  # fmt: skip
    g.add_argument(
        "--validation-fraction", type=float_in("validation_fraction", 0, 0.99, low_open=False),
        help="hold this share of the training split out of training and score it every epoch (default 0: none)",
    )  # fmt: skip
    g.add_argument(
        "--resample-test", action="store_true", default=None,
        help="draw fresh Bernoulli spikes from the file's intensities for every evaluation (image data sets)",
    )  # fmt: skip
    g.add_argument(
        "--resample", action="store_true", default=None,
        help="draw new Bernoulli spikes from the file's intensities for every training batch of every epoch (image data sets)",
    )  # fmt: skip
    g.add_argument(
        "--analog", action="store_true", default=None,
        help="feed the file's per-step analog values instead of its spikes (audio data sets; the authors' input)",
    )  # fmt: skip
    g.add_argument("--hidden", type=int_in("hidden", 1, 10**6), help=f"hidden neurons (default {_DEFAULTS['hidden']})")
    g.add_argument("--dt", type=float_in("dt", 0, 100), help="MDN time step (default 1)")
    g.add_argument("--substeps", type=int_in("substeps", 1, 10_000), help="MDN Euler sub-steps per time step (default 1)")
    g.add_argument(
        "--theta-per-row", action="store_true", default=None,
        help="learnable theta of shape [batch size, neurons], one per batch row (the authors' code; neuron learnable only)",
    )  # fmt: skip
    g.add_argument(
        "--undetached-reset", dest="detach_reset", action="store_false", default=None,
        help="let the spike's surrogate gradient flow through the reset (the authors' code)",
    )  # fmt: skip
    g.add_argument("--device", type=device, help="auto (GPU when there is one), cpu, cuda, cuda:N (default auto)")
    g.add_argument(
        "--bf16", action="store_true", default=None, help="bf16 autocast for the Linear layers (dynamics stay float32)"
    )
    g.add_argument(
        "--eval-batch-size", type=int_in("eval_batch_size", 1, 10**7),
        help=f"batch size of the test pass (default {_DEFAULTS['eval_batch_size']})",
    )  # fmt: skip
    g.add_argument("--num-workers", type=int_in("num_workers", 0, 1024), help="data-loader worker processes (default 0)")
    g.add_argument(
        "--prefetch", type=int_in("prefetch", 0, 1024),
        help=f"batches read ahead in a background thread without worker processes (default {_DEFAULTS['prefetch']}; 0: none)",
    )  # fmt: skip
    g.add_argument(
        "--threads",
        type=int_in("threads", 1, 4096),
        help="CPU threads (default: the usable cores other processes leave free; see docs/performance.md#threads)",
    )
    g.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar or per-epoch lines"
    )


def settings_from_args(args: argparse.Namespace, dataset: str | None = None, data: str | None = None) -> dict[str, Any]:
    """Training settings from the command line: ``--recipe`` (or, when ``dataset`` is given and no
    recipe, that data set's recipe if it has one), then ``--protocol`` for the spike file ``data`` (when given;
    :func:`protocol_settings`), then the explicit options."""
    settings: dict[str, Any] = {}
    recipe = getattr(args, "recipe", None) or (recipes.canonical(dataset) if dataset else None)
    if recipe:
        settings.update(recipes.settings(recipe))
        settings["recipe"] = recipes.canonical(recipe)
    protocol = getattr(args, "protocol", None)
    if protocol and data is not None:
        settings.update(protocol_settings(protocol, data, getattr(args, "neuron", None)))
    for name in SETTINGS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    return settings
