"""The paper authors' NETtalk score: the cosine between output rates and the phoneme code, 0 for a quiet output."""

import math

import numpy as np
import pytest
import torch
from scipy.io import savemat

from data_prep import nettalk
from mdn_snntorch.pipeline.loss import COSINE_MIN_RATE, cosine_score
from mdn_snntorch.pipeline.trainer import TrainConfig, train


def spikes_with_rates(rates, steps=20):
    """Spike trains [T, 1, K] whose firing rates are exactly ``rates`` (multiples of 1 / steps)."""
    counts = [round(r * steps) for r in rates]
    s = torch.zeros(steps, 1, len(rates), dtype=torch.float64)
    for k, c in enumerate(counts):
        s[:c, 0, k] = 1
    return s


@pytest.mark.parametrize(
    "rates, code, expected",
    [
        ([0.5, 0.5, 0.0, 0.0], [1, 1, 0, 0], 1.0),  # same direction: rate level does not matter
        ([1.0, 0.0, 0.0, 0.0], [1, 1, 0, 0], 1 / math.sqrt(2)),  # one of two bits
        ([0.5, 0.5, 0.5, 0.0], [1, 1, 0, 0], 1 / (math.sqrt(0.75) * math.sqrt(2))),  # an extra active output bit
        ([0.0, 0.0, 0.25, 0.0], [1, 1, 0, 0], 0.0),  # disjoint bits
        ([0.05, 0.0, 0.0, 0.0], [1, 0, 0, 0], 1.0),  # the largest rate at the limit counts
        ([0.0, 0.0, 0.0, 0.0], [1, 0, 0, 0], 0.0),  # a silent output scores 0, not NaN
    ],
)
def test_hand_computed_cases(rates, code, expected):
    score = cosine_score(spikes_with_rates(rates), torch.tensor([code], dtype=torch.float64))
    assert score.item() == pytest.approx(expected, abs=1e-12)


def test_an_output_below_the_minimum_rate_scores_zero():
    """One spike in 25 steps (rate 0.04 < 0.05) in the right bit still scores 0."""
    spikes = torch.zeros(25, 1, 3)
    spikes[0, 0, 0] = 1
    assert spikes.mean(0).max().item() < COSINE_MIN_RATE
    assert cosine_score(spikes, torch.tensor([[1.0, 0, 0]])).item() == 0.0


def test_the_batch_score_is_the_sum_over_samples_and_equals_the_cosine_over_the_active_bits():
    rng = np.random.default_rng(3)
    spikes = torch.from_numpy((rng.random((20, 6, 26)) < 0.2).astype(np.float64))
    codes = torch.from_numpy((rng.random((6, 26)) < 0.15).astype(np.float64))
    codes[:, 0] = 1
    total = cosine_score(spikes, codes).item()
    by_hand = 0.0
    for rate, code in zip(spikes.mean(0).numpy(), codes.numpy()):
        active = (rate != 0) | (code != 0)  # the authors compare the union of the active bits only
        r, c = rate[active], code[active]
        by_hand += float(r @ c / (np.linalg.norm(r) * np.linalg.norm(c))) if rate.max() >= COSINE_MIN_RATE else 0.0
    assert total == pytest.approx(by_hand, rel=1e-12)


def test_class_labels_are_refused():
    with pytest.raises(ValueError, match="bit-vector targets"):
        cosine_score(torch.zeros(4, 2, 10), torch.tensor([1, 2]))


def test_training_records_the_cosine_for_bit_targets_only(tmp_path, digits):
    rng = np.random.default_rng(0)
    x = np.zeros((40, 7, 27), dtype=np.uint8)
    x[np.arange(40)[:, None], np.arange(7), rng.integers(0, 27, (40, 7))] = 1
    y = np.zeros((40, 26), dtype=np.uint8)
    y[np.arange(40)[:, None], rng.integers(0, 26, (40, 3))] = 1
    mat = tmp_path / "nt.mat"
    savemat(mat, {"train_x": x[:30].reshape(30, 189), "train_y": y[:30], "test_x": x[30:].reshape(10, 189), "test_y": y[30:]})
    data = nettalk.convert(tmp_path / "nt.h5", mat=mat, time_steps=5)
    settings = dict(epochs=1, hidden=16, batch_size=5, device="cpu", threads=1, progress=False)
    bits = train(TrainConfig(data=str(data), **settings)).metrics[-1]
    assert 0.0 <= bits["test_cosine"] <= 1.0 and 0.0 <= bits["train_cosine"] <= 1.0
    labels = train(TrainConfig(data=digits, **settings)).metrics[-1]
    assert "test_cosine" not in labels and "train_cosine" not in labels
