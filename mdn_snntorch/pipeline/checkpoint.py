"""Training checkpoints and run files, written atomically (temporary file in the same folder, then rename).

A run directory holds ``epoch_NNN.pt`` (one per finished epoch), ``metrics.json`` and ``metrics.csv``.
A checkpoint is a ``torch.save`` dict: ``format``, ``version``, ``epoch`` (finished epochs), ``model_spec``
(:meth:`ThreeLayerSNN.spec`), ``model`` (state dict), ``theta`` (the learnable dynamic parameters by name),
``optimizer`` (state dict), ``config``, ``metrics`` (one dict per epoch) and ``data_meta``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.pipeline.model import ThreeLayerSNN

CHECKPOINT_FORMAT = "mdn-train-checkpoint"
CHECKPOINT_VERSION = 1
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def write_json(path: str | os.PathLike, doc: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(doc, f, indent=2))


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV with the union of their keys as header (first-seen order)."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]

    def write(f):
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)

    return atomic_write(path, write)


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(run_dir) / f"epoch_{epoch:03d}.pt"


def save_checkpoint(run_dir: str | os.PathLike, epoch: int, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as the checkpoint of ``epoch`` finished epochs (atomic)."""
    doc = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": epoch, **payload}
    buf = io.BytesIO()
    torch.save(doc, buf)
    return atomic_write(checkpoint_path(run_dir, epoch), lambda f: f.write(buf.getvalue()), binary=True)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the most finished epochs in ``run_dir``, or None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return max(found)[1] if found else None


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict of a file, or of the latest checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"run directory {path} holds no checkpoint (epoch_NNN.pt)")
        path = found
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    doc = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a training checkpoint (field 'format' must be {CHECKPOINT_FORMAT!r})")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {doc.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})")
    doc["path"] = str(path)
    return doc


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A trained run, ready to use.

    ``path`` is a checkpoint file or a run directory (its latest checkpoint). Returns the checkpoint
    dict with ``model`` replaced by a :class:`ThreeLayerSNN` holding the trained weights and theta
    (in eval mode, on ``map_location``), plus ``config``, ``metrics``, ``epoch``, ``theta``,
    ``optimizer`` (state dict), ``data_meta`` and ``path``.
    """
    doc = read_checkpoint(path, map_location)
    model = ThreeLayerSNN.from_spec(doc["model_spec"])
    model.load_state_dict(doc["model"])
    doc["model"] = model.to(map_location).eval()
    return doc
