"""Paper Eq. 4, L = sum_k (rate_k - O_k)^2 averaged over the batch, and the prediction rules, against values
worked out by hand (nothing here computes an expected value with the functions under test)."""

from __future__ import annotations

import pytest
import torch

from mdn_snntorch.pipeline.loss import correct, firing_rate, predict, rate_mse_loss


def spikes_with_rates(rates: list[list[float]], T: int = 4) -> torch.Tensor:
    """Spikes ``[T, B, K]`` whose firing rates are ``rates`` (multiples of 1/T): the first ``rate * T`` steps fire."""
    r = torch.tensor(rates)
    return (torch.arange(T).view(T, 1, 1) < (r * T).round()).float()


# rates of two samples over three outputs, labels 0 and 2:
#   sample 1: (0.5 - 1)^2 + 0.25^2 + 0^2  = 0.25 + 0.0625       = 0.3125
#   sample 2: 1^2 + 0^2 + (0.75 - 1)^2    = 1 + 0.0625          = 1.0625
#   batch mean: (0.3125 + 1.0625) / 2                           = 0.6875
RATES = [[0.5, 0.25, 0.0], [1.0, 0.0, 0.75]]


def test_rates_are_the_mean_over_time():
    assert firing_rate(spikes_with_rates(RATES)).tolist() == RATES


def test_eq4_sums_over_outputs_and_averages_over_the_batch():
    spikes = spikes_with_rates(RATES)
    assert rate_mse_loss(spikes, torch.tensor([0, 2])).item() == 0.6875
    assert rate_mse_loss(spikes[:, :1], torch.tensor([0])).item() == 0.3125  # one sample: its sum over outputs
    assert rate_mse_loss(spikes[:, 1:], torch.tensor([2])).item() == 1.0625


def test_eq4_with_bit_vector_targets():
    # targets (1, 0, 1) and (0, 1, 0): 0.25 + 0.0625 + 1 = 1.3125 and 1 + 1 + 0.5625 = 2.5625, mean 1.9375
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert rate_mse_loss(spikes_with_rates(RATES), targets).item() == 1.9375


def test_a_silent_network_loses_one_per_sample_and_predicts_class_0():
    silent = torch.zeros(5, 3, 10)
    assert rate_mse_loss(silent, torch.tensor([3, 7, 0])).item() == 1.0
    assert predict(silent).tolist() == [0, 0, 0]
    assert correct(silent, torch.tensor([3, 7, 0])).item() == 1


def test_prediction_is_the_highest_rate_lowest_index_on_ties():
    spikes = spikes_with_rates([[0.25, 0.75, 0.75], [0.5, 0.0, 0.25]])
    assert predict(spikes).tolist() == [1, 0]


def test_a_target_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"target shape \(2, 4\) does not match output rates \(2, 3\)"):
        rate_mse_loss(spikes_with_rates(RATES), torch.zeros(2, 4))


def test_bit_vector_accuracy_takes_the_nearest_code():
    # codes 00, 01, 11; rates (0.25, 0.75) are nearest 01, (1, 0.5) nearest 11 (distance 0.5 vs 01's 1.0),
    # (0, 0) is 00; the targets are 01, 01 and 00: two of three right
    codes = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    spikes = spikes_with_rates([[0.25, 0.75], [1.0, 0.5], [0.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert correct(spikes, targets, codes).item() == 2
    with pytest.raises(ValueError, match="code table"):
        correct(spikes, targets)
