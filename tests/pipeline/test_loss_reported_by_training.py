"""The loss and accuracy :func:`~mdn_snntorch.pipeline.trainer.train` reports, against values worked out by
hand for a network whose outputs are known in advance.

The network: the paper's 3-layer SNN on the digits spike file (T = 8), its output layer 1st-order neurons
whose input weights are 0, so output k sees the constant current I_k = sigmoid(bias_k) at every step. With
V' = 0.8 V + I, threshold 0.5 and reset to 0:

- I = 0.6 fires at every step: rate 1;
- I = 0.3: V = 0.3, 0.54 (fires), 0.3, ... : every 2nd step, rate 4/8 = 0.5;
- I = 0.2: V = 0.2, 0.36, 0.488, 0.5904 (fires), ... : every 4th step, rate 2/8 = 0.25;
- I = 0.01 never reaches 0.5 (its fixed point is I / 0.2 = 0.05): rate 0.

Outputs 0, 1, 2 get 0.6, 0.3, 0.2, the other seven 0.01. A sample of class y then loses (Eq. 4)
``sum_k r_k^2 - 2 r_y + 1 = 2.3125 - 2 r_y``, and every prediction is class 0. Training runs with
``lr = 1e-30``: Adam's steps (about ``lr`` each) lie far below float32's resolution of the biases, so the
network is the same at every batch.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.pipeline.trainer import TrainConfig, train

CURRENTS = [0.6, 0.3, 0.2] + [0.01] * 7
RATES = np.array([1.0, 0.5, 0.25] + [0.0] * 7)


def hand_loss(labels: np.ndarray) -> float:
    """Mean over the samples of 2.3125 - 2 r_y (module docstring)."""
    return float(np.mean(2.3125 - 2 * RATES[labels]))


def known_network() -> ThreeLayerSNN:
    torch.manual_seed(0)
    model = ThreeLayerSNN(64, 4, 10, neuron="2-FS", output_neuron="1st-order")
    with torch.no_grad():
        model.fc2.weight.zero_()
        model.fc2.bias.copy_(torch.tensor([math.log(i / (1 - i)) for i in CURRENTS]))
    return model


def test_the_hand_rates():
    """The rates the expected values rest on, from the network itself."""
    out = known_network()(torch.zeros(8, 1, 64))
    assert out.mean(0)[0].tolist() == RATES.tolist()


def test_train_reports_eq4_of_its_outputs(digits):
    with h5py.File(digits) as f:
        train_labels, test_labels = f["train/labels"][:].astype(int), f["test/labels"][:].astype(int)
    config = TrainConfig(data=digits, epochs=1, batch_size=500, lr=1e-30, device="cpu", threads=1, progress=False)
    result = train(config, model=known_network())
    (row,) = result.metrics
    # 1347 training samples in batches of 500, 500, 347: the mean is over samples, not over batches
    assert row["train_loss"] == pytest.approx(hand_loss(train_labels), rel=1e-6)
    assert row["test_loss"] == pytest.approx(hand_loss(test_labels), rel=1e-6)
    assert row["train_acc"] == pytest.approx(np.mean(train_labels == 0))
    assert row["test_acc"] == pytest.approx(np.mean(test_labels == 0))
    assert row["train_output_rate"] == pytest.approx(RATES.mean()) and row["test_output_rate"] == pytest.approx(RATES.mean())
