"""Any tonic event dataset -> event-frame spikes (``mdn prep tonic --dataset NAME``).

The recordings are read by the dataset's own class in ``tonic.datasets`` (its reader, its labels, its
train / test split) and cut into T frames by ``tonic.transforms.ToFrame`` with the class's sensor size
(width, height, polarities): ``--time-steps T`` gives T bins of equal duration per recording
(``n_time_bins``); ``--time-window US`` gives frames of US microseconds from each recording's first event
(``time_window``), T being the number of windows the longest recording needs (found in a first pass over
the recordings; shorter ones end in empty frames). An input spikes in a step when its pixel (or channel)
had at least one event of that polarity there: ``S[t, p, y, x] = [count > 0]`` (deterministic, the seed
is unused); ``--count-levels L`` also keeps the counts, clipped to L, as the file's ``analog`` levels
(``analog / L`` with ``mdn train --analog``). Inputs are laid out ``[polarity, y, x]`` (``[polarity, x]``
for audio-like datasets without ``y``, such as SHD).

A dataset class without a ``train`` (or ``split``) argument is split here: a fixed random fifth of its
recordings (``--test-fraction``), independent of ``--seed``, is the test split. Without ``--download``
the dataset must be extracted under ``root`` in tonic's layout (``root/<ClassName>/...``); tonic's own
check, which also wants the downloaded archives, is replaced by "the dataset's folder holds files".
"""

from __future__ import annotations

import argparse
import inspect
import operator
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tonic.datasets
from tonic.transforms import ToFrame

from data_prep import cli
from data_prep.common import MAX_TIME_STEPS, PrepError, add_common, fraction_option, int_option, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta, pack_spikes

DEFAULT_TIME_STEPS = 20
ROOT_DEFAULT = "data/raw"
TEST_FRACTION = 0.2
#: the seed of the fixed train / test split of datasets tonic does not split
SPLIT_SEED = 0
#: what a dataset's files are, and tonic's layout of them under --root (the formats the tests write)
LAYOUTS: dict[str, tuple[str, str]] = {
    "NMNIST": ("N-MNIST recordings", "NMNIST/{Train,Test}/<digit>/<id>.bin (5-byte events)"),
    "POKERDVS": ("POKER-DVS recordings", "POKERDVS/{pips_train,pips_test}/<cl|he|di|sp>/<id>.npy (events [n, 4]: t, x, y, p)"),
    "DVSGesture": (
        "DVS Gesture recordings",
        "DVSGesture/{ibmGestureTrain,ibmGestureTest}/user<NN>_<lighting>/<class>.npy (events [n, 4]: x, y, p, t in ms)",
    ),
    "SHD": ("SHD files", "SHD/shd_{train,test}.h5 (spikes/times, spikes/units, labels, extra/keys)"),
    "SSC": ("SSC files", "SSC/ssc_{train,test}.h5 (spikes/times, spikes/units, labels, extra/keys)"),
}


def dataset_class(name: str) -> type:
    """The class ``tonic.datasets.<name>`` (case-insensitive); :class:`PrepError` listing tonic's datasets otherwise."""
    known = {n.lower(): n for n in tonic.datasets.__all__}
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    match = {k.replace("_", ""): v for k, v in known.items()}.get(key)
    if match is None:
        raise PrepError(f"unknown tonic dataset {name!r}; tonic {tonic.__version__} has {', '.join(tonic.datasets.__all__)}")
    return getattr(tonic.datasets, match)


class _Missing(PrepError):
    """The dataset's files are not under --root (raised where tonic would download them)."""


def _offline(cls: type) -> type:
    """``cls`` reading an extracted copy: the existence check asks for files in the dataset's folder (tonic's
    also wants the archives), and a download or copy of packaged data becomes :class:`_Missing`."""
    name = cls.__name__
    what, layout = LAYOUTS.get(name, (f"{name} files", f"{name}/... (the layout tonic.datasets.{name} reads)"))

    def folder(self) -> Path:
        return Path(self.location_on_system, self.folder_name)

    def check_exists(self) -> bool:
        return folder(self).is_dir() and any(p.is_file() for p in folder(self).rglob("*"))

    def missing(self, *args, **kwargs):
        root = Path(self.location_on_system).parent
        raise _Missing(
            f"no {what} under {folder(self)}. Expected tonic's layout: {root}/{layout}. "
            f"Pass --download (download=True) to fetch it, or see docs/data.md."
        )

    members = {"_check_exists": check_exists, "download": missing, "_copy_and_extract_local_data": missing}
    return type(name, (cls,), members)  # the same name: tonic keeps a dataset under save_to/<class name>


