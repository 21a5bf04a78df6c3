"""Start-up cost: ``import mdn_snntorch`` and ``mdn --help`` against ``import snntorch``.

Each command runs in a fresh interpreter; the three commands are interleaved round by round (so a
busy machine slows them alike) and the median wall time of each is reported with its ratio to
``import snntorch``. Targets: ``import mdn_snntorch`` <= 1.2x, ``mdn --help`` <= 1.5x.

    python benchmarks/bench_import.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import snntorch": [sys.executable, "-c", "import snntorch"],
    "import mdn_snntorch": [sys.executable, "-c", "import mdn_snntorch"],
    "mdn --help": [sys.executable, "-m", "mdn_snntorch", "--help"],
}
TARGETS = {"import mdn_snntorch": 1.2, "mdn --help": 1.5}


def wall_time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the file cache and the bytecode
        wall_time(cmd)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            times[name].append(wall_time(cmd))
    base = statistics.median(times["import snntorch"])
    print(f"{'command':<22} {'median s':>9} {'ratio':>6}  target")
    for name, values in times.items():
        median = statistics.median(values)
        target = f"<= {TARGETS[name]}" if name in TARGETS else "baseline"
        print(f"{name:<22} {median:>9.3f} {median / base:>6.2f}  {target}")


if __name__ == "__main__":
    main()
