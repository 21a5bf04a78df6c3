"""The format ``mdn-spikes``: its constants, bit packing, meta data (made, checked, read) and file identity.

The meta data are the root attributes of :data:`META_KEYS` (and :data:`OPTIONAL_META_KEYS`), checked
within the limits of :mod:`mdn_snntorch.spikefile.limits` when written and when read. A reader keeps these
known keys only (:func:`read_meta`, ``SpikeDataset.meta``: a small dict, safe to copy into every checkpoint)
and records every root attribute, known or not, in one digest, ``sha256`` of their canonical JSON
(:func:`attributes_digest`), so a change to any of them is still noticed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mdn_snntorch.extras import require
from mdn_snntorch.spikefile import limits
from mdn_snntorch.spikefile.errors import SpikeFileError

if TYPE_CHECKING:
    import h5py

FORMAT = "mdn-spikes"
#: the format version this module writes and the newest it reads
VERSION = 1
SPLITS = ("train", "test")
TARGET_KINDS = ("labels", "targets")
#: the datasets of a split
DATASETS = ("spikes", "labels", "targets", "intensity", "analog")
#: root attributes every file carries
META_KEYS = (
    "format", "version", "dataset", "encoding", "encoding_params", "time_steps", "input_shape", "n_inputs",
    "num_classes", "class_names", "seed", "source", "package_version", "target_kind",
)  # fmt: skip
#: root attributes some files carry (NETtalk: ``variant``); a reader keeps these and :data:`META_KEYS`
OPTIONAL_META_KEYS = ("variant",)
_TEXT_KEYS = ("format", "dataset", "encoding", "source", "package_version", "target_kind", "variant")


@dataclass(frozen=True)
class FileIdentity:
    """What pins a spike file for the length of a run: its size, modification time, meta data and the digest
    of all its root attributes (``None`` where unknown, as in a record written before digests were kept)."""

    size: int
    mtime_ns: int
    meta: dict
    meta_digest: str | None = None

    @classmethod
    def of(cls, st: os.stat_result, meta: dict, meta_digest: str | None = None) -> FileIdentity:
        return cls(int(st.st_size), int(st.st_mtime_ns), dict(meta), meta_digest)

    def to_dict(self) -> dict[str, Any]:
        """Size, modification time and (when known) the attribute digest, for checkpoints and ``metrics.json``."""
        out: dict[str, Any] = {"size": self.size, "mtime_ns": self.mtime_ns}
        if self.meta_digest is not None:
            out["meta_digest"] = self.meta_digest
        return out

    def changes(self, other: FileIdentity) -> list[str]:
        """What differs from ``other`` (the newer state), in words; empty when nothing does."""
        out = meta_changes(self.meta, other.meta)
        if self.meta_digest and other.meta_digest and self.meta_digest != other.meta_digest and not out:
            out.append(f"root attributes (digest {self.meta_digest[:12]} -> {other.meta_digest[:12]})")
        if other.size != self.size:
            out.append(f"size {self.size} -> {other.size} bytes")
        if other.mtime_ns != self.mtime_ns:
            out.append(f"modified at {_when(other.mtime_ns)} (was {_when(self.mtime_ns)})")
        return out


def _when(ns: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) + f".{ns % 10**9:09d}"


def meta_changes(old: dict, new: dict, ignore: tuple[str, ...] = ("package_version",)) -> list[str]:
    """The meta-data keys whose values differ, as ``"key old -> new"``."""
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in ignore]
    return [f"{k} {old.get(k, '(none)')!r} -> {new.get(k, '(none)')!r}" for k in keys if old.get(k) != new.get(k)]


def package_version() -> str:
    """The installed mdn-snntorch version, recorded in every file as ``package_version``."""
    try:
        return version("mdn-snntorch")
    except PackageNotFoundError:
        return "0+unknown"


def packed_width(n_inputs: int) -> int:
    """Bytes per time step of a packed spike vector: ``ceil(D / 8)``."""
    return (n_inputs + 7) // 8


def pack_spikes(spikes: np.ndarray) -> np.ndarray:
    """Binary ``[..., D]`` (bool or 0/1) -> uint8 ``[..., ceil(D / 8)]``."""
    return np.packbits(np.asarray(spikes, dtype=bool), axis=-1)


def unpack_spikes(packed: np.ndarray, n_inputs: int) -> np.ndarray:
    """uint8 ``[..., ceil(D / 8)]`` -> float32 ``[..., D]`` of 0/1 (inverse of :func:`pack_spikes`). The bits are
    widened to float32 by torch, whose vectorised conversion takes about two thirds of numpy's time (a training
    batch of MNIST is unpacked once per step)."""
    bits = np.unpackbits(packed, axis=-1, count=n_inputs)
    return torch.from_numpy(bits).to(torch.float32).numpy()


def make_meta(
    *,
    dataset: str,
    encoding: str,
    encoding_params: dict[str, Any],
    time_steps: int,
    input_shape: Sequence[int],
    class_names: Sequence[str],
    seed: int,
    source: str,
    target_kind: str = "labels",
    num_classes: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The root meta data of a spike file (``num_classes`` defaults to ``len(class_names)``,
    ``n_inputs`` is ``prod(input_shape)``, ``package_version`` the installed version)."""
    return dict(
        dataset=dataset,
        encoding=encoding,
        encoding_params=encoding_params,
        time_steps=int(time_steps),
        input_shape=[int(s) for s in input_shape],
        n_inputs=int(np.prod(input_shape)),
        num_classes=int(len(class_names) if num_classes is None else num_classes),
        class_names=[str(c) for c in class_names],
        seed=int(seed),
        source=source,
        package_version=package_version(),
        target_kind=target_kind,
        **extra,
    )


