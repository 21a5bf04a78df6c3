"""Training on the embedded digits data: it learns, resumes exactly, checkpoints load, errors are clear."""

import json
import threading

import pytest
import torch

from mdn_snntorch import cli
from mdn_snntorch.pipeline.checkpoint import load_checkpoint
from mdn_snntorch.pipeline.loader import spike_loader
from mdn_snntorch.pipeline.loss import correct
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.pipeline.trainer import NonFiniteLossError, TrainConfig, train

TIME_STEPS = 8


def small(data, out, **kw):
    """A small, fast configuration on CPU with one thread."""
    settings = dict(
        data=data,
        out=str(out) if out else None,
        hidden=48,
        batch_size=50,
        lr=3e-3,
        epochs=2,
        device="cpu",
        threads=1,
        progress=False,
    )
    settings.update(kw)
    return TrainConfig(**settings)


def test_training_learns_digits_and_writes_run_files(digits, tmp_path):
    result = train(small(digits, tmp_path / "run", hidden=100, epochs=4))
    accs = [m["test_acc"] for m in result.metrics]
    # chance is 10 %; a network whose gradients do not reach the weights stays near it
    assert accs[-1] >= 0.80, accs
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"]
    for m in result.metrics:
        assert 0 < m["train_hidden_rate"] < 1 and 0 < m["test_output_rate"] < 1
        assert m["epoch_time_s"] > 0
    assert [m["lr"] for m in result.metrics] == pytest.approx([3e-3 * 0.9**e for e in range(4)])
    assert sorted(p.name for p in (tmp_path / "run").glob("epoch_*.pt")) == [f"epoch_00{e}.pt" for e in range(1, 5)]
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["status"] == "finished" and [m["epoch"] for m in doc["epochs"]] == [1, 2, 3, 4]
    csv_lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,") and len(csv_lines) == 5


def test_load_checkpoint_gives_the_trained_model(digits, tmp_path):
    result = train(small(digits, tmp_path / "run", epochs=1))
    loaded = load_checkpoint(tmp_path / "run")
    model = loaded["model"]
    assert isinstance(model, ThreeLayerSNN) and not model.training
    assert loaded["config"]["hidden"] == 48 and loaded["epoch"] == 1 and len(loaded["metrics"]) == 1
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    right = n = 0
    with torch.no_grad():
        for x, y in spike_loader(digits, "test", 500):
            right += int(correct(model(x), y))
            n += len(y)
    assert right / n == pytest.approx(loaded["metrics"][-1]["test_acc"])


def test_resume_equals_uninterrupted_run(digits, tmp_path):
    """Learnable theta too (its own learning rate), so the optimiser state of both groups must resume. The resumed
    epoch reads each batch when asked for instead of ahead (a setting a resume may change): the same batches."""
    whole = train(small(digits, tmp_path / "whole", neuron="learnable", lr_theta=1e-3, epochs=3))
    train(small(digits, tmp_path / "split", neuron="learnable", lr_theta=1e-3, epochs=2))
    resumed = train(small(digits, tmp_path / "split", neuron="learnable", lr_theta=1e-3, epochs=3, resume=True, prefetch=0))
    assert len(resumed.metrics) == 3
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert [m["test_acc"] for m in resumed.metrics] == [m["test_acc"] for m in whole.metrics]
    assert resumed.metrics[-1]["train_loss"] == whole.metrics[-1]["train_loss"]
    theta = load_checkpoint(tmp_path / "split")["theta"]
    assert set(theta) == {f"{layer}.theta_{p}" for layer in ("hidden", "output") for p in "abcd"}
    assert not torch.equal(theta["hidden.theta_a"], torch.full((48,), 0.02))  # theta did learn


def test_same_seed_same_run_other_seed_other_run(digits):
    a, b, c = (train(small(digits, None, epochs=1, seed=s)) for s in (3, 3, 4))
    assert torch.equal(a.model.fc1.weight, b.model.fc1.weight)
    assert a.metrics[0]["train_loss"] == b.metrics[0]["train_loss"]
    assert not torch.equal(a.model.fc1.weight, c.model.fc1.weight)


