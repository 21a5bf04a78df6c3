"""Writing your own data: spike arrays (:func:`write_arrays`) or map-style datasets (:func:`write_dataset`).

Both take a train and a test split, derive every meta-data key they can (``time_steps`` and
``input_shape`` from the spikes, ``class_names`` from the labels or the dataset's ``classes``, the code
table of bit-vector targets from the distinct targets), check shapes and dtypes before anything is written
(a ``ValueError`` naming the argument) and stream the spikes through :class:`SpikeFileWriter` one chunk
of samples at a time, so arrays larger than memory (``numpy.memmap``, an ``h5py`` dataset, anything
sliceable with ``shape`` and ``dtype``) can be written. Values are checked while writing; an error then
leaves an existing ``out`` as it was (the writer renames only a complete file).

Spikes are binary: ``spikes[i, t, ...] = 1`` is a spike of input ``(...)`` at step ``t``. Targets are
integer labels ``[N]`` or 0/1 bit vectors ``[N, K]`` (``target_kind`` ``labels`` / ``targets``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdn_snntorch.extras import require
from mdn_snntorch.spikefile import limits
from mdn_snntorch.spikefile.format import META_KEYS, SPLITS, make_meta, pack_spikes
from mdn_snntorch.spikefile.writer import SpikeFileWriter

#: meta-data keys the writer fills itself; ``extra_meta`` may not name them
_DERIVED = set(META_KEYS) | {"target_kind"}
Block = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


def write_arrays(
    out: str | os.PathLike,
    train: tuple[Any, Any],
    test: tuple[Any, Any],
    *,
    name: str,
    encoding: str,
    time_steps: int | None = None,
    input_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    encoding_params: dict[str, Any] | None = None,
    seed: int = 0,
    source: str = "mdn_snntorch.spikefile.write_arrays",
    codes: np.ndarray | None = None,
    force: bool = False,
    progress: bool = False,
    **extra_meta: Any,
) -> Path:
    """Write ``train = (spikes, targets)`` and ``test = (spikes, targets)`` to the spike file ``out``.

    ``spikes``: bool or uint8 (0/1) ``[N, T, *input_shape]`` (``input_shape`` given: any trailing shape of
    the same size); ``targets``: integer labels ``[N]`` or 0/1 bits ``[N, K]``. ``class_names`` default to
    ``"0" .. str(max label)``, or ``bit0 ..`` for bit targets, whose code table ``codes`` defaults to the
    distinct targets of both splits. ``extra_meta`` adds root attributes (numbers or text; see
    :func:`~mdn_snntorch.spikefile.read_attributes`). Returns ``out`` as a Path.
    """
    spikes, targets = {}, {}
    for split, pair in zip(SPLITS, (train, test)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{split} must be a pair (spikes, targets), got {type(pair).__name__}")
        spikes[split] = _spike_array(split, pair[0])
        targets[split] = _targets(f"{split} targets", pair[1], spikes[split].shape[0])
    steps, shape = _sample_shape({s: tuple(x.shape[1:]) for s, x in spikes.items()}, time_steps, input_shape)
    kind, names, codes = _target_meta(targets, class_names, codes)
    meta = _meta(name, encoding, encoding_params, steps, shape, names, seed, source, kind, extra_meta)

    def block(split: str) -> Block:
        def read(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            x = _numpy(spikes[split][a:b])
            if x.dtype == np.uint8 and x.size and x.max() > 1:
                raise ValueError(f"{split} spikes hold the value {int(x.max())} (samples {a}..{b - 1}); spikes are 0 or 1")
            return x.reshape(b - a, steps, -1), targets[split][a:b]

        return read

    sizes = {s: spikes[s].shape[0] for s in SPLITS}
    return _write(out, meta, codes, sizes, {s: block(s) for s in SPLITS}, force, progress)


def write_dataset(
    out: str | os.PathLike,
    train_dataset: Any,
    test_dataset: Any,
    *,
    name: str,
    encoding: str,
    time_steps: int | None = None,
    input_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    encoding_params: dict[str, Any] | None = None,
    seed: int = 0,
    source: str | None = None,
    codes: np.ndarray | None = None,
    force: bool = False,
    progress: bool = False,
    **extra_meta: Any,
) -> Path:
    """Write two map-style datasets (``len`` and ``ds[i] -> (spikes [T, ...], target)``) to the spike file ``out``.

    ``spikes``: bool, uint8, or any numeric tensor or array holding only 0 and 1 (as ``snntorch.spikegen``
    returns them); ``target``: an integer label or a 0/1 bit vector ``[K]``. ``class_names`` default to the
    train dataset's ``classes`` (a list of names, or a dict name -> index) when it has them. Without class
    names (or ``codes`` for bit targets) the targets are found first, from ``dataset.targets`` or else by
    reading every sample once more. The other arguments are those of :func:`write_arrays`.
    """
    datasets = {"train": train_dataset, "test": test_dataset}
    sizes = {}
    for split, ds in datasets.items():
        if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
            raise ValueError(f"{split}_dataset must be a map-style dataset (len(ds) and ds[i]), got {type(ds).__name__}")
        sizes[split] = len(ds)
        if sizes[split] < 1:
            raise ValueError(f"{split}_dataset holds no samples")
    first = {s: _item(s, ds, 0) for s, ds in datasets.items()}
    steps, shape = _sample_shape({s: x.shape for s, (x, _) in first.items()}, time_steps, input_shape)
    class_names = class_names if class_names is not None else _dataset_classes(train_dataset)
    bits = np.ndim(first["train"][1]) == 1
    if codes is None if bits else class_names is None:  # the classes or codes come from the targets: find them first
        known = {s: _all_targets(s, ds, progress) for s, ds in datasets.items()}
    else:
        known = {s: _targets(f"{s}_dataset targets", np.asarray([y]), 1) for s, (_, y) in first.items()}
    kind, names, codes = _target_meta(known, class_names, codes)
    source = source or f"{type(train_dataset).__name__} / {type(test_dataset).__name__} through write_dataset"
    meta = _meta(name, encoding, encoding_params, steps, shape, names, seed, source, kind, extra_meta)

    def block(split: str) -> Block:
        def read(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            items = [_item(split, datasets[split], i) for i in range(a, b)]
            for i, (x, _) in enumerate(items):
                want = first["train"][0].shape
                if x.shape != want:
                    raise ValueError(f"{split}_dataset[{a + i}] spikes are {list(x.shape)}, expected {list(want)}")
            x = np.stack([x for x, _ in items]).reshape(b - a, steps, -1)
            return x, _targets(f"{split}_dataset targets", np.stack([y for _, y in items]), b - a)

        return read

    return _write(out, meta, codes, sizes, {s: block(s) for s in SPLITS}, force, progress)


# ---- checks -------------------------------------------------------------------------------
def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _dtype(x: Any) -> np.dtype:
    dtype = x.dtype
    if not isinstance(dtype, np.dtype):  # torch.bool, torch.uint8, ...
        dtype = _numpy(x[:0]).dtype
    return dtype


def _spike_array(split: str, x: Any) -> Any:
    if not (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__")):
        raise ValueError(
            f"{split} spikes must be an array [N, T, *input_shape] (numpy, memmap, h5py, torch), got {type(x).__name__}"
        )
    if len(x.shape) < 3:
        raise ValueError(f"{split} spikes must be [N, T, *input_shape] (at least 3 axes), got shape {tuple(x.shape)}")
    if _dtype(x) not in (np.dtype(bool), np.dtype(np.uint8)):
        raise ValueError(f"{split} spikes must be bool or uint8 0/1, got {_dtype(x)} (threshold or cast them first)")
    if x.shape[0] < 1:
        raise ValueError(f"{split} spikes hold no samples")
    return x


def _targets(arg: str, y: Any, n: int) -> np.ndarray:
    y = _numpy(y)
    if y.ndim not in (1, 2) or len(y) != n:
        raise ValueError(f"{arg} must be labels [N] or bit vectors [N, K] for N = {n} samples, got shape {list(y.shape)}")
    if y.dtype.kind not in "iub":
        raise ValueError(f"{arg} must be integers (labels) or 0/1 bits, got {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{arg} hold the negative value {int(y.min())}; labels are 0 .. num_classes - 1")
    return y.astype(np.int64) if y.ndim == 1 else y.astype(np.uint8)


def _sample_shape(shapes: dict[str, tuple[int, ...]], time_steps: int | None, input_shape: Sequence[int] | None):
    """``(T, input_shape)`` from each split's sample shape ``[T, ...]``, checked against the arguments."""
    train = tuple(shapes["train"])
    if len(train) < 2:
        raise ValueError(f"train spikes per sample must be [T, *input_shape], got {list(train)}")
    if tuple(shapes["test"]) != train:
        raise ValueError(f"test spikes per sample are {list(shapes['test'])} but train spikes are {list(train)}")
    if time_steps is not None and time_steps != train[0]:
        raise ValueError(f"time_steps={time_steps!r} but the spikes have {train[0]} time steps (samples {list(train)})")
    shape = tuple(int(d) for d in (input_shape if input_shape is not None else train[1:]))
    if math.prod(shape) != math.prod(train[1:]) or not shape or min(shape) < 1:
        raise ValueError(f"input_shape={list(shape)} does not hold the {math.prod(train[1:])} inputs per step of the spikes")
    return int(train[0]), shape


