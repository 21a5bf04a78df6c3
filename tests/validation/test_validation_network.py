"""Network replay: a ThreeLayerSNN trained on the embedded digits, rebuilt in Brian2, against snnTorch."""

import copy
import json

import numpy as np
import pytest
import torch
from data_fixtures.spikes import make_spike_file

from mdn_snntorch import cli
from mdn_snntorch.pipeline.checkpoint import load_checkpoint
from mdn_snntorch.pipeline.trainer import TrainConfig, train
from mdn_snntorch.spikefile import SpikeDataset
from validation.network import brian2_counts, replay, snntorch_counts

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # pyparsing, inside Brian2

SAMPLES = 120


def _trained(digits, out, hidden_neuron, output_neuron, epochs):
    settings = dict(
        data=digits, out=str(out), hidden=32, batch_size=50, lr=1e-2, epochs=epochs, device="cpu", threads=1, progress=False
    )
    train(TrainConfig(neuron=hidden_neuron, output_neuron=output_neuron, **settings))
    return out


@pytest.fixture(scope="module")
def learnable_run(digits, tmp_path_factory):
    """Per-neuron learned theta in both layers."""
    return _trained(digits, tmp_path_factory.mktemp("learnable"), "learnable", "learnable", epochs=3)


@pytest.mark.parametrize("layers", [("learnable", "learnable"), ("1st-order", "2-RS")])
def test_brian2_replay_predicts_as_snntorch(digits, learnable_run, tmp_path, layers):
    run = learnable_run if layers[0] == "learnable" else _trained(digits, tmp_path / "run", *layers, epochs=2)
    result = replay(run, digits, samples=SAMPLES)
    assert len(result.truth) == SAMPLES and result.steps == 8
    brian2 = result.counts["brian2"]
    assert brian2.sum() > SAMPLES and (brian2.max(axis=0) > 0).sum() >= 5  # a network that fires, not a silent one
    for name in ("snntorch-float64", "snntorch-float32"):
        agreement = result.agreement(name)
        assert agreement["same_prediction"] >= 0.99 and agreement["identical_counts"] >= 0.99, (name, agreement)
        assert abs(result.accuracy(name) - result.accuracy("brian2")) <= 0.01
    assert result.accuracy("brian2") > 0.5  # chance is 0.1
    if layers[0] == "learnable":
        theta_a = load_checkpoint(run)["model"].hidden.theta_a.detach()
        assert theta_a.shape == (32,) and theta_a.std() > 0  # really per neuron, really learned


def test_replay_is_sensitive_to_the_weights(digits, learnable_run):
    """A replay that agreed whatever Brian2 computed would be worthless: perturb one weight row."""
    model = load_checkpoint(learnable_run)["model"]
    test = SpikeDataset(digits, "test")
    spikes = np.stack([test[i][0].numpy() for i in range(40)])
    changed = copy.deepcopy(model)
    changed.fc2.bias.data[3] += 1.0
    assert not np.array_equal(brian2_counts(changed, spikes), snntorch_counts(model, spikes, torch.float64))
    np.testing.assert_array_equal(brian2_counts(model, spikes), snntorch_counts(model, spikes, torch.float64))


def test_checkpoint_that_does_not_match_the_data_is_refused(learnable_run, tmp_path, capsys):
    other = make_spike_file(tmp_path / "ids.h5", n_train=6, n_test=6)  # 21 inputs, 5 classes
    with pytest.raises(ValueError, match=r"does not match data .*ids\.h5.*64 inputs.*n_inputs=21"):
        replay(learnable_run, other, samples=4)
    rc = cli.main(
        [
            "validate",
            "--neurons",
            "2-FS",
            "--quick",
            "--checkpoint",
            str(learnable_run),
            "--data",
            str(other),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert rc == 2 and "ids.h5" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_reports_the_network_replay(digits, learnable_run, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["validate", "--neurons", "2-FS", "--quick", "--per-type", "4", "--steps", "150", "--out", str(out), "--no-progress"]
    rc = cli.main([*argv, "--checkpoint", str(learnable_run), "--data", digits, "--samples", "50"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "PASS  network replay: snntorch-float64 predicts as Brian2" in printed
    net = json.loads((out / "metrics.json").read_text())["network"]
    assert net["samples"] == 50 and net["agreement"]["snntorch-float64"]["same_prediction"] >= 0.99
    assert set(net["accuracy"]) == {"brian2", "snntorch-float64", "snntorch-float32"}
    assert (out / "network_counts.png").is_file() and "Network replay" in (out / "report.md").read_text()
