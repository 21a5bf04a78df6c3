r"""Rate loss and accuracy (paper Eq. 4).

.. math:: L = \sum_k \Big( \frac{1}{T}\sum_t S_k(t) - O_k \Big)^2

averaged over the batch; ``O`` is the one-hot label, or a bit vector (NETtalk's 26 phoneme bits).
The predicted class is the output neuron with the highest firing rate; ties go to the lowest
class index (``torch.argmax``), so a silent network always predicts class 0.

Bit-vector targets have two scores: the nearest-code accuracy (:func:`correct` with the code table) and
the paper authors' cosine score (:func:`cosine_score`), see docs/model.md#loss-and-prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def firing_rate(spikes: torch.Tensor) -> torch.Tensor:
    """Mean over the time axis: ``[T, B, K] -> [B, K]``."""
    return spikes.mean(dim=0)


def _target(rate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if target.dim() == 1:
        return F.one_hot(target.long(), rate.shape[-1]).to(rate.dtype)
    if target.shape != rate.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match output rates {tuple(rate.shape)}")
    return target.to(rate.dtype)


def rate_mse_loss(spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 4: squared error of output firing rates against the one-hot label (or bit vector),
    summed over output neurons, averaged over the batch."""
    rate = firing_rate(spikes)
    return ((rate - _target(rate, target)) ** 2).sum(dim=-1).mean()


def predict(spikes: torch.Tensor) -> torch.Tensor:
    """Class with the highest output firing rate (lowest index on ties)."""
    return firing_rate(spikes).argmax(dim=-1)


def correct(spikes: torch.Tensor, target: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
    """Number of correct predictions in the batch.

    With integer labels: argmax of the rate. With bit-vector targets and a code table ``codes``
    ``[C, K]`` (NETtalk): the code closest (Euclidean) to the output rate must be the target's code.
    """
    if target.dim() == 1:
        return (predict(spikes) == target).sum()
    if codes is None:
        raise ValueError("bit-vector targets need the code table `codes` to score the closest code")
    rate = firing_rate(spikes)
    codes = codes.to(rate.dtype)
    pred = torch.cdist(rate, codes).argmin(dim=-1)
    true = torch.cdist(target.to(rate.dtype), codes).argmin(dim=-1)
    return (pred == true).sum()


#: the authors' NETtalk score counts a sample only when some output rate reaches this value
COSINE_MIN_RATE = 0.05


def cosine_score(spikes: torch.Tensor, target: torch.Tensor, min_rate: float = COSINE_MIN_RATE) -> torch.Tensor:
    r"""Sum over the batch of :math:`\cos(r, O)` between the output rates and the bit-vector target, 0 for a
    sample whose largest rate is below ``min_rate`` (the paper authors' NETtalk score; divide by the
    batch size for the mean). Bits that are 0 in both vectors add nothing to a cosine, so this equals
    the cosine over the union of the active bits."""
    if target.dim() != 2:
        raise ValueError(f"the cosine score needs bit-vector targets [B, K], got shape {tuple(target.shape)}")
    rate = firing_rate(spikes)
    cos = cosine_per_sample(rate, _target(rate, target))
    return torch.where(rate.amax(dim=-1) >= min_rate, cos, torch.zeros_like(cos)).sum()


def cosine_per_sample(rate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r""":math:`\cos(r_b, O_b)` of every row of rates ``[B, K]`` and targets ``[B, K]`` (0 for a zero vector)."""
    norms = rate.norm(dim=-1) * target.norm(dim=-1)
    return (rate * target).sum(dim=-1) / norms.clamp_min(torch.finfo(rate.dtype).tiny)


#: the paper authors' NETtalk test loop runs the test set in batches of this size and scores their first sample
AUTHORS_GROUP = 5


def first_of_group_cosine(
    spikes: torch.Tensor, target: torch.Tensor, group: int = AUTHORS_GROUP, min_rate: float = COSINE_MIN_RATE
) -> torch.Tensor:
    r"""The paper authors' NETtalk test score, summed: the samples in order, in groups of ``group`` (the last
    one may be shorter); per group :math:`\cos(r, O)` of its *first* sample, 0 when the largest output rate of
    the *whole group* is below ``min_rate``. Divide by the number of groups, ``ceil(B / group)``, for the mean.
    (Their loop scores 100 of NETtalk's 500 test words so; :func:`cosine_score` scores every sample.)"""
    if target.dim() != 2:
        raise ValueError(f"the cosine score needs bit-vector targets [B, K], got shape {tuple(target.shape)}")
    rate = firing_rate(spikes)
    groups = torch.arange(rate.shape[0], device=rate.device) // group
    n_groups = -(-rate.shape[0] // group)
    group_max = rate.new_full((n_groups,), -torch.inf).scatter_reduce(0, groups, rate.amax(dim=-1), reduce="amax")
    first = torch.arange(0, rate.shape[0], group, device=rate.device)
    cos = cosine_per_sample(rate[first], _target(rate, target)[first])
    return torch.where(group_max >= min_rate, cos, torch.zeros_like(cos)).sum()
