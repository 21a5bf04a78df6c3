"""The data of a training run: the spike file's splits, a validation split carved from the training split,
the loaders that stream them, and the checks that the model fits the file and that a resumed run reads the
file it started on (docs/training.md, docs/robustness.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mdn_snntorch.pipeline.config import TrainConfig

if TYPE_CHECKING:
    from mdn_snntorch.pipeline.loader import SpikeLoader
    from mdn_snntorch.pipeline.model import ThreeLayerSNN
    from mdn_snntorch.spikefile import FileIdentity, SpikeDataset

#: the random streams of one seed: the validation permutation, and the fresh evaluation spikes of each split
VALIDATION_PERMUTATION, TEST_DRAWS, VALIDATION_DRAWS = 1, 1, 2


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` sample indices of a split of ``n``, each sorted: ``round(fraction n)`` samples
    (at least 1, at most ``n - 1``) drawn by a permutation seeded by ``(seed, 1)``, the same for every run
    with that seed whatever else it changes."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {fraction!r}")
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 training samples, the file has {n}")
    held = min(max(round(fraction * n), 1), n - 1)
    order = np.random.default_rng([seed, VALIDATION_PERMUTATION]).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


@dataclass
class RunData:
    """The training split of a run's spike file, what it implies for the network, and its validation split."""

    path: str
    train_set: SpikeDataset
    n_outputs: int
    codes: torch.Tensor | None
    train_indices: np.ndarray | None = None
    val_indices: np.ndarray | None = None

    @property
    def meta(self) -> dict[str, Any]:
        return self.train_set.meta

    @property
    def identity(self):
        return self.train_set.identity


def load(config: TrainConfig, device: torch.device) -> RunData:
    """The training split of ``config.data`` (its meta data and class codes kept on ``device``), the number of
    outputs it needs and, with ``validation_fraction``, the indices of the samples trained on and held out."""
    from mdn_snntorch.spikefile import SpikeDataset

    train_set = SpikeDataset(config.data, "train")
    codes = train_set.codes.to(device) if train_set.codes is not None else None
    n_outputs = int(train_set.codes.shape[1]) if train_set.codes is not None else int(train_set.num_classes)
    data = RunData(config.data, train_set, n_outputs, codes)
    if config.validation_fraction > 0:
        data.train_indices, data.val_indices = validation_split(len(train_set), config.validation_fraction, config.seed)
    return data


def check_fit(model: ThreeLayerSNN, data: RunData, whose: str) -> None:
    """The network's input and output sizes must be those of the data file."""
    n_inputs = data.train_set.n_inputs
    if model.n_in != n_inputs:
        raise ValueError(
            f"input size mismatch: data file {data.path} has {n_inputs} inputs per time step, but {whose} expects "
            f"{model.n_in} (n_in)"
        )
    if model.n_out != data.n_outputs:
        raise ValueError(
            f"output size mismatch: data file {data.path} needs {data.n_outputs} outputs, but {whose} has {model.n_out} (n_out)"
        )


@dataclass
class Loaders:
    """The shuffled training loader, the test loader and, with a validation split, the validation loader."""

    train: SpikeLoader
    test: SpikeLoader
    val: SpikeLoader | None

    def evaluations(self, epoch: int) -> dict[str, SpikeLoader]:
        """The evaluation loaders by metric prefix (``test``, ``val``), set to epoch ``epoch``'s fresh spikes."""
        chosen = {"test": self.test, **({"val": self.val} if self.val is not None else {})}
        for loader in chosen.values():
            loader.set_epoch(epoch)
        return chosen


def loaders(data: RunData, config: TrainConfig, theta_rows: int | None) -> Loaders:
    """The loaders of a run. Training: batch order and spike draws from ``(seed, epoch)``. Evaluation: in file
    order, in batches that are whole multiples of ``theta_rows`` when theta is per row; with ``resample_test``
    every evaluation draws fresh spikes from its own random stream of ``(seed, epoch)``."""
    from mdn_snntorch.pipeline.loader import SpikeLoader
    from mdn_snntorch.spikefile import SpikeDataset

    train = SpikeLoader(
        data.train_set, config.batch_size, shuffle=True, seed=config.seed, num_workers=config.num_workers,
        prefetch=config.prefetch, resample=config.resample, analog=config.analog, indices=data.train_indices,
    )  # fmt: skip
    eval_batch = config.eval_batch_size
    if theta_rows:  # whole multiples of the theta rows; the last batch is padded (EpochLoop.forward_rows)
        eval_batch = max(1, eval_batch // theta_rows) * theta_rows

    def evaluation(dataset: SpikeDataset, indices: np.ndarray | None, stream: int) -> SpikeLoader:
        return SpikeLoader(
            dataset, eval_batch, seed=config.seed, num_workers=config.num_workers, prefetch=config.prefetch,
            resample=config.resample_test, analog=config.analog, indices=indices, stream=stream,
        )  # fmt: skip

    test_set = SpikeDataset(config.data, "test")
    data.train_set.check_same(test_set.identity)  # both splits from the same file
    val = evaluation(data.train_set, data.val_indices, VALIDATION_DRAWS) if data.val_indices is not None else None
    return Loaders(train, evaluation(test_set, None, TEST_DRAWS), val)


def meta_record(meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint and ``metrics.json`` keep of the file's meta data: the format's own keys (values
    longer than 4096 characters as JSON replaced by their length) and ``digest``, the SHA-256 of the whole
    meta data as canonical JSON, which a resumed run compares."""
    from mdn_snntorch.spikefile import META_KEYS

    plain = _plain(meta)
    record: dict[str, Any] = {}
    for key in META_KEYS:
        if key in plain:
            text = json.dumps(plain[key], sort_keys=True, default=str)
            record[key] = plain[key] if len(text) <= 4096 else f"({len(text)} characters, left out)"
    whole = json.dumps(plain, sort_keys=True, default=str).encode()
    record["digest"] = hashlib.sha256(whole).hexdigest()
    return record


def data_changes(saved_meta: dict[str, Any], saved_identity: dict[str, Any] | None, now: FileIdentity) -> list[str]:
    """What differs between the data file a run recorded (its ``data_meta`` and ``data_identity``) and the file
    as it is ``now``, in words; empty when it is the same file. A record with a ``digest``
    (:func:`meta_record`) is compared record to record; an older one held the whole meta data. The digest of
    all root attributes, where the run recorded it, catches a change to an attribute outside the record."""
    from mdn_snntorch.spikefile import FileIdentity

    saved_identity = saved_identity or {}
    now_meta = meta_record(now.meta) if "digest" in saved_meta else _plain(now.meta)
    size, mtime_ns = int(saved_identity.get("size", now.size)), int(saved_identity.get("mtime_ns", now.mtime_ns))
    then = FileIdentity(size, mtime_ns, saved_meta, saved_identity.get("meta_digest"))
    return then.changes(FileIdentity(now.size, now.mtime_ns, now_meta, now.meta_digest))


def check_resumed(checkpoint: dict, data: RunData) -> None:
    """The data file must be the one the run started on (:func:`data_changes` of the checkpoint's record)."""
    changes = data_changes(checkpoint.get("data_meta") or meta_record(data.meta), checkpoint.get("data_identity"), data.identity)
    if changes:
        raise ValueError(
            f"cannot resume {checkpoint['path']}: the data file {data.path} is not the one the run was trained on "
            f"({'; '.join(changes)}); start a new run (another --out) on it"
        )


def _plain(value: Any) -> Any:
    """Meta data as plain Python (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