def open_splits(cls: type, root: Path, download: bool, test_fraction: float) -> dict[str, Any]:
    """The train and test splits of ``cls`` under ``root`` (tonic's split, or a fixed random one)."""
    params = inspect.signature(cls.__init__).parameters
    required = [n for n, p in params.items() if n not in ("self", "save_to") and p.default is inspect.Parameter.empty]
    if required:
        raise PrepError(f"tonic.datasets.{cls.__name__} needs the argument(s) {', '.join(required)}; mdn prep tonic "
                        "converts datasets of (events, class) recordings")  # fmt: skip
    reader = cls if download else _offline(cls)

    def make(**split: Any) -> Any:
        try:
            return reader(str(root), **split)
        except PrepError:
            raise
        except Exception as err:  # download, extraction or reading failures
            raise PrepError(f"cannot open tonic.datasets.{cls.__name__} under {root} ({type(err).__name__}: {err})") from err

    if "train" in params:
        return {"train": make(train=True), "test": make(train=False)}
    if "split" in params:
        return {"train": make(split="train"), "test": make(split="test")}
    whole = make()
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(whole))
    n_test = max(1, round(test_fraction * len(whole)))
    return {"train": _Part(whole, np.sort(perm[n_test:])), "test": _Part(whole, np.sort(perm[:n_test]))}


class _Part:
    """Recordings ``indices`` of a dataset."""

    def __init__(self, ds: Any, indices: np.ndarray):
        self.ds, self.indices = ds, indices
        self.classes = getattr(ds, "classes", None)
        self.data = [ds.data[i] for i in indices] if len(getattr(ds, "data", ())) == len(ds) else []

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.ds[int(self.indices[i])]


def class_names(ds: Any, labels_max: Callable[[], int]) -> list[str]:
    """The dataset's ``classes`` (a list, an array of bytes, or a dict name -> index), else ``0..max label``."""
    classes = getattr(ds, "classes", None)
    if isinstance(classes, dict):
        return [str(k) for k, _ in sorted(classes.items(), key=lambda kv: kv[1])]
    if classes is not None and len(classes):
        return [c.decode() if isinstance(c, bytes) else str(c) for c in list(classes)]
    return [str(k) for k in range(labels_max() + 1)]


def _where(ds: Any, split: str, i: int, name: str) -> str:
    data = getattr(ds, "data", None)
    item = data[i] if isinstance(data, list) and len(data) == len(ds) else None
    return str(item) if isinstance(item, (str, os.PathLike)) else f"{name} {split} recording {i}"


def recording(ds: Any, split: str, i: int, name: str) -> tuple[np.ndarray, int]:
    """Events (tonic's structured array) and integer label of recording ``i``; :class:`PrepError` naming it."""
    try:
        events, target = ds[i]
    except Exception as err:
        raise PrepError(f"{_where(ds, split, i, name)}: cannot read {name} events ({type(err).__name__}: {err})") from err
    try:
        return events, operator.index(target)  # ints and numpy integers
    except TypeError:
        raise PrepError(f"{name} yields targets such as {target!r}; mdn prep tonic converts (events, class) datasets") from None


