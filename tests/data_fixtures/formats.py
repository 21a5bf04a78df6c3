"""Tiny files in the real formats, read back through torchvision, tonic and soundfile in the tests.

- idx (MNIST): big-endian header ``0 0 0x08 ndim`` then ``ndim`` uint32 sizes, then uint8 data;
- CIFAR-10 ``cifar-10-batches-py``: pickled dicts with ``data`` uint8 [n, 3072] (channel-major rows)
  and ``labels``, plus ``batches.meta`` with ``label_names``;
- N-MNIST ``.bin``: 5 bytes per event ``x, y, p << 7 | t[22:16], t[15:8], t[7:0]``;
- POKER-DVS (tonic ``POKERDVS``): ``pips_{train,test}/<class>/<name>.npy``, int events ``[n, 4]`` (t, x, y, p);
- DVS Gesture (tonic ``DVSGesture``): ``ibmGesture{Train,Test}/user<NN>_<lighting>/<class>.npy``, int events
  ``[n, 4]`` (x, y, p, t in ms);
- SHD (tonic ``SHD``): ``shd_{train,test}.h5`` with ``spikes/times`` (variable-length float, seconds),
  ``spikes/units`` (variable-length uint16), ``labels``, ``extra/keys`` and ``extra/speaker``;
- TIDIGITS / TIMIT audio: NIST SPHERE, 16-bit PCM (soundfile ``format="NIST"``);
- UCI NETtalk: a free-text header, then ``word<TAB>phonemes<TAB>stress<TAB>class`` lines.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import h5py
import numpy as np
import soundfile

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path: Path, array: np.ndarray) -> None:
    a = np.ascontiguousarray(array, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes())


def write_mnist_raw(root: Path, folder: str, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """``splits[name] = (images uint8 [n, 28, 28], labels [n])`` -> ``root/folder/raw/*-ubyte``."""
    raw = root / folder / "raw"
    for split, (images, labels) in splits.items():
        image_file, label_file = MNIST_FILES[split]
        write_idx(raw / image_file, images)
        write_idx(raw / label_file, labels)
    return raw


def write_cifar10(
    root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], label_names: list[str]
) -> Path:
    """Images uint8 ``[n, 3, 32, 32]`` with labels -> ``root/cifar-10-batches-py`` (train spread over 5 batches)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, images: np.ndarray, labels: np.ndarray) -> None:
        entry = {"batch_label": name, "data": images.reshape(len(images), 3072), "labels": [int(v) for v in labels],
                 "filenames": [f"{name}_{i}.png" for i in range(len(images))]}  # fmt: skip
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)

    for k, idx in enumerate(np.array_split(np.arange(len(train[1])), 5), 1):
        dump(f"data_batch_{k}", train[0][idx], train[1][idx])
    dump("test_batch", *test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": label_names, "num_cases_per_batch": len(train[1]) // 5, "num_vis": 3072}, f)
    return folder


def nmnist_bytes(events: list[tuple[int, int, int, int]]) -> bytes:
    """Events ``(x, y, p, t_us)`` in N-MNIST's 5-byte encoding."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def write_npy_events(path: Path, columns: np.ndarray) -> Path:
    """Events as an int64 array ``[n, 4]`` in ``path`` (POKER-DVS and DVS Gesture keep one recording per file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(columns, dtype=np.int64).reshape(-1, 4))
    return path


def write_shd(path: Path, recordings: list[tuple[np.ndarray, np.ndarray]], labels: list[int], keys: list[str]) -> Path:
    """``recordings[i] = (times in s, channels)`` in the Heidelberg spiking datasets' HDF5 layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(recordings),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(recordings),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(recordings):
            times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
        f["labels"] = np.asarray(labels, dtype=np.uint8)
        f["extra/keys"] = np.asarray(keys, dtype=h5py.string_dtype())
        f["extra/speaker"] = np.zeros(len(labels), dtype=np.uint8)
    return path


def write_sphere(path: Path, signal: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal, rate, format="NIST", subtype="PCM_16")
    return path


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


UCI_HEADER = """NETtalk corpus (test copy written for mdn-snntorch)
Columns: letters, phonemes, stress and syllables, and a class code.
"""


def write_uci_nettalk(path: Path, entries: list[tuple[str, str, str, int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(UCI_HEADER + "".join(f"{w}\t{p}\t{s}\t{c}\n" for w, p, s, c in entries), encoding="latin-1")
    return path
