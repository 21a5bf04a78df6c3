"""The N-MNIST converter as it was before ``mdn prep tonic``, kept unchanged as the reference its output is
compared with byte for byte (tests/data_prep/test_prep_nmnist.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tonic.datasets import NMNIST
from tonic.transforms import ToFrame

from data_prep.common import PrepError, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta, pack_spikes

DEFAULT_TIME_STEPS = 20
ROOT_DEFAULT = "data/raw"


class ExtractedNMNIST(NMNIST):
    """tonic's N-MNIST reader for an extracted copy: tonic's own check also wants the zip archives."""

    def _check_exists(self) -> bool:
        return any(Path(self.location_on_system, self.folder_name).rglob("*.bin"))


ExtractedNMNIST.__name__ = "NMNIST"  # tonic keeps a data set under save_to/<class name>


def open_split(root: Path, train: bool, download: bool, time_steps: int) -> NMNIST:
    """tonic's N-MNIST split with the ToFrame transform; :class:`PrepError` if it is not there."""
    folder = root / "NMNIST" / ("Train" if train else "Test")
    if not download and not any(folder.rglob("*.bin")):
        raise PrepError(
            f"no N-MNIST recordings under {folder}. Expected tonic's layout: {root}/NMNIST/{{Train,Test}}/<digit>/<id>.bin "
            f"(5-byte events). Pass --download (download=True) to fetch it, or see docs/data.md."
        )
    frames = ToFrame(sensor_size=NMNIST.sensor_size, n_time_bins=time_steps)
    cls = NMNIST if download else ExtractedNMNIST
    try:
        return cls(str(root), train=train, transform=frames)
    except Exception as err:  # download / extraction failures
        raise PrepError(f"cannot open N-MNIST under {root} ({type(err).__name__}: {err})") from err


def frames_of(ds: NMNIST, start: int, stop: int, time_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary frames ``[b, T, 2312]`` and labels of recordings ``start:stop``."""
    x = np.zeros((stop - start, time_steps, int(np.prod(NMNIST.sensor_size))), dtype=bool)
    y = np.empty(stop - start, dtype=np.int64)
    for i in range(start, stop):
        try:
            frames, y[i - start] = ds[i]
        except Exception as err:
            raise PrepError(f"{ds.data[i]}: cannot read N-MNIST events ({type(err).__name__}: {err})") from err
        x[i - start] = frames.reshape(time_steps, -1) > 0
    return x, y


def convert(
    out: str | os.PathLike,
    *,
    root: str | os.PathLike = ROOT_DEFAULT,
    time_steps: int = DEFAULT_TIME_STEPS,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
) -> Path:
    """Write the N-MNIST spike file ``out`` (60,000 train / 10,000 test recordings, T x 2312)."""
    time_steps = positive_int("time_steps", time_steps)
    root = Path(root)
    splits = {"train": open_split(root, True, download, time_steps), "test": open_split(root, False, download, time_steps)}
    w, h, p = NMNIST.sensor_size
    meta = make_meta(
        dataset="nmnist",
        encoding="event-frames",
        encoding_params={"slicing": "tonic ToFrame n_time_bins", "spike": "event count > 0", "layout": "[polarity, y, x]"},
        time_steps=time_steps,
        input_shape=(p, h, w),
        class_names=NMNIST.classes,
        seed=seed,
        source=f"tonic.datasets.NMNIST(save_to={str(root)!r}, download={download})",
    )
    with SpikeFileWriter(out, meta, force=force) as writer:
        for split, ds in splits.items():
            load = lambda a, b, ds=ds: frames_of(ds, a, b, time_steps)  # noqa: E731
            write_split(writer, split, len(ds), load, lambda x, rng: pack_spikes(x), seed=seed)
    return writer.out
