"""snnTorch tutorial 5 (a fully connected SNN trained with BPTT) with MDN neurons, on scikit-learn's digits.

The tutorial's network and loop, with ``snn.Leaky`` swapped for ``mdn.MDN``: the neuron returns
``(spk, u, mem)`` (its recovery variable ``u`` comes before the membrane, like ``snn.Synaptic``'s ``syn``),
``init_mdn()`` gives the initial ``(u, mem)`` like ``init_leaky()`` gives ``mem``. Inputs are 64 pixels,
rate-coded over T = 20 steps with ``snntorch.spikegen.rate``; the loss is ``mse_count_loss``.

Run: ``python examples/tutorial5_fc.py [--epochs 8]`` (about 10 s on a CPU; test accuracy ~ 90 %).
"""

from __future__ import annotations

import snntorch.functional as SF
import torch
from digits import arguments, loaders
from snntorch import spikegen
from torch import nn

import mdn_snntorch as mdn

NUM_STEPS = 20


class Net(nn.Module):
    def __init__(self, num_inputs=64, num_hidden=100, num_outputs=10):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.mdn1 = mdn.MDN("2-FS")  # was: snn.Leaky(beta=0.95)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.mdn2 = mdn.MDN("2-FS")

    def forward(self, x):  # x: [T, B, 64] spikes
        u1, mem1 = self.mdn1.init_mdn()  # was: mem1 = self.lif1.init_leaky()
        u2, mem2 = self.mdn2.init_mdn()
        spk2_rec, mem2_rec = [], []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step])
            spk1, u1, mem1 = self.mdn1(cur1, u1, mem1)  # was: spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, u2, mem2 = self.mdn2(cur2, u2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec)


def main() -> float:
    args = arguments(__doc__.splitlines()[0], epochs=8)
    torch.manual_seed(args.seed)
    train, test = loaders(seed=args.seed)
    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    for epoch in range(args.epochs):
        for images, labels in train:
            spk_rec, _ = net(spikegen.rate(images.flatten(1), num_steps=NUM_STEPS))
            loss = loss_fn(spk_rec, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    with torch.no_grad():
        correct = total = 0
        for images, labels in test:
            spk_rec, _ = net(spikegen.rate(images.flatten(1), num_steps=NUM_STEPS))
            correct += SF.accuracy_rate(spk_rec, labels) * len(labels)
            total += len(labels)
    print(f"test accuracy: {100 * correct / total:.2f} %")
    return correct / total


if __name__ == "__main__":
    main()
