"""Training checkpoints and run files, written atomically (temporary file in the same folder, then rename).

A run directory holds ``epoch_NNN.pt`` (one per finished epoch), ``metrics.json`` and ``metrics.csv``.
A checkpoint is a ``torch.save`` dict: ``format``, ``version``, ``epoch`` (finished epochs), ``model_spec``
(:meth:`ThreeLayerSNN.spec`), ``model`` (state dict), ``theta`` (the learnable dynamic parameters by name),
``optimizer`` (state dict), ``config``, ``metrics`` (one dict per epoch), ``data_meta`` and ``data_identity``
(the spike file's size and modification time when the run started).

Loading is ``torch.load(weights_only=True)``: a file holding anything but tensors and plain data is refused,
and so is an empty, truncated or otherwise unreadable one, with a :class:`CheckpointError` naming the file.
:func:`newest_loadable` falls back from an unloadable newest checkpoint to the newest loadable one, with a
warning. CSV cells that are text and start with ``= + - @`` (or a tab or carriage return) get a leading ``'``,
so a spreadsheet never runs them as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.printable import printable

CHECKPOINT_FORMAT = "mdn-train-checkpoint"
CHECKPOINT_VERSION = 1
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")
#: first characters that make a spreadsheet read a cell as a formula
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (empty, truncated, not a checkpoint, or holding code): names the file."""


def csv_cell(value: Any) -> Any:
    """``value`` safe for a spreadsheet: text starting with ``= + - @``, tab or CR gets a leading ``'``
    (numbers stay numbers)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_json(path: str | os.PathLike, doc: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(doc, f, indent=2))


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV with the union of their keys as header (first-seen order)."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]

    def write(f):
        w = csv.DictWriter(f, fieldnames=[csv_cell(k) for k in fields])
        w.writeheader()
        w.writerows({csv_cell(k): csv_cell(v) for k, v in row.items()} for row in rows)

    return atomic_write(path, write)


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(run_dir) / f"epoch_{epoch:03d}.pt"


def save_checkpoint(run_dir: str | os.PathLike, epoch: int, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as the checkpoint of ``epoch`` finished epochs (atomic)."""
    doc = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": epoch, **payload}
    buf = io.BytesIO()
    torch.save(doc, buf)
    return atomic_write(checkpoint_path(run_dir, epoch), lambda f: f.write(buf.getvalue()), binary=True)


def checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints of ``run_dir``, most finished epochs first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the most finished epochs in ``run_dir``, or None."""
    found = checkpoints(run_dir)
    return found[0] if found else None


def newest_loadable(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest checkpoint of ``run_dir`` that loads (None when it holds none). An unloadable newer one is
    skipped with a warning on stderr; when none loads, the newest one's :class:`CheckpointError` is raised."""
    found = checkpoints(run_dir)
    first_error: CheckpointError | None = None
    for path in found:
        try:
            doc = read_checkpoint(path, map_location)
        except CheckpointError as err:
            first_error = first_error or err
            continue
        if first_error is not None:
            print(printable(f"mdn: warning: {first_error}; using {path.name} (epoch {doc['epoch']}) instead"), file=sys.stderr)
        return doc
    if first_error is not None:
        raise first_error
    return None


def _load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` with every failure as a :class:`CheckpointError` naming ``path``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run the file's code: never pass that on
        raise CheckpointError(
            f"{path}: refused, it holds objects other than tensors and plain data (not a checkpoint of this package)"
        ) from None
    except (EOFError, RuntimeError, ValueError, zipfile.BadZipFile, KeyError, TypeError, AttributeError) as err:
        reason = str(err).split(". ")[0].splitlines()[0][:150] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint (empty, truncated or damaged: {reason})") from None


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict of a file, or of the newest loadable checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        doc = newest_loadable(path, map_location)
        if doc is None:
            raise FileNotFoundError(f"run directory {path} holds no checkpoint (epoch_NNN.pt)")
        return doc
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    doc = _load(path, map_location)
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint (field 'format' must be {CHECKPOINT_FORMAT!r})")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {doc.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})"
        )
    missing = [k for k in ("epoch", "model_spec", "model", "optimizer", "config", "metrics") if k not in doc]
    if missing:
        raise CheckpointError(f"{path}: not a complete checkpoint (lacks {', '.join(missing)})")
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
    try:
        model = ThreeLayerSNN.from_spec(doc["model_spec"])
        model.load_state_dict(doc["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{doc['path']}: its model does not load ({str(err).splitlines()[0]})") from None
    doc["model"] = model.to(map_location).eval()
    return doc
