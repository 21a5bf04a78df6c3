"""Static images (MNIST, Fashion-MNIST, CIFAR-10) -> rate-coded spikes, read through torchvision.

Each pixel's normalised intensity ``p = value / 255`` is sampled at every one of T steps (paper §4.1:
random sampling within a time window): ``S[t, d] ~ Bernoulli(p[d])``. Inputs are the flattened image,
channel-major for colour (``[C, H, W]``, CIFAR-10 keeps all 3072 inputs). The pixel values are kept as
``intensity`` (levels 255), so training can redraw the spikes every epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep import encode
from data_prep.common import PrepError, positive_int, write_split
from mdn_snntorch.spikefile import SpikeFileWriter, make_meta

#: default number of time steps for static images (the paper gives none; docs/model.md#encodings-and-time-steps)
DEFAULT_TIME_STEPS = 20


@dataclass(frozen=True)
class ImageSplit:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    class_names: list[str]


def load_torchvision(make: Callable[[], object], *, name: str, root: Path, layout: str) -> object:
    """``make()`` (a torchvision dataset constructor), turning its failures into a :class:`PrepError`
    naming ``root``, the ``layout`` expected there and how to get the data."""
    try:
        return make()
    except Exception as err:  # torchvision raises RuntimeError, ValueError, AssertionError, OSError ...
        raise PrepError(
            f"cannot read {name} from {root} ({type(err).__name__}: {err}). Expected torchvision's layout: {layout}. "
            f"Pass --download (download=True) to fetch it, or see docs/data.md."
        ) from err


def convert_images(
    out: str | os.PathLike,
    *,
    dataset: str,
    load: Callable[[bool], ImageSplit],
    time_steps: int,
    seed: int,
    force: bool,
    source: str,
) -> Path:
    """Write the spike file of an image data set; ``load(train)`` gives one split's images."""
    time_steps = positive_int("time_steps", time_steps)
    splits = {"train": load(True), "test": load(False)}
    shape = splits["train"].images.shape[1:]
    meta = make_meta(
        dataset=dataset,
        encoding="rate-bernoulli",
        encoding_params={"intensity": "pixel / 255", "per_step": "Bernoulli(intensity)"},
        time_steps=time_steps,
        input_shape=shape,
        class_names=splits["train"].class_names,
        seed=seed,
        source=source,
    )

    def encoder(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return encode.bernoulli(x.reshape(len(x), -1).astype(np.float32) / 255.0, time_steps, rng)

    def pixels(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)

    with SpikeFileWriter(out, meta, force=force, intensity_levels=255) as writer:
        for split, data in splits.items():
            write_split(
                writer, split, len(data.labels), lambda a, b, d=data: (d.images[a:b], d.labels[a:b]), encoder,
                seed=seed, intensity=pixels,
            )  # fmt: skip
    return writer.out
