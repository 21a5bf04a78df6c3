"""One training epoch and one evaluation pass of the 3-layer SNN: the rate loss of paper Eq. 4, Adam, the
checks of every batch, and the scores (accuracy, loss, firing rates, the cosine scores of bit-vector targets).

A NaN or inf loss or gradient stops the run before the update (:class:`NonFiniteLossError`). Under data
parallelism every process takes rows ``rank::N`` of the global batch and its loss is weighted so that
DistributedDataParallel's average is the global batch's mean loss (see :mod:`~mdn_snntorch.pipeline.trainer`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mdn_snntorch import signals
from mdn_snntorch.pipeline import distributed
from mdn_snntorch.pipeline.loss import AUTHORS_GROUP, correct, cosine_score, first_of_group_cosine, rate_mse_loss
from mdn_snntorch.pipeline.model import ThreeLayerSNN


class NonFiniteLossError(RuntimeError):
    """The loss or its gradient became NaN or inf; ``epoch`` and ``batch`` are 1-based.

    Both are checked: with Heaviside spikes a diverging state (V, U -> inf) silences the spikes and
    leaves the loss finite, while the gradient through it is NaN.
    """

    def __init__(self, epoch: int, batch: int, loss: float, grad_norm: float, last_checkpoint: Path | None):
        self.epoch, self.batch, self.loss, self.grad_norm, self.last_checkpoint = epoch, batch, loss, grad_norm, last_checkpoint
        what = (
            f"non-finite loss ({loss})" if not math.isfinite(loss) else f"non-finite gradient (norm {grad_norm}, loss {loss:.4g})"
        )
        kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint had been written yet"
        super().__init__(f"{what} at epoch {epoch}, batch {batch}: training stopped before the update; {kept}")


#: the sums an epoch keeps per batch: loss * n, correct, n, hidden rate * n, output rate * n, cosine score
_SUMS = 6


@dataclass
class EpochLoop:
    """Trains and evaluates ``model`` (``net``: the same, possibly DDP-wrapped) with ``optimizer``."""

    model: ThreeLayerSNN
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ctx: distributed.DistContext
    device: torch.device
    codes: torch.Tensor | None
    bf16: bool = False
    progress: bool = True

    @property
    def _autocast(self) -> dict[str, Any]:
        return dict(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_epoch(self, loader: Iterable, epoch: int, epochs: int, last_checkpoint: Path | None) -> dict[str, float]:
        """One pass over ``loader`` (epoch ``epoch``, 0-based, of ``epochs``); the epoch's mean scores."""
        self.net.train()
        sums = torch.zeros(_SUMS, dtype=torch.float64, device=self.device)
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, file=sys.stderr,
            disable=True if not (self.progress and self.ctx.is_main) else None,  # None: no bar off a terminal
        )  # fmt: skip
        for batch, (x, y) in enumerate(bar):
            signals.check()
            batch_rows = y.shape[0]
            if batch_rows < self.ctx.world_size:  # too few rows to give every process one; skipped by all
                continue
            if self.model.theta_rows and batch_rows != self.model.theta_rows:  # theta per row: full batches only
                continue
            x, y = self._my_rows(x, y)
            with torch.autocast(**self._autocast):
                out, hidden = self.net(x, return_hidden=True)
            loss = rate_mse_loss(out.float(), y)
            with torch.no_grad():  # before the backward, while the spikes are still in the cache
                sums += self._batch_sums(loss.detach(), out.detach(), hidden.detach(), y)
            self._step(loss, self.ctx.world_size * y.shape[0] / batch_rows, epoch, batch, last_checkpoint)
            if batch % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        return _rates(distributed.all_reduce_sum(sums, self.ctx), self.codes is not None)

    def _step(self, loss: torch.Tensor, weight: float, epoch: int, batch: int, last_checkpoint: Path | None) -> None:
        """Backward and update; ``weight``: DDP's average of weighted means is the global mean."""
        self.optimizer.zero_grad(set_to_none=True)
        (loss * weight if weight != 1 else loss).backward()
        grad_norm = torch.linalg.vector_norm(
            torch.stack([p.grad.detach().float().norm() for p in self.model.parameters() if p.grad is not None])
        )
        bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(grad_norm)).to(torch.float32).reshape(1)
        if bool(distributed.all_reduce_sum(bad, self.ctx).item()):
            raise NonFiniteLossError(epoch + 1, batch + 1, loss.item(), grad_norm.item(), last_checkpoint)
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """The mean scores over ``loader`` in eval mode; for bit-vector targets in one process also
        ``cosine_first_of_5``, the paper authors' score (:func:`~mdn_snntorch.pipeline.loss.first_of_group_cosine`)
        over the samples in loader order."""
        self.model.eval()
        sums = torch.zeros(_SUMS, dtype=torch.float64, device=self.device)
        rates, targets = [], []
        for x, y in loader:
            x, y = self._my_rows(x, y)
            if y.shape[0] == 0:
                continue
            with torch.autocast(**self._autocast):
                out, hidden = self.forward_rows(x)
            sums += self._batch_sums(rate_mse_loss(out.float(), y), out, hidden, y)
            if self.codes is not None:
                rates.append(out.float().mean(0))
                targets.append(y)
        scores = _rates(distributed.all_reduce_sum(sums, self.ctx), self.codes is not None)
        if rates and self.ctx.world_size == 1:
            rate, target = torch.cat(rates), torch.cat(targets)
            groups = -(-rate.shape[0] // AUTHORS_GROUP)
            scores[f"cosine_first_of_{AUTHORS_GROUP}"] = first_of_group_cosine(rate[None], target).item() / groups
        return scores

    def forward_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation forward; a network with theta per row runs chunks of ``theta_rows``, the last one padded
        with silent rows whose outputs are dropped."""
        rows = self.model.theta_rows
        if not rows:
            return self.model(x, return_hidden=True)
        outs, hiddens = [], []
        for chunk in x.split(rows, dim=1):
            n = chunk.shape[1]
            if n < rows:
                chunk = torch.cat([chunk, chunk.new_zeros(chunk.shape[0], rows - n, chunk.shape[2])], dim=1)
            out, hidden = self.model(chunk, return_hidden=True)
            outs.append(out[:, :n])
            hiddens.append(hidden[:, :n])
        return torch.cat(outs, dim=1), torch.cat(hiddens, dim=1)

    def _my_rows(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows ``rank::N`` of a global batch, on the device."""
        r, w = self.ctx.rank, self.ctx.world_size
        x, y = (x, y) if w == 1 else (x[:, r::w], y[r::w])
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _batch_sums(self, loss: torch.Tensor, out: torch.Tensor, hidden: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        cosine = cosine_score(out.float(), y).double() if self.codes is not None else torch.zeros((), device=self.device)
        return torch.stack(
            [
                loss.double() * n,
                correct(out, y, self.codes).double(),
                torch.tensor(float(n), device=self.device, dtype=torch.float64),
                _spike_mean(hidden) * n,
                out.double().mean() * n,
                cosine.double(),
            ]
        )


def _spike_mean(spikes: torch.Tensor) -> torch.Tensor:
    """The mean of ``spikes [T, ...]`` in float64, summed over time in (at least) float32 first: for spikes of 0
    and 1 the counts over time are exact there, so this is ``spikes.double().mean()`` to the bit, without a
    float64 copy of the whole sequence."""
    counts = spikes.sum(0, dtype=torch.promote_types(spikes.dtype, torch.float32))
    return counts.double().sum() / spikes.numel()


def _rates(sums: torch.Tensor, bit_targets: bool) -> dict[str, float]:
    """Means per sample; ``cosine`` (the authors' score, loss.cosine_score) only for bit-vector targets."""
    loss, right, n, hidden, output, cosine = sums.tolist()
    n = max(n, 1.0)
    rates = {"loss": loss / n, "acc": right / n, "hidden_rate": hidden / n, "output_rate": output / n}
    if bit_targets:
        rates["cosine"] = cosine / n
    return rates
