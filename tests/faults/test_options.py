"""Every numeric option is range-checked by its argparse type: one line, exit code 2, nothing created."""

from __future__ import annotations

import pytest
from data_fixtures.faults import TRAIN

from mdn_snntorch.pipeline.trainer import TrainConfig


def _train(*bad):
    return ["train", "--data", "{data}", "--out", "{out}", *TRAIN, *bad]


@pytest.mark.parametrize(
    "argv, message",
    [
        (_train("--threads", -1), "argument --threads: threads=-1 is out of range (an integer in 1..4096)"),
        (_train("--threads", 0), "threads=0 is out of range"),
        (_train("--device", "tpu"), "argument --device: device 'tpu' is not one of auto, cpu, cuda, cuda:N, mps"),
        (_train("--lr", "1e300"), "argument --lr: lr=1e300 is out of range (a finite number in (0, 1e+06])"),
        (_train("--lr", "nan"), "lr=nan is out of range"),
        (_train("--lr", "-0.1"), "lr=-0.1 is out of range"),
        (_train("--lr-theta", "inf"), "lr_theta=inf is out of range"),
        (_train("--lr-decay", 2), "lr_decay=2 is out of range"),
        (_train("--seed", 2**70), f"argument --seed: seed={2**70} is out of range (an integer in 0..4294967295)"),
        (_train("--seed", -1), "seed=-1 is out of range"),
        (_train("--epochs", 0), "epochs=0 is out of range"),
        (_train("--batch-size", "1.5"), "batch_size='1.5' is not an integer"),
        (_train("--num-workers", -1), "num_workers=-1 is out of range"),
        (_train("--prefetch", -1), "prefetch=-1 is out of range"),
        (_train("--hidden", 10**9), "hidden=1000000000 is out of range"),
        (_train("--dt", 0), "dt=0 is out of range"),
        (["prep", "digits", "--out", "{out}", "--time-steps", "1e9"], "time_steps='1e9' is not an integer"),
        (["prep", "digits", "--out", "{out}", "--time-steps", 10**9], "time_steps=1000000000 is out of range (an integer"),
        (["prep", "digits", "--out", "{out}", "--seed", -1], "seed=-1 is out of range"),
        (["prep", "digits_rows", "--out", "{out}", "--steps-per-row", 0], "steps_per_row=0 is out of range"),
        (["evaluate", "--data", "{data}", "--out", "{out}", "--seeds", 0], "seeds=0 is out of range"),
        (["discover", "--data", "{data}", "--out", "{out}", "--quantile", 2], "quantile=2 is out of range"),
        (["validate", "--out", "{out}", "--seed", 2**70], "seed=1180591620717411303424 is out of range"),
        (["validate", "--out", "{out}", "--per-type", 2], "per_type=2 is out of range"),
    ],
    ids=lambda v: " ".join(map(str, [v[0], *v[-2:]])) if isinstance(v, list) else "",
)  # fmt: skip
def test_bad_option_values_are_refused_in_one_line(mdn, spikes, tmp_path, argv, message):
    out = tmp_path / "out"
    r = mdn(*(str(a).format(data=spikes, out=out) for a in argv))
    command = " ".join(argv[:2]) if argv[0] == "prep" else argv[0]
    assert r.code == 2 and r.line.startswith(f"mdn {command}: error: ") and message in r.line, r.line
    assert len(r.err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize(
    "setting, message",
    [
        (dict(threads=-1), "threads=-1"),
        (dict(device="tpu"), "device='tpu'"),
        (dict(lr=1e300), "lr=1e+300"),
        (dict(seed=2**70), "seed="),
        (dict(hidden=10.5), "hidden=10.5 must be an integer"),
        (dict(neuron="2-XX"), "unknown neuron '2-XX'"),
        (dict(neuron={"name": "x", "order": 2, "theta": ["a", 1, 2, 3]}), "field 'theta'"),
    ],
)
def test_the_python_api_checks_the_same(setting, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        TrainConfig(data="x.h5", **setting)
