"""Continuing a training run: which checkpoint it continues from, which settings may change on the way,
and what the optimiser and the metrics get back (docs/training.md#mdn-train)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mdn_snntorch.pipeline.checkpoint import latest_checkpoint, newest_loadable
from mdn_snntorch.pipeline.config import TrainConfig


@dataclass
class ResumePoint:
    """Where a run starts: after ``start_epoch`` finished epochs, with their metrics and checkpoint."""

    start_epoch: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: Path | None = None


def checkpoint_to_resume(config: TrainConfig, out: Path | None) -> dict | None:
    """The newest loadable checkpoint in ``out`` when ``config.resume``, else None; a run directory that holds
    checkpoints but is not resumed is refused (its files would be overwritten)."""
    existing = latest_checkpoint(out) if out else None
    if not config.resume:
        if existing is not None:
            raise ValueError(
                f"run directory {out} already holds {existing.name}; pass --resume to continue it or choose another --out"
            )
        return None
    if out is None:
        raise ValueError("resume needs the run directory (--out) of the run to continue")
    return newest_loadable(out) if existing is not None else None


def merge_resumed(config: TrainConfig, checkpoint: dict) -> TrainConfig:
    """``config``, checked against the checkpoint's: only :attr:`TrainConfig.RESUMABLE_CHANGES` may differ."""
    saved = checkpoint["config"]
    for name, value in config.to_dict().items():
        if name in TrainConfig.RESUMABLE_CHANGES:
            continue
        if name == "data":
            same = Path(value).resolve() == Path(saved[name]).resolve()
        else:
            same = value == TrainConfig.saved_value(saved, name)
        if not same:
            changeable = ", ".join(TrainConfig.RESUMABLE_CHANGES[:-3])
            raise ValueError(
                f"cannot resume {checkpoint['path']} with {name}={value!r}: the run was started with "
                f"{name}={TrainConfig.saved_value(saved, name)!r} (a resumed run may change only {changeable})"
            )
    return config


def restore(optimizer: torch.optim.Optimizer, checkpoint: dict, config: TrainConfig) -> ResumePoint:
    """The checkpoint's optimiser state (with this config's learning rates) and its finished epochs."""
    optimizer.load_state_dict(checkpoint["optimizer"])
    for group in optimizer.param_groups:  # learning rates may change on resume
        group["base_lr"] = config.lr if group["name"] == "weights" else config.eta_theta
    return ResumePoint(int(checkpoint["epoch"]), list(checkpoint["metrics"]), Path(checkpoint["path"]))
