"""The files of a training run: ``epoch_NNN.pt`` per finished epoch and ``metrics.json`` / ``metrics.csv``
describing the run, each written to a temporary file and renamed (docs/robustness.md).

``metrics.json`` holds the status (``running``, ``finished``, ``stopped`` with the error, ``interrupted``),
the config, what the run keeps of the data file's meta data (:func:`~mdn_snntorch.pipeline.run_data.meta_record`),
every epoch's metrics and their ``summary`` (final, best, mean of the last ten: :mod:`~mdn_snntorch.pipeline.series`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mdn_snntorch import signals
from mdn_snntorch.atomic import WriteError
from mdn_snntorch.pipeline.checkpoint import save_checkpoint, write_csv, write_json
from mdn_snntorch.pipeline.config import TrainConfig
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.pipeline.run_data import RunData, meta_record
from mdn_snntorch.pipeline.series import summarise


def theta_means(model: torch.nn.Module) -> dict[str, float]:
    """Mean of each learnable theta per layer, ``{"hidden.theta_a_mean": ...}`` (empty for frozen neurons)."""
    return {f"{name}_mean": float(p.detach().mean()) for name, p in model.named_parameters() if _is_theta(name)}


def _is_theta(name: str) -> bool:
    return name.split(".")[-1].startswith("theta_")


@dataclass
class RunFiles:
    """Writes the files of a run in ``out`` (nothing when ``out`` is None or off the main process)."""

    out: Path | None
    is_main: bool
    data: RunData

    @property
    def active(self) -> bool:
        return self.out is not None and self.is_main

    def save_epoch(
        self, epoch: int, config: TrainConfig, model: ThreeLayerSNN, spec: dict, optimizer, metrics: list, last: Path | None
    ) -> Path:
        """The checkpoint of finished epoch ``epoch`` (0-based) and the run files that describe it, never one
        without the other; returns the checkpoint. A refused write stops the run naming the last good one."""
        signals.check()  # a Ctrl-C swallowed during the epoch stops before writing
        try:
            with signals.deferred():
                checkpoint = save_checkpoint(self.out, epoch + 1, self._payload(config, model, spec, optimizer, metrics))
                self.write(config, metrics, status="finished" if epoch + 1 == config.epochs else "running")
                return checkpoint
        except WriteError as err:
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written"
            out = WriteError(f"{err}; training stopped after epoch {epoch + 1}, {kept}")
            out.errno = err.errno
            raise out from err

    def _payload(self, config: TrainConfig, model: ThreeLayerSNN, spec: dict, optimizer, metrics: list) -> dict[str, Any]:
        return {
            "model_spec": spec,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "theta": {name: p.detach().cpu().clone() for name, p in model.named_parameters() if _is_theta(name)},
            "optimizer": optimizer.state_dict(),
            "config": config.to_dict(),
            "metrics": metrics,
            "data_meta": meta_record(self.data.meta),
            "data_identity": self.data.identity.to_dict(),
        }

    def write(self, config: TrainConfig, metrics: list, status: str, error: str | None = None) -> None:
        """``metrics.json`` and ``metrics.csv`` with ``status`` (and ``error``)."""
        if not self.active:
            return
        doc = {
            "status": status,
            "epochs_done": len(metrics),
            "config": config.to_dict(),
            "data_meta": meta_record(self.data.meta),
            "data_identity": self.data.identity.to_dict(),
            "epochs": metrics,
            "summary": summarise(metrics),
        }
        if error:
            doc["error"] = error
        write_json(self.out / "metrics.json", doc)
        write_csv(self.out / "metrics.csv", metrics)
