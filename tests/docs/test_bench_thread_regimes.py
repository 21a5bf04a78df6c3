"""benchmarks/bench_thread_regimes.py: the paper step sampled at 1 and 2 threads in turn, with the ratios' spread."""

import re

import torch
from data_fixtures.benchmarks import benchmark


def test_each_sample_times_both_steps_at_both_thread_counts_and_the_summary_counts_them(capsys):
    threads = torch.get_num_threads()
    samples = benchmark("bench_thread_regimes").main(["--samples", "3", "--steps", "1", "--target", "10"])
    printed = capsys.readouterr().out
    assert torch.get_num_threads() == threads  # the thread count is given back
    assert set(samples) == {"mdn-1", "floor-1", "mdn-2", "floor-2"}
    assert all(len(v) == 3 and min(v) > 0 for v in samples.values())
    lines = [line for line in printed.splitlines() if "1 thread(s): mdn" in line and "|" in line]
    assert len(lines) == 3  # one line per sample
    first = re.findall(r"ratio (\d+\.\d+)", lines[0])
    assert [float(r) for r in first] == [round(samples[f"mdn-{t}"][0] / samples[f"floor-{t}"][0], 2) for t in (1, 2)]
    assert "2-thread ratio <= 10.0: 100% of the samples" in printed  # every ratio is far below 10
