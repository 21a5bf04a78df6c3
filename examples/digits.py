"""scikit-learn's embedded 8x8 digits (1,797 images, no download) as PyTorch data for the examples.

``loaders(batch_size)`` returns train and test ``DataLoader``s of ``(image [B, 1, 8, 8] in [0, 1], label)``
(a fixed 80 / 20 split); the examples rate-code the images with ``snntorch.spikegen.rate``.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


def loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    split = int(0.8 * len(labels))
    train, test = order[:split], order[split:]
    g = torch.Generator().manual_seed(seed)
    return (
        DataLoader(TensorDataset(images[train], labels[train]), batch_size=batch_size, shuffle=True, generator=g),
        DataLoader(TensorDataset(images[test], labels[test]), batch_size=256),
    )


def arguments(description: str, epochs: int, flags: dict[str, str] | None = None) -> argparse.Namespace:
    """``--epochs``, ``--seed``, ``--threads`` and the example's own on/off ``flags`` (``{"--name": "help"}``).
    Sets the thread count: these small networks run fastest on one thread."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the layers are small)")
    for flag, help_ in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=help_)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args
