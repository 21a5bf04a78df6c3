"""Does redrawing the Bernoulli spikes every epoch close the MNIST gap? Not part of CI.

The spike files of ``mdn prep`` hold one spike realisation per image, drawn once at conversion, so
every epoch shows the network the same noise. This benchmark trains the same model, loss, optimiser and
schedule as ``mdn train`` (784-500-10, batch 100, Adam 1e-3 x decay^epoch) but draws fresh spikes
``x_t ~ Bernoulli(pixel / 255)`` for every batch of every epoch (test spikes: one fixed draw), reading
MNIST straight from torchvision's raw files.

    python benchmarks/bench_mnist_resample.py --raw /tmp/mnist_real --neuron 2-FS --epochs 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torchvision import datasets

from mdn_snntorch.loss import correct, rate_mse_loss
from mdn_snntorch.models import ThreeLayerSNN
from mdn_snntorch.train import lr_at


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True)
    p.add_argument("--neuron", default="2-FS")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--time-steps", type=int, default=20)
    p.add_argument("--lr-decay", type=float, default=0.9)
    p.add_argument("--lr-step", type=int, default=1, help="epochs per decay step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke test)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="write the per-epoch results here")
    args = p.parse_args()
    dev = torch.device(args.device)
    train = datasets.MNIST(args.raw, train=True, download=False)
    test = datasets.MNIST(args.raw, train=False, download=False)
    xtr = train.data.reshape(-1, 784).float().div(255).to(dev)
    ytr = train.targets.to(dev)
    if args.limit:
        xtr, ytr = xtr[: args.limit], ytr[: args.limit]
    xte, yte = test.data.reshape(-1, 784).float().div(255).to(dev), test.targets.to(dev)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    test_spikes = [(torch.rand(args.time_steps, len(xb), 784, generator=gen, device=dev) < xb).float() for xb in xte.split(1000)]
    torch.manual_seed(args.seed)
    model = ThreeLayerSNN(784, 500, 10, neuron=args.neuron).to(dev)
    for layer in (model.hidden, model.output):
        layer.check_input = False
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = []
    for epoch in range(args.epochs):
        for group in opt.param_groups:
            group["lr"] = lr_at(1e-3, args.lr_decay, epoch, args.lr_step)
        t0 = time.perf_counter()
        order = torch.randperm(len(xtr), generator=gen, device=dev)
        right = 0
        for idx in order.split(100):
            x = (torch.rand(args.time_steps, len(idx), 784, generator=gen, device=dev) < xtr[idx]).float()
            out = model(x)
            loss = rate_mse_loss(out, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            right += int(correct(out, ytr[idx]))
        secs = time.perf_counter() - t0
        with torch.no_grad():
            test_right = sum(int(correct(model(x), y)) for x, y in zip(test_spikes, yte.split(1000)))
        rows.append({"epoch": epoch + 1, "train_acc": right / len(xtr), "test_acc": test_right / len(xte), "epoch_time_s": secs})
        print(f"{args.neuron} resampled epoch {epoch + 1}: train {100 * right / len(xtr):.2f}% test {100 * test_right / len(xte):.2f}% {secs:.1f} s", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"neuron": args.neuron, "time_steps": args.time_steps, "lr_decay": args.lr_decay, "lr_step": args.lr_step, "epochs": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
