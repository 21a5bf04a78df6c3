"""``snntorch.backprop.BPTT`` for nets with any spiking neurons, this package's included.

snnTorch's ``BPTT`` / ``TBPTT`` find the neurons to reset and the number of values the net returns by
snnTorch's own classes (``utils.reset``, ``utils._final_layer_check``); with other neurons the reset
never happens and the output is never unpacked (``UnboundLocalError: spk``). :func:`BPTT` here takes the
same arguments and does the same training, but resets and detaches through :func:`~mdn_snntorch.reset`
and :func:`~mdn_snntorch.detach` (``net.modules()``) and reads the spikes as the first value the net
returns and the membrane as the last.
"""

from __future__ import annotations

import torch

from mdn_snntorch.neurons.reset import detach, reset

#: snnTorch losses that read the membrane potential instead of the spikes
MEMBRANE_LOSSES = ("mse_membrane_loss", "ce_max_membrane_loss")


def BPTT(  # noqa: N802 (snnTorch's name)
    net,
    dataloader,
    optimizer,
    criterion,
    num_steps=False,
    time_var: bool = True,
    time_first: bool = True,
    regularization=False,
    device="cpu",
    K=False,
):
    """One epoch of backpropagation through time over ``dataloader``; returns the average loss.

    Arguments as ``snntorch.backprop.BPTT`` (``K`` steps per truncated chunk, as ``TBPTT``; default the
    whole sequence): ``net(x_t)`` is called once per step (a net of ``init_hidden=True`` neurons, the last
    one with ``output=True``); ``time_var=False`` repeats static data for ``num_steps`` steps;
    ``time_first=False`` takes ``[B, T, ...]`` data. ``criterion`` is an ``snntorch.functional`` loss (its
    ``__name__`` says whether it reads spikes or membrane), ``regularization`` e.g. ``l1_rate_sparsity()``.
    """
    if num_steps and time_var:
        raise ValueError("num_steps is only for time-static data (time_var=False)")
    if not num_steps and not time_var:
        raise ValueError("time-static data (time_var=False) needs num_steps")
    membrane = getattr(criterion, "__name__", type(criterion).__name__) in MEMBRANE_LOSSES
    total, batches = 0.0, 0
    net = net.to(device)
    net.train()
    for data, targets in dataloader:
        data, targets = data.to(device), targets.to(device)
        if time_var and not time_first:
            data = data.transpose(0, 1)
        steps = data.shape[0] if time_var else num_steps
        chunk = K or steps
        reset(net)
        batch_loss = 0.0
        for start in range(0, steps, chunk):
            records = []
            for step in range(start, min(start + chunk, steps)):
                out = net(data[step] if time_var else data)
                if isinstance(out, tuple):
                    records.append(out[-1] if membrane else out[0])
                elif membrane:
                    raise ValueError("a membrane loss needs a net that returns (spikes, ..., membrane): set output=True")
                else:
                    records.append(out)
            record = torch.stack(records)
            loss = criterion(record, targets)
            if regularization:
                loss = loss + regularization(record)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            detach(net)
            batch_loss += loss.item() * record.shape[0] / steps
        total += batch_loss
        batches += 1
    return total / max(batches, 1)
