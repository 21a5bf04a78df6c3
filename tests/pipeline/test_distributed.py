"""Data-parallel training: ``torchrun --nproc_per_node=2`` with gloo on CPU takes the same steps as one
process with the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

from mdn_snntorch.pipeline.checkpoint import load_checkpoint


def mdn_train(launcher, data, out):
    # batch 150 does not divide the 1347 training samples: the last batch (147 rows) splits 74 / 73.
    # 18 steps: the per-step gradients agree to ~1e-8, but a threshold can amplify that into a flipped
    # spike and a different trajectory over hundreds of steps, so the run is kept short.
    args = ["-m", "mdn_snntorch", "train", "--data", data, "--out", str(out), "--neuron", "learnable", "--hidden", "32",
            "--epochs", "2", "--batch-size", "150", "--lr", "3e-3", "--device", "cpu", "--threads", "1",
            "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *launcher, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_checkpoint(out)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(digits, tmp_path):
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = mdn_train(torchrun, digits, tmp_path / "ddp")
    single = mdn_train([], digits, tmp_path / "single")
    assert ddp["config"]["batch_size"] == single["config"]["batch_size"] == 150
    for name, tensor in single["model"].state_dict().items():
        torch.testing.assert_close(ddp["model"].state_dict()[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(ddp["metrics"], single["metrics"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=2 / 450)  # at most 2 of 450 test digits differ
        assert a["train_hidden_rate"] == pytest.approx(b["train_hidden_rate"], rel=1e-3)
    # rank 0 alone wrote the files, and the metrics count every sample once
    doc = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert doc["status"] == "finished" and len(doc["epochs"]) == 2
