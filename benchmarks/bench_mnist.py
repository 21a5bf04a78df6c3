"""Real MNIST, 784-500-10, paper Table 1 settings: test accuracy and time per epoch per neuron type,
and (optionally) meta-neuron discovery on MNIST. Not part of CI.

    /work/shared/datasets/real_mnist.sh /tmp/mnist_real           # raw MNIST, offline, md5-checked
    python benchmarks/bench_mnist.py --raw /tmp/mnist_real --out bench_out/mnist \\
        --neurons 2-FS 1st-order 2-SDS --epochs 20 [--parallel] [--discover-epochs 5]
    # the schedule of the authors' code: 80 epochs, StepLR(50, 0.1), fresh spikes every epoch
    python benchmarks/bench_mnist.py --raw /tmp/mnist_real --out bench_out/mnist80 --epochs 80 \\
        --lr-step 50 --lr-decay 0.1 --resample --parallel

Prints one line per finished epoch and run (test accuracy, seconds per epoch), then a summary with each
neuron's seconds per epoch as a ratio to the first neuron's, measured in the same invocation, and the
learning-speed reference (2-FS 92.7 / 94.9 / 96.3 % after epochs 1 / 2 / 3 at T = 20; docs/model.md#training-schedule).
Writes ``<out>/<neuron>/`` runs, ``<out>/summary.json`` and ``<out>/accuracy.png``; with discovery also
``<out>/spatial.json`` and its figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REFERENCE = {"2-FS": [92.7, 94.9, 96.3], "1st-order": [91.7, 93.6, 94.8], "2-SDS": [89.1, 90.7, 91.5]}
PAPER = {"2-FS": 98.67, "2-RS": 98.33, "2-SDS": 94.87, "2-WDS": 95.34, "1st-order": 98.69}


def spike_file(args) -> Path:
    from data_prep import mnist

    path = Path(args.out) / f"mnist_T{args.time_steps}.h5"
    if not path.exists():
        mnist.convert(path, root=args.raw, time_steps=args.time_steps, seed=0)
    return path


def train_one(data: Path, neuron: str, args) -> list[dict]:
    from mdn_snntorch.pipeline.trainer import TrainConfig, train

    config = TrainConfig(
        data=str(data), out=str(Path(args.out) / neuron), neuron=neuron, epochs=args.epochs, seed=args.seed,
        hidden=500, batch_size=100, lr=1e-3, lr_decay=args.lr_decay, lr_step=args.lr_step, resample=args.resample,
        device=args.device, threads=args.threads, resume=True, progress=not args.quiet, recipe="mnist",
    )  # fmt: skip
    return train(config).metrics


def summarise(args, results: dict[str, list[dict]]) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdn_snntorch.pipeline.report import save_figure

    neurons = list(results)
    base = None
    summary = {
        "time_steps": args.time_steps,
        "epochs": args.epochs,
        "device": args.device,
        "lr_decay": args.lr_decay,
        "lr_step": args.lr_step,
        "resample": args.resample,
        "runs": {},
    }
    schedule = f"{args.lr_decay}^floor(epoch / {args.lr_step})" if args.lr_step > 1 else f"{args.lr_decay}^epoch"
    spikes = "fresh training spikes every epoch" if args.resample else "the file's fixed spikes"
    print(f"\nMNIST 784-500-10, T = {args.time_steps}, batch 100, Adam eta_W 1e-3 x {schedule}, {spikes}")
    for neuron in neurons:
        metrics = results[neuron]
        if not metrics:
            continue
        secs = sum(m["epoch_time_s"] for m in metrics) / len(metrics)
        base = base or secs
        accs = [100 * m["test_acc"] for m in metrics]
        last10 = sum(accs[-10:]) / len(accs[-10:])
        ref = REFERENCE.get(neuron)
        print(
            f"{neuron:>9}: test acc per epoch {' '.join(f'{a:.2f}' for a in accs)}\n"
            f"{'':>9}  final {accs[-1]:.2f} % (best {max(accs):.2f}, mean of the last {len(accs[-10:])} "
            f"{last10:.2f}; paper {PAPER.get(neuron, float('nan')):.2f}), "
            f"{secs:.1f} s/epoch (x{secs / base:.2f} of {neurons[0]})" + (f", reference epochs 1-3: {ref}" if ref else "")
        )
        summary["runs"][neuron] = {
            "test_acc": accs,
            "best": max(accs),
            "mean_last10": last10,
            "s_per_epoch": secs,
            "ratio_to_first": secs / base,
        }
    fig, ax = plt.subplots(figsize=(7, 4))
    for neuron in neurons:
        accs = summary["runs"].get(neuron, {}).get("test_acc", [])
        ax.plot(range(1, len(accs) + 1), accs, marker="o", label=neuron)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"MNIST 784-500-10, T = {args.time_steps}")
    ax.legend()
    save_figure(fig, Path(args.out) / "accuracy.png")
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True, help="folder holding MNIST/raw (real_mnist.sh OUTDIR)")
    p.add_argument("--out", default="bench_out/mnist")
    p.add_argument("--neurons", nargs="+", default=["2-FS", "1st-order", "2-SDS"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--time-steps", type=int, default=20)
    p.add_argument("--lr-decay", type=float, default=0.9)
    p.add_argument("--lr-step", type=int, default=1, help="epochs per decay step (50 with --lr-decay 0.1: the authors' StepLR)")
    p.add_argument("--resample", action="store_true", help="fresh Bernoulli spikes for every training batch of every epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--parallel", action="store_true", help="train the neurons in concurrent processes (one GPU is shared)")
    p.add_argument("--discover-epochs", type=int, default=0, help="also run mdn discover on MNIST for this many epochs")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--only", help=argparse.SUPPRESS)  # internal: one neuron (or 'discover') per process with --parallel
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    data = spike_file(args)

    if args.only == "discover":
        return run_discovery(data, args)
    if args.only:
        train_one(data, args.only, args)
        return 0
    jobs = list(args.neurons) + (["discover"] if args.discover_epochs else [])
    t0 = time.perf_counter()
    if args.parallel:
        procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--only", job]) for job in jobs]
        codes = [proc.wait() for proc in procs]
        if any(codes):
            print(f"some jobs failed: {dict(zip(jobs, codes))}", file=sys.stderr)
    else:
        for job in jobs:
            run_discovery(data, args) if job == "discover" else train_one(data, job, args)
    from mdn_snntorch.pipeline.checkpoint import latest_checkpoint, read_checkpoint

    results = {}
    for neuron in args.neurons:
        ckpt = latest_checkpoint(Path(args.out) / neuron)
        results[neuron] = read_checkpoint(ckpt)["metrics"] if ckpt else []
    summarise(args, results)
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    return 0


def run_discovery(data: Path, args) -> int:
    from mdn_snntorch.pipeline.discover import discover

    library = discover(
        data, Path(args.out) / "spatial.json", seeds=1, epochs=args.discover_epochs, hidden=500, batch_size=100,
        lr=1e-3, lr_theta=1e-3, lr_decay=args.lr_decay, lr_step=args.lr_step, resample=args.resample,
        device=args.device, threads=args.threads, progress=not args.quiet,
    )  # fmt: skip
    clusters = library.provenance["clustering"]
    print(f"discovery: {clusters['ab']['num_centres']} (a, b) x {clusters['cd']['num_centres']} (c, d) centres (paper: 1 x 3)")
    for record in library.provenance["selection"]["candidates"]:
        theta = ", ".join(f"{t:.4f}" for t in record["theta"])
        print(
            f"  {record['id']:<9} ({theta}) support {record['support']:>4} "
            f"{record['status']}: {record.get('name') or record.get('reason')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
