"""The settings of a training run and its result: :class:`TrainConfig`, :class:`TrainResult`, the
learning-rate schedule :func:`lr_at` (docs/training.md, docs/model.md#training-schedule)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdn_snntorch.neurons import factory
from mdn_snntorch.pipeline.prefetch import DEFAULT_DEPTH
from mdn_snntorch.pipeline.protocols import PROTOCOLS, protocol_settings

if TYPE_CHECKING:
    from mdn_snntorch.pipeline.model import ThreeLayerSNN

#: the largest seed, learning rate and thread count a config accepts
MAX_SEED = 2**32 - 1
MAX_LR = 1e6
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``neuron``/``output_neuron``: a preset name, ``"learnable"``,
    ``"1st-order"`` or a ``MetaNeuron.to_dict()`` (a library neuron).

    Options that reproduce the paper authors' published code (docs/model.md#the-authors-published-code):
    ``theta_per_row`` (learnable theta of shape ``[batch_size, N]``: one per row of the batch; incomplete
    training batches are skipped, the test set runs in padded batches of ``batch_size``),
    ``detach_reset=False`` (the spike's gradient flows through the reset), ``analog`` (the data file's
    per-step analog values instead of its spikes, for the audio tasks), ``resample_test`` (fresh input
    spikes for every evaluation, as ``resample`` draws them for every training epoch) and
    ``lr_epoch_offset`` (see :func:`lr_at`). ``protocol`` names the regime the settings came from
    (:meth:`from_protocol` applies one; :mod:`~mdn_snntorch.pipeline.protocols`).

    ``validation_fraction``: that share of the training split, drawn by a permutation seeded by ``seed``,
    is held out of training and scored after every epoch (``val_*`` metrics): the split to choose on."""

    data: str
    out: str | None = None
    neuron: str | dict = "2-FS"
    output_neuron: str | dict | None = None
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    lr_theta: float | None = None
    lr_decay: float = 0.9
    lr_step: int = 1
    resample: bool = False
    hidden: int = 500
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    dt: float = 1.0
    substeps: int = 1
    eval_batch_size: int = 1000
    num_workers: int = 0
    prefetch: int = DEFAULT_DEPTH
    threads: int | None = None
    progress: bool = True
    resume: bool = False
    recipe: str | None = None
    theta_per_row: bool = False
    detach_reset: bool = True
    analog: bool = False
    lr_epoch_offset: int = 0
    resample_test: bool = False
    validation_fraction: float = 0.0
    protocol: str = "paper"

    #: fields a resumed run may change (the rest must equal the checkpoint's)
    RESUMABLE_CHANGES = (
        "epochs", "lr", "lr_theta", "lr_decay", "lr_step", "lr_epoch_offset", "device", "bf16", "eval_batch_size",
        "num_workers", "prefetch", "threads", "progress", "out", "resume", "recipe",
    )  # fmt: skip
    #: earlier names of settings, as they may appear in saved runs
    RENAMED = {"preset": "recipe"}

    def __post_init__(self):
        ints = (
            "epochs", "batch_size", "hidden", "eval_batch_size", "substeps", "lr_step", "lr_epoch_offset", "num_workers",
            "prefetch",
        )  # fmt: skip
        for name in (*ints, "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"training setting {name}={value!r} must be an integer")
        for name in ("lr", "lr_theta", "lr_decay", "dt", "validation_fraction"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"training setting {name}={value!r} must be a number")
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "hidden": self.hidden >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "substeps": self.substeps >= 1,
            "lr": math.isfinite(self.lr) and 0 < self.lr <= MAX_LR,
            "lr_theta": self.lr_theta is None or (math.isfinite(self.lr_theta) and 0 < self.lr_theta <= MAX_LR),
            "lr_decay": 0 < self.lr_decay <= 1,
            "lr_step": self.lr_step >= 1,
            "lr_epoch_offset": self.lr_epoch_offset >= 0,
            "validation_fraction": 0 <= self.validation_fraction < 1,
            "protocol": self.protocol in PROTOCOLS,
            "dt": math.isfinite(self.dt) and self.dt > 0,
            "num_workers": self.num_workers >= 0,
            "prefetch": self.prefetch >= 0,
            "seed": 0 <= self.seed <= MAX_SEED,
            "threads": self.threads is None
            or (isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1),
            "device": isinstance(self.device, str) and bool(_DEVICE.match(self.device)),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"training setting {name}={getattr(self, name)!r} is out of range")
        for name in ("resample", "resample_test", "bf16", "progress", "resume", "theta_per_row", "detach_reset", "analog"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"training setting {name}={getattr(self, name)!r} must be true or false")
        if self.theta_per_row and self.neuron != factory.LEARNABLE:
            raise ValueError(f"theta_per_row needs neuron='learnable' (theta per batch row), not {self.neuron!r}")
        if self.analog and (self.resample or self.resample_test):
            raise ValueError("analog and resample exclude each other: analog input has no spikes to redraw")
        for name in ("neuron", "output_neuron"):
            spec = getattr(self, name)
            try:
                if isinstance(spec, str):
                    factory.lookup(spec)  # the one place names are resolved
                elif spec is not None:
                    factory.resolve(spec)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{name}: {err} (or a library neuron, `--library FILE`)") from None

    @classmethod
    def from_protocol(cls, protocol: str, data: str, **settings: Any) -> TrainConfig:
        """A config following ``protocol`` (:mod:`~mdn_snntorch.pipeline.protocols`: ``"paper"`` or
        ``"authors"``) on the spike file ``data``; ``settings`` (e.g. a recipe's, then explicit ones) beat it."""
        chosen = protocol_settings(protocol, data, settings.get("neuron", cls.neuron))
        return cls(data=data, **{**chosen, **settings})

    @property
    def eta_theta(self) -> float:
        return self.lr if self.lr_theta is None else self.lr_theta

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def saved_value(cls, saved: dict[str, Any], name: str) -> Any:
        """Setting ``name`` of a saved config; a setting newer than the save has its default value."""
        saved = {cls.RENAMED.get(k, k): v for k, v in saved.items()}
        if name in saved:
            return saved[name]
        return next((f.default for f in dataclasses.fields(cls) if f.name == name), None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {cls.RENAMED.get(k, k): v for k, v in d.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    """A finished (or resumed and finished) run: the trained model, its config, one metrics row per epoch."""

    model: ThreeLayerSNN
    config: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None
    checkpoint: Path | None = None

    @property
    def test_acc(self) -> float:
        """Test accuracy after the last epoch."""
        return self.metrics[-1]["test_acc"]

    @property
    def val_acc(self) -> float:
        """Validation accuracy after the last epoch (a run with ``validation_fraction > 0``)."""
        if "val_acc" not in self.metrics[-1]:
            raise ValueError("this run held out no validation split (validation_fraction=0)")
        return self.metrics[-1]["val_acc"]


def lr_at(base: float, decay: float, epoch: int, step: int = 1, offset: int = 0) -> float:
    """eta(e) = eta_0 * decay^floor((e + offset) / step) for the 0-based epoch e (``offset=1``: a PyTorch
    scheduler stepped at the start of every epoch, as in the paper authors' script)."""
    return base * decay ** ((epoch + offset) // step)
