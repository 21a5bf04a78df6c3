"""The paper's method on your own network: meta neurons generated from a conv net, frozen, transferred to a new task.

1. A conv net (Conv2d-MaxPool-MDN x 2, Linear-MDN) with one learnable theta per channel
   (``param_shape=(C, 1, 1)``) and per output neuron is trained in a plain loop on scikit-learn's digits.
2. ``collect_theta`` takes theta of its 8 + 16 + 10 neurons; ``generate`` clusters them and filters the
   candidates. The accuracy criterion: each candidate, frozen into a fresh conv net (``freeze``), is trained
   ``--accuracy-epochs`` epochs on the training images less a validation split (10 %, drawn with the seed)
   and scored on that split; the test images take no part in the choice.
3. ``save_library`` writes the library (and Fig. 3 / Fig. 4 beside it).
4. Transfer: the generated neurons and the paper's presets, each frozen into a fresh network, are trained on
   the source task and on digits row by row (one 8-pixel row per time step, a temporal task); the table
   gives their test accuracy, then Eq. 7 capability per task and Fig. 8's spatial and temporal capability.

Run: ``python examples/own_network_discovery.py [--epochs 4] [--accuracy-epochs 2] [--out discovery_out]``
(about a minute on a CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import snntorch.functional as SF
import torch
from digits import loaders
from snntorch import spikegen
from torch import nn
from torch.utils.data import DataLoader, Subset

import mdn_snntorch as mdn
from mdn_snntorch.discovery import capability, capability_figure, collect_theta, freeze, generate, group_capability

NUM_STEPS = 12
STEPS_PER_ROW = 4
PRESETS = ("2-FS", "2-RS", "2-SDS", "2-WDS")
VALIDATION_FRACTION = 0.1


def conv_net() -> nn.Sequential:
    """Conv2d(1, 8)-MaxPool-MDN-Conv2d(8, 16)-MaxPool-MDN-Linear(64, 10)-MDN on [T, B, 1, 8, 8], learnable theta."""
    return nn.Sequential(
        mdn.TimeDistributed(nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)),
        mdn.MDN("init", param_shape=(8, 1, 1), learn_theta=True, input_sigmoid=False, init_hidden=True, step_mode="multi"),
        mdn.TimeDistributed(nn.Conv2d(8, 16, 3, padding=1), nn.MaxPool2d(2)),
        mdn.MDN("init", param_shape=(16, 1, 1), learn_theta=True, input_sigmoid=False, init_hidden=True, step_mode="multi"),
        mdn.TimeDistributed(nn.Flatten(), nn.Linear(16 * 2 * 2, 10)),
        mdn.MDN("init", num_neurons=10, learn_theta=True, init_hidden=True, output=True, step_mode="multi"),
    )


def rows_net() -> nn.Sequential:
    """Linear(8, 100)-MDN-Linear(100, 10)-MDN on rows [T, B, 8] (the transfer task's network)."""
    return nn.Sequential(
        mdn.TimeDistributed(nn.Linear(8, 100)),
        mdn.MDN("init", num_neurons=100, learn_theta=True, init_hidden=True, step_mode="multi"),
        mdn.TimeDistributed(nn.Linear(100, 10)),
        mdn.MDN("init", num_neurons=10, learn_theta=True, init_hidden=True, output=True, step_mode="multi"),
    )


def images(x: torch.Tensor) -> torch.Tensor:
    """The source task: the whole image every step, rate-coded, [T, B, 1, 8, 8]."""
    return spikegen.rate(x, num_steps=NUM_STEPS)


def rows(x: torch.Tensor) -> torch.Tensor:
    """The transfer task: one rate-coded 8-pixel row at a time, [8 * STEPS_PER_ROW, B, 8]."""
    return torch.cat([spikegen.rate(x[:, 0, r], num_steps=STEPS_PER_ROW) for r in range(8)])


def fit(net: nn.Module, data: DataLoader, encode, epochs: int, log: bool = False) -> nn.Module:
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    for epoch in range(epochs):
        for x, labels in data:
            mdn.reset(net)
            loss = loss_fn(net(encode(x))[0], labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if log:
            print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    return net


@torch.no_grad()
def score(net: nn.Module, data: DataLoader, encode) -> float:
    correct = total = 0
    for x, labels in data:
        mdn.reset(net)
        correct += SF.accuracy_rate(net(encode(x))[0], labels) * len(labels)
        total += len(labels)
    return correct / total


def validation_split(train: DataLoader, seed: int) -> tuple[DataLoader, DataLoader]:
    """The training images less a validation split, and that split (``VALIDATION_FRACTION``, drawn with the seed)."""
    n = len(train.dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = int(VALIDATION_FRACTION * n)
    rest = DataLoader(Subset(train.dataset, order[held:]), batch_size=train.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return rest, DataLoader(Subset(train.dataset, order[:held]), batch_size=256)


def transfer(neurons, train, test, epochs: int, seed: int) -> dict[str, dict[str, float]]:
    """Test accuracy of each neuron type, frozen into fresh networks, on the source task and row by row."""
    table: dict[str, dict[str, float]] = {"digits": {}, "digits_rows": {}}
    for name, neuron in neurons.items():
        for task, build, encode in (("digits", conv_net, images), ("digits_rows", rows_net, rows)):
            torch.manual_seed(seed)
            net = fit(freeze(build(), neuron), train, encode, epochs)
            table[task][name] = 100 * score(net, test, encode)
    return table


def main() -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the source training and of each transfer run")
    parser.add_argument("--accuracy-epochs", type=int, default=2, help="epochs of each candidate for the accuracy criterion")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("discovery_out"), help="folder for the library and figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, test = loaders(seed=args.seed)
    net = fit(conv_net(), train, images, args.epochs, log=True)  # 1. learn theta on the source task

    points = collect_theta(net)  # 2. theta of every neuron, named by layer
    print(f"theta points: {points.layers}")
    rest, validation = validation_split(train, args.seed)

    def accuracy(neuron: mdn.MetaNeuron) -> float:  # the paper's criterion, on the validation split
        torch.manual_seed(args.seed)
        return score(fit(freeze(conv_net(), neuron), rest, images, args.accuracy_epochs), validation, images)

    made = generate(points, accuracy=accuracy, prefix="conv")
    for r in made.candidates:
        acc = f"validation {100 * r['accuracy']:.1f} %" if "accuracy" in r else ""
        print(f"  {r['id']:<8} theta ({', '.join(f'{t:.3f}' for t in r['theta'])}) support {r['support']:>2} {acc} "
              f"{r['status']}: {r.get('name') or r['reason']}")  # fmt: skip
    library = args.out / "conv.json"  # 3. the library, Fig. 3 and Fig. 4
    mdn.save_library(library, made.library.neurons, made.library.provenance)
    made.figure(args.out / "conv_fig3.png")
    made.figure(args.out / "conv_fig4.png", "dynamics")
    print(f"{len(made.library.neurons)} meta neuron(s) written to {library}")

    neurons = {n.name: n for n in made.library.neurons} | {name: name for name in PRESETS}  # 4. transfer
    table = transfer(neurons, train, test, args.epochs, args.seed)
    caps = capability(table)
    groups = group_capability(caps, {"digits": "spatial", "digits_rows": "temporal"})
    capability_figure(groups, args.out / "capability.png")
    print("test accuracy % (capability, Eq. 7):")
    print(f"  {'neuron':<8} {'digits':>16} {'digits_rows':>16}")
    for name in neurons:
        cells = "".join(f" {table[t][name]:>7.2f} ({caps[t][name]:+.2f})" for t in table)
        print(f"  {name:<8}{cells}")
    return table


if __name__ == "__main__":
    main()