def test_bf16_autocast_trains(digits):
    result = train(small(digits, None, epochs=2, bf16=True, hidden=100))
    assert result.model.fc1.weight.dtype == torch.float32
    assert result.metrics[-1]["test_acc"] > 0.5


def test_non_finite_gradient_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    run = tmp_path / "run"
    train(small(digits, run, neuron="learnable", epochs=1))
    good = (run / "epoch_001.pt").read_bytes()
    # eta_D = 1e6 throws theta far out after the first step of epoch 2: V and U overflow
    with pytest.raises(NonFiniteLossError) as err:
        train(small(digits, run, neuron="learnable", epochs=2, lr_theta=1e6, resume=True))
    assert err.value.epoch == 2 and err.value.batch >= 2
    assert "epoch 2, batch" in str(err.value) and "epoch_001.pt" in str(err.value)
    # the loader's read-ahead thread stopped with the epoch, though the error's traceback is still held
    assert not [t for t in threading.enumerate() if t.name == "mdn-read-ahead"]
    assert (run / "epoch_001.pt").read_bytes() == good and not (run / "epoch_002.pt").exists()
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["status"] == "stopped" and doc["epochs_done"] == 1 and "epoch 2" in doc["error"]
    assert load_checkpoint(run)["epoch"] == 1


def test_input_size_mismatch_is_refused(digits):
    with pytest.raises(ValueError, match=r"64 inputs.*expects 784"):
        train(small(digits, None), model=ThreeLayerSNN(784, 48, 10))


def test_resume_on_a_regenerated_file_of_another_size_is_refused(tmp_path):
    from data_prep import digits, digits_rows

    data = tmp_path / "task.h5"
    digits.convert(data, time_steps=TIME_STEPS)
    train(small(str(data), tmp_path / "run", epochs=1))
    digits_rows.convert(data, steps_per_row=1, force=True)
    with pytest.raises(ValueError, match=r"8 inputs per time step.*expects 64"):
        train(small(str(data), tmp_path / "run", epochs=2, resume=True))


def test_step_schedule_decays_every_lr_step_epochs_and_applies_to_the_optimiser(digits, tmp_path):
    """lr(e) = lr * gamma^floor(e / k): StepLR(step_size=2, gamma=0.1) over 5 epochs, weights and theta alike."""
    seen = []
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(tuple(group["lr"] for group in self.param_groups))
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        result = train(small(digits, None, neuron="learnable", lr_theta=1e-3, epochs=5, lr_decay=0.1, lr_step=2))
    finally:
        torch.optim.Adam.step = original
    factors = [1, 1, 0.1, 0.1, 0.01]
    assert [m["lr"] for m in result.metrics] == pytest.approx([3e-3 * f for f in factors])
    assert [m["lr_theta"] for m in result.metrics] == pytest.approx([1e-3 * f for f in factors])
    steps_per_epoch = len(seen) // 5
    first_step_of_each_epoch = [lr for e in range(5) for lr in seen[e * steps_per_epoch]]
    assert first_step_of_each_epoch == pytest.approx([lr * f for f in factors for lr in (3e-3, 1e-3)])
    with pytest.raises(ValueError, match="lr_step=0"):
        small(digits, None, lr_step=0)


def test_resampled_training_redraws_spikes_and_resumes_exactly(digits, tmp_path):
    """``resample``: fresh Bernoulli spikes each epoch from the stored intensities, still a function of the seed."""
    fixed = train(small(digits, None, epochs=1))
    whole = train(small(digits, tmp_path / "whole", epochs=3, resample=True))
    assert whole.metrics[0]["train_loss"] != fixed.metrics[0]["train_loss"]  # other spikes, same weights and order
    assert whole.metrics[-1]["test_acc"] >= 0.75  # it still learns (the test spikes are the stored ones)
    train(small(digits, tmp_path / "split", epochs=2, resample=True))
    resumed = train(small(digits, tmp_path / "split", epochs=3, resample=True, resume=True))
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="resample=False.*resample=True"):
        train(small(digits, tmp_path / "split", epochs=4, resume=True))
    assert TrainConfig.saved_value({}, "resample") is False  # runs saved before the setting existed did not resample