def _target_meta(targets: dict[str, np.ndarray | None], class_names: Sequence[str] | None, codes: np.ndarray | None):
    """``(target_kind, class_names, codes)`` from the targets of both splits (None where not read)."""
    seen = [y for y in targets.values() if y is not None]
    bits = bool(seen) and seen[0].ndim == 2 or codes is not None
    if not bits:
        top = max(int(y.max()) for y in seen) if seen and class_names is None else -1
        names = [str(c) for c in class_names] if class_names is not None else [str(k) for k in range(top + 1)]
        for split, y in targets.items():
            if y is not None and y.size and y.max() >= len(names):
                raise ValueError(f"{split} targets hold the label {int(y.max())} but class_names names {len(names)} classes")
        return "labels", names, None
    if any(y.ndim != 2 for y in seen) or (codes is not None and np.ndim(codes) != 2):
        raise ValueError("bit-vector targets (and codes) are [N, K]; labels [N] go without codes")
    widths = {y.shape[1] for y in seen} | ({np.shape(codes)[1]} if codes is not None else set())
    if len(widths) != 1:
        raise ValueError(f"bit-vector targets of both splits (and codes) must have the same width K, got {sorted(widths)}")
    if any(y.size and y.max() > 1 for y in seen):
        raise ValueError("bit-vector targets must hold 0 and 1 only")
    k = widths.pop()
    table = np.unique(np.concatenate(seen), axis=0) if codes is None else _targets("codes", codes, len(codes))
    names = [str(c) for c in class_names] if class_names is not None else [f"bit{i}" for i in range(k)]
    if len(names) != k:
        raise ValueError(f"class_names names {len(names)} units but the targets have {k} bits")
    return "targets", names, table


