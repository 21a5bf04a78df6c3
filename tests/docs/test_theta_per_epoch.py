"""benchmarks/theta_per_epoch.py: the mean learnable theta of each layer in every checkpoint of a run."""

import json

import pytest
import torch
from data_fixtures.benchmarks import benchmark

from mdn_snntorch.pipeline.trainer import TrainConfig, train


def _script():
    return benchmark("theta_per_epoch")


def test_each_checkpoint_gives_its_layers_mean_theta(digits, tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(data=digits, out=str(run), neuron="learnable", epochs=2, hidden=12, batch_size=100, lr=3e-3,
                         lr_theta=1e-2, threads=1, progress=False)  # fmt: skip
    train(config)
    script = _script()
    assert script.main([f"learnable={run}", "--out", str(tmp_path / "theta.json")]) == 0
    rows = json.loads((tmp_path / "theta.json").read_text())["learnable"]
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        model = torch.load(run / f"epoch_{row['epoch']:03d}.pt", weights_only=True)["model"]
        assert set(row["layers"]) == {"hidden", "output"}
        for layer, means in row["layers"].items():
            assert means == pytest.approx([float(model[f"{layer}.{p}"].double().mean()) for p in script.PARAMETERS], abs=0)
    assert rows[0]["layers"]["hidden"] != rows[1]["layers"]["hidden"], "theta learns between epochs"
    assert "| learnable | 2 |" in (tmp_path / "theta.md").read_text()


def test_a_folder_without_checkpoints_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: no epoch_NNN.pt checkpoint"):
        _script().run_theta(tmp_path)
