r"""Training protocols: the regime a run follows, as a whole (docs/model.md#training-protocols).

* ``paper``: the recipe's settings as the paper's text gives them (Table 1: e.g. 20 epochs, the learning
  rate decayed by 0.9 per epoch, the spike file's fixed input spikes, the detached reset).
* ``authors``: the regime of the paper authors' published training script, which is how their Table 3
  was produced:

  - 80 epochs at the recipe's learning rate, dropped tenfold after 49 epochs: their ``StepLR(50, 0.1)`` is
    stepped at the *start* of every epoch, so epoch ``e`` (0-based) trains at
    :math:`\eta_0 \, 0.1^{\lfloor (e + 1) / 50 \rfloor}` (``lr_decay=0.1, lr_step=50, lr_epoch_offset=1``);
  - fresh Bernoulli input spikes at every forward pass, in training *and* evaluation, drawn from the
    file's stored intensities (``resample``, ``resample_test``; rate-coded files only), or the file's analog
    input where it stores one and no intensities (``analog``: the audio tasks);
  - the undetached reset for every neuron (``detach_reset=False``);
  - learnable theta per batch row (``theta_per_row``) when the neuron is ``learnable``.

  Their 1st-order neuron decays by 0.2 per step: that neuron is the preset ``1st-order-0.2``, named
  explicitly (``1st-order`` stays the paper's Eq. 3 with 0.8).

Precedence, as everywhere: explicit settings beat the protocol, which beats the recipe, which beats the
defaults (:meth:`~mdn_snntorch.pipeline.trainer.TrainConfig.from_protocol`, ``mdn train --protocol``).
"""

from __future__ import annotations

import os
from typing import Any

from mdn_snntorch.neurons import factory

PROTOCOLS = ("paper", "authors")
#: the authors' regime, before the parts that depend on the data file and the neuron
AUTHORS = dict(epochs=80, lr_decay=0.1, lr_step=50, lr_epoch_offset=1, detach_reset=False)


def protocol_neurons(name: str) -> tuple[str, ...]:
    """The paper's five neurons as protocol ``name`` trains them: ``authors`` has the 1st-order neuron of their
    code, ``1st-order-0.2``, in place of the paper's ``1st-order``."""
    from mdn_snntorch.meta_neurons import PAPER_NEURONS

    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    return tuple("1st-order-0.2" if n == "1st-order" and name == "authors" else n for n in PAPER_NEURONS)


def protocol_settings(name: str, data: str | os.PathLike | None = None, neuron: Any = None) -> dict[str, Any]:
    """The training settings protocol ``name`` stands for, for the spike file ``data`` and the hidden
    ``neuron`` (a spec as :class:`~mdn_snntorch.pipeline.trainer.TrainConfig` takes it).

    ``"paper"`` adds nothing to the recipe. ``"authors"`` needs ``data`` to choose the input: fresh spikes
    where the training split stores intensities, analog input where it stores analog values only, the
    stored input otherwise (e.g. NETtalk's letters)."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    settings: dict[str, Any] = {"protocol": name}
    if name == "paper":
        return settings
    settings.update(AUTHORS)
    if data is not None:
        settings.update(_input_settings(data))
    if neuron == factory.LEARNABLE:
        settings["theta_per_row"] = True
    return settings


def _input_settings(data: str | os.PathLike) -> dict[str, Any]:
    from mdn_snntorch.spikefile import SpikeDataset

    train = SpikeDataset(data, "train")
    try:
        if train.intensity_levels is not None:
            return {"resample": True, "resample_test": True}
        if train.has_analog:
            return {"analog": True}
        return {}
    finally:
        train.close()