def _meta(name, encoding, encoding_params, steps, shape, names, seed, source, kind, extra) -> dict[str, Any]:
    for arg, value in (("name", name), ("encoding", encoding)):
        if not isinstance(value, str) or not value or len(value) > limits.MAX_TEXT:
            raise ValueError(f"{arg} must be a non-empty text of at most {limits.MAX_TEXT} characters, got {value!r}")
    clash = sorted(set(extra) & _DERIVED)
    if clash:
        raise ValueError(f"extra meta key(s) {', '.join(clash)} are set by the writer; pass them as arguments where they are")
    for key, value in extra.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str, np.integer, np.floating)):
            raise ValueError(f"extra meta {key}={value!r}: a root attribute is a number or a text")
    return make_meta(
        dataset=name, encoding=encoding, encoding_params=dict(encoding_params or {}), time_steps=steps, input_shape=shape,
        class_names=names, seed=seed, source=source, target_kind=kind, **extra,
    )  # fmt: skip


# ---- datasets -----------------------------------------------------------------------------
def _item(split: str, ds: Any, i: int) -> tuple[np.ndarray, Any]:
    """``ds[i]`` as ``(binary spikes bool [T, ...], target)``."""
    item = ds[i]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"{split}_dataset[{i}] must be a pair (spikes, target), got {type(item).__name__}")
    x = _numpy(item[0])
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{split}_dataset[{i}] spikes are {x.dtype}; expected 0/1 numbers (bool, uint8, float)")
    spikes = x.astype(bool)
    if x.dtype != bool and not np.array_equal(spikes, x):
        bad = x[(x != 0) & (x != 1)].ravel()[0].item()
        raise ValueError(f"{split}_dataset[{i}] spikes hold the value {bad!r}; spikes are 0 or 1")
    return spikes, _numpy(item[1])


def _dataset_classes(ds: Any) -> list[str] | None:
    """The dataset's ``classes``: a list of names, or a dict name -> index (names in index order)."""
    classes = getattr(ds, "classes", None)
    if isinstance(classes, dict):
        return [str(k) for k, _ in sorted(classes.items(), key=lambda kv: kv[1])]
    if isinstance(classes, (list, tuple)) and classes:
        return [c.decode() if isinstance(c, bytes) else str(c) for c in classes]
    return None


def _all_targets(split: str, ds: Any, progress: bool) -> np.ndarray:
    """Every target of ``ds``: ``ds.targets`` when it has one of the right length, else read sample by sample."""
    given = getattr(ds, "targets", None)
    if given is not None and len(given) == len(ds):
        return _targets(f"{split}_dataset targets", np.asarray(_numpy(given)), len(ds))
    found = [_item(split, ds, i)[1] for i in _bar(range(len(ds)), f"{split} targets", progress)]
    return _targets(f"{split}_dataset targets", np.stack(found), len(ds))


# ---- writing ------------------------------------------------------------------------------
def _write(out, meta: dict[str, Any], codes, sizes: dict[str, int], blocks: dict[str, Block], force: bool, progress: bool):
    """Create the file and write every split block by block (one chunk of samples per write)."""
    with SpikeFileWriter(out, meta, force=force, codes=codes) as writer:
        for split in SPLITS:
            n = sizes[split]
            n_targets = int(codes.shape[1]) if codes is not None else None
            writer.create_split(split, n, n_targets)
            for a in _bar(range(0, n, writer.rows), f"{meta['dataset']} {split}", progress, n, writer.rows):
                x, y = blocks[split](a, min(n, a + writer.rows))
                writer.write(split, pack_spikes(x), y)
    return writer.out


def _bar(steps, desc: str, progress: bool, total: int | None = None, step: int = 1):
    """``steps`` with a tqdm bar (``progress``; tqdm comes with the ``pipeline`` extra) counting ``step`` each."""
    if not progress:
        yield from steps
        return
    tqdm = require("tqdm", "pipeline").tqdm
    with tqdm(total=total or len(steps), desc=desc, unit=" samples", leave=False, disable=None) as bar:
        for s in steps:
            yield s
            bar.update(min(step, bar.total - bar.n))