def test_resample_on_a_file_without_intensities_is_refused(tmp_path, capsys):
    from data_prep import digits_rows

    rows = digits_rows.convert(tmp_path / "rows.h5", steps_per_row=1)
    assert run_cli("--data", rows, "--out", tmp_path / "run", "--resample", "--device", "cpu", "--no-progress") == 2
    assert "rows.h5: split 'train' keeps no intensities" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_changed_setting(digits, tmp_path):
    train(small(digits, tmp_path / "run", epochs=1))
    with pytest.raises(ValueError, match="hidden=32.*hidden=48"):
        train(small(digits, tmp_path / "run", epochs=2, hidden=32, resume=True))


def run_cli(*argv):
    return cli.main(["train", *map(str, argv)])


def test_cli_trains_and_refuses_bad_arguments(digits, tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["--hidden", 32, "--epochs", 1, "--batch-size", 50, "--device", "cpu", "--threads", 1, "--no-progress"]
    assert run_cli("--data", digits, "--neuron", "2-RS", "--out", out, "--recipe", "digits", *common) == 0
    assert "test accuracy" in capsys.readouterr().out
    cfg = load_checkpoint(out)["config"]
    assert cfg["neuron"] == "2-RS" and cfg["recipe"] == "digits" and cfg["lr"] == 3e-3 and cfg["hidden"] == 32
    assert cfg["lr_step"] == 1
    # --preset is accepted as another name for --recipe
    resume = ["--data", digits, "--neuron", "2-RS", "--preset", "digits", "--out", out, *common[:2], "--epochs", 2, *common[4:]]
    assert run_cli(*resume, "--lr-decay", 0.5, "--lr-step", 5, "--resume") == 0
    assert load_checkpoint(out)["config"]["lr_step"] == 5 and load_checkpoint(out)["metrics"][-1]["lr"] == 3e-3

    assert run_cli("--data", digits, "--out", out, *common) == 2  # run exists, no --resume
    assert "--resume" in capsys.readouterr().err
    assert run_cli("--data", digits, "--neuron", "2-XX", "--out", tmp_path / "x", *common) == 2
    assert "2-XX" in capsys.readouterr().err
    assert run_cli("--data", tmp_path / "missing.h5", "--out", tmp_path / "y", *common) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert run_cli("--data", digits, "--out", tmp_path / "z", *common[:2], "--epochs", 0, *common[4:]) == 2
    assert "epochs=0" in capsys.readouterr().err
    assert run_cli("--data", digits, "--preset", "imagenet", "--out", tmp_path / "w", *common) == 2
    assert "imagenet" in capsys.readouterr().err


def test_cli_reports_non_finite_loss_with_exit_code_1(digits, tmp_path, capsys):
    out = tmp_path / "run"
    common = [
        "--data",
        digits,
        "--neuron",
        "learnable",
        "--out",
        out,
        "--hidden",
        48,
        "--batch-size",
        50,
        "--device",
        "cpu",
        "--threads",
        1,
        "--no-progress",
    ]
    assert run_cli(*common, "--epochs", 1) == 0
    assert run_cli(*common, "--epochs", 2, "--lr-theta", 1e6, "--resume") == 1
    assert "at epoch 2, batch" in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [(-1, "prefetch=-1 is out of range"), (1.5, "prefetch=1.5 must be an integer")])
def test_bad_prefetch_setting(digits, value, message):
    with pytest.raises(ValueError, match=message):
        small(digits, None, prefetch=value)
