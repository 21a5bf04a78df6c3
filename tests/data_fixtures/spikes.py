"""Small spike files whose content names each sample: row t of sample i holds the bits of i * T + t."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdn_snntorch.spikefile import SpikeFileWriter, make_meta, pack_spikes


def id_spikes(ids: np.ndarray, time_steps: int, n_inputs: int) -> np.ndarray:
    """bool ``[n, T, D]``: the D-bit binary (most significant first) of ``id * T + t``."""
    values = np.asarray(ids)[:, None] * time_steps + np.arange(time_steps)
    return ((values[..., None] >> np.arange(n_inputs - 1, -1, -1)) & 1).astype(bool)


def sample_ids(x: np.ndarray, time_steps: int) -> np.ndarray:
    """Inverse of :func:`id_spikes` on a batch ``x [T, B, D]``: the sample ids of the batch."""
    row0 = np.asarray(x)[0].astype(np.int64)
    return (row0 * (1 << np.arange(row0.shape[1] - 1, -1, -1))).sum(axis=1) // time_steps


def make_spike_file(path: Path, *, n_train: int, n_test: int = 7, time_steps: int = 3, n_inputs: int = 21,
                    num_classes: int = 5, targets: bool = False) -> Path:  # fmt: skip
    """A spike file of id patterns; labels ``id % num_classes``, or 4-bit targets ``id % 16`` with all 16 codes."""
    meta = make_meta(
        dataset="ids", encoding="binary-id", encoding_params={"row": "bits of id * T + t"}, time_steps=time_steps,
        input_shape=(n_inputs,), class_names=[f"c{i}" for i in range(4 if targets else num_classes)], seed=0,
        source="tests", target_kind="targets" if targets else "labels",
    )  # fmt: skip
    codes = ((np.arange(16)[:, None] >> np.arange(3, -1, -1)) & 1).astype(np.uint8)
    with SpikeFileWriter(path, meta, codes=codes if targets else None) as w:
        for split, n in (("train", n_train), ("test", n_test)):
            ids = np.arange(n)
            w.create_split(split, n, 4 if targets else None)
            y = codes[ids % 16] if targets else ids % num_classes
            w.write(split, pack_spikes(id_spikes(ids, time_steps, n_inputs)), y)
    return path