def encode_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta data as HDF5 attribute values (``encoding_params`` becomes a JSON string)."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"spike-file meta data lacks {', '.join(missing)}")
    attrs = dict(meta)
    attrs["encoding_params"] = json.dumps(meta["encoding_params"], sort_keys=True)
    attrs["input_shape"] = np.asarray(meta["input_shape"], dtype=np.int64)
    attrs["class_names"] = np.asarray([str(c) for c in meta["class_names"]], dtype=require("h5py", "data").string_dtype())
    return attrs


def plain(value: Any) -> Any:
    """An attribute value (or a dict of them) as plain Python: text for bytes, lists for arrays, numbers for
    numpy scalars."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _nbytes(value: Any) -> int:
    """Bytes an attribute value holds in memory (text as UTF-8)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="surrogatepass"))
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        return int(value.nbytes)
    if isinstance(value, (np.ndarray, list, tuple)):
        return sum(_nbytes(v) for v in (value.ravel().tolist() if isinstance(value, np.ndarray) else value))
    return 8


def attributes_digest(attrs: dict[str, Any]) -> str:
    """``sha256`` (hex) of the attributes' canonical JSON (names sorted, values as :func:`plain`)."""
    doc = json.dumps([[k, plain(attrs[k])] for k in sorted(attrs)], default=repr, ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def open_file(path: str | os.PathLike, **kwargs) -> h5py.File:
    """The spike file ``path`` opened read-only; :class:`SpikeFileError` when it is missing or not HDF5."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise SpikeFileError(f"{path}: not a regular file")
        raise SpikeFileError(f"{path}: no such spike file (make one with `mdn prep <dataset>`)")
    try:
        return require("h5py", "data").File(path, "r", **kwargs)
    except OSError as err:
        raise SpikeFileError(f"{path}: not a readable HDF5 file ({err})") from err


def root_attributes(f: h5py.File, path: Path) -> dict[str, Any]:
    """Every root attribute of ``f``, read within :data:`~limits.MAX_ATTRIBUTES` and
    :data:`~limits.MAX_ATTRIBUTE_BYTES` (sizes checked before each read where HDF5 declares them)."""
    h5py = require("h5py", "data")
    count = len(f.attrs)
    if count > limits.MAX_ATTRIBUTES:
        raise SpikeFileError(f"{path}: {count} root attributes; a spike file has at most {limits.MAX_ATTRIBUTES}")
    out, total, outside = {}, 0, None
    for name in sorted(f.attrs):
        attr = h5py.h5a.open(f.id, name.encode())
        elements = math.prod(attr.shape or ())
        declared = total + len(name) + int(attr.get_storage_size())
        if elements > limits.MAX_CLASSES or declared > limits.MAX_ATTRIBUTE_BYTES:
            raise _too_big(path, name)
        if _variable_length(attr.get_type()):
            outside = _bytes_outside_data(f) if outside is None else outside
            if outside > limits.MAX_BYTES_OUTSIDE_DATA:
                raise SpikeFileError(
                    f"{path}: {outside} bytes of the file lie outside its datasets' data (at most "
                    f"{limits.MAX_BYTES_OUTSIDE_DATA}), room for variable-length root attributes (such as {name!r}) far "
                    f"beyond {limits.MAX_ATTRIBUTE_BYTES} bytes, which HDF5 reads whole: refused"
                )
        try:
            value = f.attrs[name]
        except (OSError, TypeError, ValueError) as err:
            raise SpikeFileError(f"{path}: root attribute {name!r} cannot be read ({err})") from None
        total += len(name) + _nbytes(value)
        if total > limits.MAX_ATTRIBUTE_BYTES:
            raise _too_big(path, name)
        out[name] = value
    return out


def check_attribute_budget(attrs: dict[str, Any], path: str | os.PathLike) -> None:
    """The encoded root attributes ``attrs`` within :data:`~limits.MAX_ATTRIBUTES` and
    :data:`~limits.MAX_ATTRIBUTE_BYTES` (what a reader accepts); :class:`SpikeFileError` otherwise."""
    if len(attrs) > limits.MAX_ATTRIBUTES:
        raise SpikeFileError(f"{path}: {len(attrs)} root attributes; a spike file has at most {limits.MAX_ATTRIBUTES}")
    total = 0
    for name, value in attrs.items():
        total += len(name) + _nbytes(value)
        if total > limits.MAX_ATTRIBUTE_BYTES:
            raise _too_big(path, name)


def _variable_length(tid) -> bool:
    """Whether an attribute's HDF5 type holds variable-length data (text or sequences), at any depth."""
    h5py = require("h5py", "data")
    if isinstance(tid, h5py.h5t.TypeStringID):
        return tid.is_variable_str()
    if isinstance(tid, h5py.h5t.TypeVlenID):
        return True
    if isinstance(tid, h5py.h5t.TypeArrayID):
        return _variable_length(tid.get_super())
    if isinstance(tid, h5py.h5t.TypeCompoundID):
        return any(_variable_length(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    return False


def _bytes_outside_data(f: h5py.File) -> int:
    """The file's size less the stored bytes of the datasets a spike file has (the most a heap of
    variable-length attribute values can take); other objects count as outside."""
    h5py = require("h5py", "data")
    data = 0
    for split in SPLITS:
        group = f.get(split, getlink=True)
        if not isinstance(group, h5py.HardLink) or not isinstance(f[split], h5py.Group):
            continue
        for member in DATASETS:
            link = f[split].get(member, getlink=True)
            if isinstance(link, h5py.HardLink) and isinstance(f[split][member], h5py.Dataset):
                data += int(f[split][member].id.get_storage_size())
    codes = f.get("codes", getlink=True)
    if isinstance(codes, h5py.HardLink) and isinstance(f["codes"], h5py.Dataset):
        data += int(f["codes"].id.get_storage_size())
    return int(f.id.get_filesize()) - data


def _too_big(path: str | os.PathLike, name: str) -> SpikeFileError:
    return SpikeFileError(
        f"{path}: root attribute {name!r} takes the root attributes beyond {limits.MAX_ATTRIBUTE_BYTES} bytes "
        f"(or {limits.MAX_CLASSES} elements); a spike file's meta data is small: refused"
    )


def meta_of(f: h5py.File, path: Path) -> tuple[dict[str, Any], str]:
    """The checked meta data of an open spike file (the known keys only) and the digest of all its root attributes."""
    attrs = root_attributes(f, path)
    fmt = plain(attrs.get("format"))
    if fmt != FORMAT:
        raise SpikeFileError(f"{path}: format attribute is {_short(fmt)}, expected {FORMAT!r}; not an mdn spike file")
    version = plain(attrs.get("version"))
    if not _is_int(version):
        raise SpikeFileError(f"{path}: missing or invalid 'version' attribute ({_short(version)}; expected an integer)")
    if version > VERSION or version < 1:
        raise SpikeFileError(
            f"{path}: format version {version}; this reader supports versions 1..{VERSION} (update mdn-snntorch)"
        )
    missing = [k for k in META_KEYS if k not in attrs]
    if missing:
        raise SpikeFileError(f"{path}: missing root attribute(s) {', '.join(missing)}")
    meta = {k: plain(attrs[k]) for k in (*META_KEYS, *OPTIONAL_META_KEYS) if k in attrs}
    if not isinstance(meta["encoding_params"], str) or len(meta["encoding_params"]) > limits.MAX_ENCODING_PARAMS:
        most = limits.MAX_ENCODING_PARAMS
        raise SpikeFileError(f"{path}: attribute 'encoding_params' is not a JSON text of at most {most} bytes")
    try:
        meta["encoding_params"] = json.loads(meta["encoding_params"])
    except (TypeError, ValueError) as err:
        raise SpikeFileError(f"{path}: attribute 'encoding_params' is not JSON") from err
    check_meta(meta, path)
    return meta, attributes_digest(attrs)


def check_meta(meta: dict[str, Any], path: str | os.PathLike) -> None:
    """Every known key of ``meta`` (plain values) of its type and within the limits of :mod:`.limits`;
    :class:`SpikeFileError` naming ``path`` and the first key that is not."""
    for key in _TEXT_KEYS:
        if key in meta and (not isinstance(meta[key], str) or len(meta[key]) > limits.MAX_TEXT):
            raise SpikeFileError(
                f"{path}: attribute {key!r} is {_short(meta[key])}; expected a text of at most {limits.MAX_TEXT} characters"
            )
    if not isinstance(meta["encoding_params"], dict):
        raise SpikeFileError(f"{path}: attribute 'encoding_params' is {_short(meta['encoding_params'])}; expected a JSON object")
    if meta["target_kind"] not in TARGET_KINDS:
        raise SpikeFileError(f"{path}: target_kind {meta['target_kind']!r} is not one of {TARGET_KINDS}")
    for key in ("time_steps", "n_inputs", "num_classes"):
        if not _is_int(meta[key]) or meta[key] < 1:
            raise SpikeFileError(f"{path}: attribute {key!r} is {_short(meta[key])}; expected a positive integer")
    for key, most, what in (
        ("time_steps", limits.MAX_TIME_STEPS, "time steps"), ("n_inputs", limits.MAX_INPUTS, "inputs per time step"),
        ("num_classes", limits.MAX_CLASSES, "classes (or target bits)"),
    ):  # fmt: skip
        if meta[key] > most:
            raise SpikeFileError(f"{path}: attribute {key!r} is {meta[key]}; a spike file has at most {most} {what}")
    bits = meta["time_steps"] * meta["n_inputs"]
    if bits > limits.MAX_SAMPLE_BITS:
        raise SpikeFileError(
            f"{path}: time_steps x n_inputs = {bits} spike bits per sample; a spike file has at most {limits.MAX_SAMPLE_BITS}"
        )
    if not _is_int(meta["seed"]):
        raise SpikeFileError(f"{path}: attribute 'seed' is {_short(meta['seed'])}; expected an integer")
    shape = meta["input_shape"]
    if (
        not isinstance(shape, list) or not 1 <= len(shape) <= limits.MAX_INPUT_DIMS
        or not all(_is_int(d) and d >= 1 for d in shape)
    ):  # fmt: skip
        raise SpikeFileError(
            f"{path}: attribute 'input_shape' is {_short(shape)}; expected a list of 1..{limits.MAX_INPUT_DIMS} positive integers"
        )
    if math.prod(shape) != meta["n_inputs"]:
        raise SpikeFileError(f"{path}: input_shape {meta['input_shape']} does not hold n_inputs={meta['n_inputs']}")
    names = meta["class_names"]
    if not isinstance(names, list) or not all(isinstance(c, str) and len(c) <= limits.MAX_TEXT for c in names):
        raise SpikeFileError(f"{path}: attribute 'class_names' is not a list of names of at most {limits.MAX_TEXT} characters")
    if len(names) != meta["num_classes"]:
        raise SpikeFileError(f"{path}: attribute 'num_classes' is {meta['num_classes']} but 'class_names' names {len(names)}")


def _short(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (a hostile attribute stays one short line)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The root meta data of a spike file as plain Python values (the keys of :data:`META_KEYS` and
    :data:`OPTIONAL_META_KEYS`), after checking format, version and limits.

    Raises :class:`SpikeFileError` naming the file and what is wrong.
    """
    with open_file(path) as f:
        return meta_of(f, Path(path))[0]


def read_attributes(path: str | os.PathLike) -> dict[str, Any]:
    """Every root attribute of a spike file as plain Python values, the ones :func:`read_meta` leaves out
    included (read within the same limits; ``encoding_params`` stays its JSON text)."""
    with open_file(path) as f:
        path = Path(path)
        meta_of(f, path)
        return {k: plain(v) for k, v in root_attributes(f, path).items()}