def longest_steps(splits: dict[str, Any], window: float, name: str) -> int:
    """T for ``--time-window``: the windows the longest recording spans (a first pass over every recording)."""
    longest = 0.0
    for split, ds in splits.items():
        for i in range(len(ds)):
            t = recording(ds, split, i, name)[0]["t"]
            if len(t):
                longest = max(longest, float(t[-1] - t[0]))
    steps = int(longest // window) + 1
    if steps > MAX_TIME_STEPS:
        raise PrepError(f"--time-window {window:g} us gives {steps} time steps for the longest {name} recording "
                        f"({longest:.0f} us); at most {MAX_TIME_STEPS}: choose a longer window")  # fmt: skip
    return steps


def binner(sensor: tuple[int, int, int], time_steps: int, window: float | None) -> Callable[[np.ndarray], np.ndarray]:
    """Events -> event counts ``[T, D]`` (int) through ToFrame: T equal bins, or T windows from the first event."""
    n_inputs = int(np.prod(sensor))
    frames = ToFrame(sensor_size=sensor, n_time_bins=time_steps) if window is None else None

    def counts(events: np.ndarray) -> np.ndarray:
        if window is None:
            return frames(events).reshape(time_steps, -1)
        if not len(events):
            return np.zeros((time_steps, n_inputs), dtype=np.int16)
        t0 = events["t"][0]
        cut = ToFrame(sensor_size=sensor, time_window=window, start_time=t0, end_time=t0 + time_steps * window)
        return cut(events).reshape(time_steps, -1)

    return counts


def convert(
    out: str | os.PathLike,
    *,
    dataset: str,
    root: str | os.PathLike = ROOT_DEFAULT,
    time_steps: int | None = None,
    time_window: float | None = None,
    count_levels: int | None = None,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    force: bool = False,
    download: bool = False,
) -> Path:
    """Write the spike file ``out`` of ``tonic.datasets.<dataset>`` (see the module docstring)."""
    cls = dataset_class(dataset)
    name = cls.__name__
    if time_steps is not None and time_window is not None:
        raise PrepError("give --time-steps or --time-window, not both")
    if time_window is not None and not (isinstance(time_window, (int, float)) and 0 < time_window < float("inf")):
        raise PrepError(f"time_window must be a positive number of microseconds, got {time_window!r}")
    time_steps = positive_int("time_steps", time_steps) if time_steps is not None else None
    root = Path(root)
    splits = open_splits(cls, root, download, test_fraction)
    sensor = getattr(splits["train"], "sensor_size", None) or getattr(cls, "sensor_size", None)
    if not sensor or len(sensor) != 3:
        raise PrepError(f"tonic.datasets.{name} has no fixed sensor size (its recordings differ); mdn prep tonic needs one")
    sensor = tuple(int(s) for s in sensor)
    if time_window is not None:
        time_steps = longest_steps(splits, float(time_window), name)
    time_steps = time_steps or DEFAULT_TIME_STEPS
    meta = _meta(cls, splits, root, download, sensor, time_steps, time_window, count_levels, seed)
    counts = binner(sensor, time_steps, None if time_window is None else float(time_window))

    def load(ds: Any, split: str, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.empty((b - a, time_steps, int(np.prod(sensor))), dtype=np.uint8)
        y = np.empty(b - a, dtype=np.int64)
        for i in range(a, b):
            events, y[i - a] = recording(ds, split, i, name)
            try:
                x[i - a] = np.minimum(counts(events), 255)
            except (IndexError, ValueError) as err:
                raise PrepError(f"{_where(ds, split, i, name)}: cannot bin its events into the {sensor} sensor ({err})") from err
        return x, y

    with SpikeFileWriter(out, meta, force=force, analog_levels=count_levels) as writer:
        for split, ds in splits.items():
            write_split(
                writer, split, len(ds), lambda a, b, ds=ds, split=split: load(ds, split, a, b), lambda x, rng: pack_spikes(x > 0),
                seed=seed, analog=None if count_levels is None else lambda x: np.minimum(x, count_levels),
            )  # fmt: skip
    return writer.out


def _meta(cls, splits, root, download, sensor, time_steps, time_window, count_levels, seed) -> dict[str, Any]:
    has_y = "y" in (getattr(cls, "dtype", None) or np.dtype([("y", int)])).names
    width, height, polarities = sensor
    params: dict[str, Any] = {
        "slicing": "tonic ToFrame n_time_bins" if time_window is None else "tonic ToFrame time_window",
        "spike": "event count > 0",
        "layout": "[polarity, y, x]" if has_y else "[polarity, x]",
    }
    if time_window is not None:
        params.update(time_window_us=float(time_window), start="first event of each recording")
    if count_levels is not None:
        params["analog"] = f"event count clipped to {count_levels}"

    def labels_max() -> int:
        return max(recording(ds, s, i, cls.__name__)[1] for s, ds in splits.items() for i in range(len(ds)))

    return make_meta(
        dataset=cls.__name__.lower(), encoding="event-frames", encoding_params=params, time_steps=time_steps,
        input_shape=(polarities, height, width) if has_y else (polarities, width * height),
        class_names=class_names(splits["train"], labels_max), seed=seed,
        source=f"tonic.datasets.{cls.__name__}(save_to={str(root)!r}, download={download})",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="a class of tonic.datasets: NMNIST, POKERDVS, DVSGesture, SHD, ...")
    add_common(parser, "tonic", time_steps=None, root="folder holding tonic's <Dataset>/ folder (default: %(default)s)",
               root_default=ROOT_DEFAULT, download=True)  # fmt: skip
    parser.set_defaults(out=None)  # data/<dataset>.h5: default_out
    bins = parser.add_mutually_exclusive_group()
    bins.add_argument(
        "--time-steps", type=int_option("time_steps", 1, MAX_TIME_STEPS), default=None,
        help=f"T equal bins per recording, 1..{MAX_TIME_STEPS} (default: {DEFAULT_TIME_STEPS})",
    )  # fmt: skip
    bins.add_argument("--time-window", type=_window, default=None, help="frames of this many microseconds instead")
    parser.add_argument("--count-levels", type=int_option("count_levels", 1, 255), default=None,
                        help="also keep event counts clipped to this level as the file's analog input")  # fmt: skip
    parser.add_argument("--test-fraction", type=fraction_option("test_fraction"), default=TEST_FRACTION,
                        help="test share for datasets tonic does not split (default: %(default)s)")  # fmt: skip


def default_out(dataset: str) -> str:
    """``--out`` when not given: ``data/<dataset>.h5``."""
    return f"data/{dataset_class(dataset).__name__.lower()}.h5"


def _window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"time_window={text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"time_window={text} must be a positive number of microseconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_module("tonic", argv)


if __name__ == "__main__":
    sys.exit(main())
