"""snnTorch tutorial 6 (a convolutional SNN) with MDN neurons, on scikit-learn's 8x8 digits.

The tutorial's ``nn.Sequential`` of ``init_hidden=True`` neurons, stepped in a loop with ``mdn.reset(net)``
before each batch (``snntorch.utils.reset`` does not know these neurons), and the same network as one
call on the whole sequence: ``mdn.TimeDistributed`` runs the stateless layers on ``[T, B, ...]`` and the
neurons take ``step_mode="multi"`` (the fused time loop). Both give the same spikes; the whole-sequence
form is the faster one to train.

The conv layers have one learnable theta per channel (``param_shape=(C, 1, 1)``) and take the current as
given (``input_sigmoid=False``): with the paper's sigmoid, the blank background of a feature map (a current
of sigmoid(bias) ~ 0.5) makes 2-FS fire at half rate everywhere, and this net learns little (docs/snntorch.md).

Run: ``python examples/tutorial6_conv.py [--epochs 6] [--per-step]`` (about 5 s on a CPU; ~ 95 %).
"""

from __future__ import annotations

import snntorch.functional as SF
import torch
from digits import arguments, loaders
from snntorch import spikegen
from torch import nn

import mdn_snntorch as mdn

NUM_STEPS = 16


def build(whole_sequence: bool) -> nn.Sequential:
    """Conv2d(1, 12, 3)-MaxPool-MDN-Conv2d(12, 32, 3)-MaxPool-MDN-Linear(128, 10)-MDN, for 8x8 images."""
    wrap = mdn.TimeDistributed if whole_sequence else nn.Sequential
    mode = "multi" if whole_sequence else "single"
    return nn.Sequential(
        wrap(nn.Conv2d(1, 12, 3, padding=1), nn.MaxPool2d(2)),
        mdn.MDN("2-FS", param_shape=(12, 1, 1), learn_theta=True, input_sigmoid=False, init_hidden=True, step_mode=mode),
        wrap(nn.Conv2d(12, 32, 3, padding=1), nn.MaxPool2d(2)),
        mdn.MDN("2-FS", param_shape=(32, 1, 1), learn_theta=True, input_sigmoid=False, init_hidden=True, step_mode=mode),
        wrap(nn.Flatten(), nn.Linear(32 * 2 * 2, 10)),
        mdn.MDN("2-FS", init_hidden=True, output=True, step_mode=mode),
    )


def forward(net: nn.Sequential, x: torch.Tensor, whole_sequence: bool) -> torch.Tensor:
    """The output spikes ``[T, B, 10]`` of a rate-coded batch ``x [T, B, 1, 8, 8]``, from a fresh state."""
    mdn.reset(net)  # was: utils.reset(net)
    if whole_sequence:
        return net(x)[0]  # (spk, u, mem) traces of the output layer: out[0] is the spike record
    return torch.stack([net(x_t)[0] for x_t in x])  # was: spk_out, mem_out = net(data[step])


def main() -> float:
    args = arguments(__doc__.splitlines()[0], epochs=6, flags={"--per-step": "step the net in a loop (tutorial 6's form)"})
    whole_sequence = not args.per_step
    torch.manual_seed(args.seed)
    train, test = loaders(seed=args.seed)
    net = build(whole_sequence)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    for epoch in range(args.epochs):
        for images, labels in train:
            loss = loss_fn(forward(net, spikegen.rate(images, num_steps=NUM_STEPS), whole_sequence), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    with torch.no_grad():
        correct = total = 0
        for images, labels in test:
            spk = forward(net, spikegen.rate(images, num_steps=NUM_STEPS), whole_sequence)
            correct += SF.accuracy_rate(spk, labels) * len(labels)
            total += len(labels)
    print(f"test accuracy: {100 * correct / total:.2f} %")
    return correct / total


if __name__ == "__main__":
    main()
