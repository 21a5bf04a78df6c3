"""Training protocols and what they are made of: the authors' regime as a whole, the scheduler's epoch offset,
fresh evaluation spikes, the validation split, the final / best / last-ten summaries and the authors' NETtalk
score on the first sample of every five."""

import json
import math

import numpy as np
import pytest
import torch

from mdn_snntorch import cli
from mdn_snntorch.pipeline.config import lr_at
from mdn_snntorch.pipeline.loss import first_of_group_cosine
from mdn_snntorch.pipeline.protocols import AUTHORS, protocol_neurons, protocol_settings
from mdn_snntorch.pipeline.run_data import meta_record, validation_split
from mdn_snntorch.pipeline.series import summarise
from mdn_snntorch.pipeline.trainer import TrainConfig, train


def small(data, out, **kw):
    """A small, fast configuration on CPU with one thread."""
    settings = dict(data=data, out=str(out) if out else None, hidden=48, batch_size=50, lr=3e-3, epochs=2, device="cpu")
    return TrainConfig(**{**settings, "threads": 1, "progress": False, **kw})


# ---- the schedule ------------------------------------------------------------------------------
def test_offset_one_is_steplr_stepped_at_the_start_of_every_epoch():
    """The authors call scheduler.step() before each epoch's training: PyTorch's StepLR(50, 0.1) then gives
    epoch e the rate of its step count e + 1, so the drop comes after 49 epochs."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.1)
    with_pytorch = []
    for _ in range(80):
        scheduler.step()  # the authors order it before the epoch (PyTorch warns)
        with_pytorch.append(optimizer.param_groups[0]["lr"])
    ours = [lr_at(1e-3, 0.1, e, 50, offset=1) for e in range(80)]
    assert ours == pytest.approx(with_pytorch)
    assert ours[48] == pytest.approx(1e-3) and ours[49] == pytest.approx(1e-4)
    assert lr_at(1e-3, 0.1, 49, 50) == pytest.approx(1e-3)  # without the offset the drop comes after 50


def test_the_authors_protocol_is_their_whole_regime(digits, tmp_path):
    from data_prep import digits_rows

    on_images = protocol_settings("authors", digits)
    assert on_images == {"protocol": "authors", **AUTHORS, "resample": True, "resample_test": True}
    assert on_images["epochs"] == 80 and on_images["detach_reset"] is False
    assert protocol_settings("authors", digits, "learnable")["theta_per_row"] is True
    rows = digits_rows.convert(tmp_path / "rows.h5", steps_per_row=1)  # stored spikes only: the input stays as it is
    assert "resample" not in protocol_settings("authors", rows) and "analog" not in protocol_settings("authors", rows)
    assert protocol_settings("paper", digits) == {"protocol": "paper"}
    assert protocol_neurons("authors")[-1] == "1st-order-0.2" and protocol_neurons("paper")[-1] == "1st-order"
    with pytest.raises(ValueError, match="protocol must be one of paper, authors"):
        protocol_settings("theirs", digits)


def test_explicit_settings_beat_the_protocol(digits):
    config = TrainConfig.from_protocol("authors", digits, epochs=3, hidden=20)
    assert (config.epochs, config.hidden, config.lr_step, config.protocol) == (3, 20, 50, "authors")
    assert config.resample and config.resample_test and not config.detach_reset


def test_cli_protocol_sits_between_recipe_and_explicit_options(digits, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--data", digits, "--out", str(run), "--recipe", "digits", "--protocol", "authors", "--epochs", "1",
            "--hidden", "16", "--device", "cpu", "--threads", "1", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    config = json.loads((run / "metrics.json").read_text())["config"]
    assert config["protocol"] == "authors" and config["epochs"] == 1 and config["lr_step"] == 50
    assert config["lr_epoch_offset"] == 1 and config["resample_test"] is True and config["detach_reset"] is False
    assert config["batch_size"] == 50  # the recipe's, which the protocol leaves alone


# ---- fresh evaluation spikes -------------------------------------------------------------------------
def test_two_evaluations_of_one_model_differ_only_through_the_spike_draw(digits):
    """With ``resample_test`` the test pass of epoch e draws its spikes from ``(seed, e)``: the same model scores
    differently on two epochs' draws, the same on the same draw, and the file's stored spikes once more otherwise."""
    from mdn_snntorch.pipeline import run_data
    from mdn_snntorch.pipeline.distributed import DistContext
    from mdn_snntorch.pipeline.epochs import EpochLoop

    config = small(digits, None, resample_test=True)
    model = train(config).model
    data = run_data.load(config, torch.device("cpu"))
    loaders = run_data.loaders(data, config, None)
    loop = EpochLoop(model, model, torch.optim.Adam(model.parameters()), DistContext(0, 0, 1), torch.device("cpu"), None)
    scores = [loop.evaluate(loaders.evaluations(epoch)["test"])["loss"] for epoch in (0, 1, 0)]
    assert scores[0] != scores[1] and scores[0] == scores[2]
    fixed = run_data.loaders(data, small(digits, None), None)
    assert loop.evaluate(fixed.evaluations(0)["test"])["loss"] == loop.evaluate(fixed.evaluations(1)["test"])["loss"]
    # the evaluation draws are a stream of their own, not the training stream of that (seed, epoch)
    from mdn_snntorch.pipeline.loader import SpikeLoader

    test_loader = loaders.evaluations(0)["test"]
    training_stream = SpikeLoader(test_loader.dataset, test_loader.batch_size, seed=config.seed, resample=True)
    x_test, _ = next(iter(test_loader))
    x_train_stream, _ = next(iter(training_stream))
    assert set(np.unique(x_test.numpy())) <= {0.0, 1.0} and not torch.equal(x_test, x_train_stream)


# ---- validation split --------------------------------------------------------------------------------
def test_validation_split_is_fixed_by_the_seed_and_disjoint():
    train_idx, val_idx = validation_split(1000, 0.1, seed=3)
    assert len(val_idx) == 100 and len(train_idx) == 900
    assert np.intersect1d(train_idx, val_idx).size == 0 and np.union1d(train_idx, val_idx).tolist() == list(range(1000))
    again, other = validation_split(1000, 0.1, seed=3), validation_split(1000, 0.1, seed=4)
    assert np.array_equal(again[1], val_idx) and not np.array_equal(other[1], val_idx)
    assert len(validation_split(5, 0.01, seed=0)[1]) == 1 and len(validation_split(5, 0.99, seed=0)[1]) == 4
    with pytest.raises(ValueError, match="validation_fraction"):
        validation_split(10, 1.0, seed=0)


def test_a_run_with_a_validation_split_trains_without_it_and_scores_it(digits):
    full = train(small(digits, None, epochs=1))
    held = train(small(digits, None, epochs=3, validation_fraction=0.25))
    assert "val_acc" in held.metrics[0] and "val_acc" not in full.metrics[0]
    assert held.val_acc == held.metrics[-1]["val_acc"] and held.val_acc > 0.5  # it learns, and the held-out part
    assert abs(held.val_acc - held.test_acc) < 0.1  # scores like unseen data
    assert held.metrics[0]["train_loss"] != full.metrics[0]["train_loss"]  # 3/4 of the samples were trained on
    with pytest.raises(ValueError, match="no validation split"):
        _ = full.val_acc
    with pytest.raises(ValueError, match="validation_fraction=1.5"):
        small(digits, None, validation_fraction=1.5)


# ---- summaries ---------------------------------------------------------------------------------------
def test_summary_gives_final_best_and_last_ten():
    rows = [{"epoch": e + 1, "test_acc": acc} for e, acc in enumerate([0.5, 0.9, 0.7] + [0.8] * 10 + [0.6])]
    summary = summarise(rows)["test_acc"]
    assert summary["final"] == 0.6 and summary["best"] == 0.9 and summary["best_epoch"] == 2
    assert summary["last10"] == pytest.approx((0.8 * 9 + 0.6) / 10) and summary["last10_epochs"] == 10
    short = summarise(rows[:3])["test_acc"]
    assert short["last10"] == pytest.approx(0.7) and short["last10_epochs"] == 3
    assert "val_acc" not in summarise(rows)


def test_metrics_json_keeps_the_summary_and_a_bounded_meta_record(digits, tmp_path):
    train(small(digits, tmp_path / "run", epochs=2))
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    accs = [row["test_acc"] for row in doc["epochs"]]
    assert doc["summary"]["test_acc"]["final"] == accs[-1] and doc["summary"]["test_acc"]["best"] == max(accs)
    assert len(doc["data_meta"]["digest"]) == 64 and doc["data_meta"]["dataset"] == "digits"


def test_meta_record_leaves_out_long_values_and_digests_everything():
    meta = {"dataset": "x", "n_inputs": 4, "source": "s" * 10_000, "extra": list(range(5))}
    record = meta_record(meta)
    assert record["dataset"] == "x" and record["n_inputs"] == 4 and "extra" not in record
    assert record["source"].startswith("(10002 characters")
    assert meta_record({**meta, "extra": [0]})["digest"] != record["digest"]


# ---- the authors' NETtalk score ------------------------------------------------------------------------
def test_first_of_group_cosine_scores_the_first_sample_of_every_five_by_the_groups_maximum():
    rates = torch.zeros(1, 7, 3)
    target = torch.tensor([[1.0, 0, 0]] * 7)
    rates[0, 0] = torch.tensor([0.01, 0.01, 0.0])  # below the cut-off itself...
    rates[0, 3] = torch.tensor([0.0, 0.5, 0.0])  # ...but the group's maximum is above: scored
    rates[0, 5] = torch.tensor([0.0, 0.04, 0.0])  # the second group (samples 5, 6) stays below: 0
    rates[0, 6] = torch.tensor([0.0, 0.01, 0.0])
    total = first_of_group_cosine(rates, target)
    assert total.item() == pytest.approx(1 / math.sqrt(2))  # cos((0.01, 0.01, 0), (1, 0, 0)) + 0
    rates[0, 6, 0] = 0.2  # now the second group's maximum reaches 0.05: its first sample is scored (cos = 0)
    assert first_of_group_cosine(rates, target).item() == pytest.approx(1 / math.sqrt(2))
    rates[0, 5, 0] = 0.04
    assert first_of_group_cosine(rates, target).item() == pytest.approx(1 / math.sqrt(2) + 0.04 / math.hypot(0.04, 0.04))


# ---- a data-loader worker that dies ------------------------------------------------------------------------
def test_a_killed_loader_worker_stops_the_run_as_interrupted_and_resume_continues(digits, tmp_path, monkeypatch, capsys):
    """A worker killed (SIGKILL, as the OOM killer does) in epoch 2: one line, exit code 1, ``interrupted`` in
    metrics.json with epoch 1 kept, and ``--resume`` finishes the run."""
    import os
    import signal

    from mdn_snntorch.pipeline import loader

    original = loader.window_batches

    def dies_in_epoch_two(ds, window, *args, **kwargs):
        if os.environ.get("MDN_TEST_KILL_WORKER") and loader.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        yield from original(ds, window, *args, **kwargs)

    monkeypatch.setattr(loader, "window_batches", dies_in_epoch_two)
    run = tmp_path / "run"
    argv = ["train", "--data", digits, "--out", str(run), "--epochs", "2", "--hidden", "16", "--num-workers", "2",
            "--device", "cpu", "--threads", "1", "--no-progress"]  # fmt: skip
    real_evaluate = __import__("mdn_snntorch.pipeline.epochs", fromlist=["EpochLoop"]).EpochLoop.evaluate

    def arm_after_first_epoch(self, loader_):
        scores = real_evaluate(self, loader_)
        monkeypatch.setenv("MDN_TEST_KILL_WORKER", "1")
        return scores

    monkeypatch.setattr("mdn_snntorch.pipeline.epochs.EpochLoop.evaluate", arm_after_first_epoch)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[-1].startswith("mdn train: error: DataLoader worker") and "epoch 2" in err[-1]
    assert "continue with --resume" in err[-1] and "Traceback" not in err[-1]
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["status"] == "interrupted" and doc["epochs_done"] == 1
    monkeypatch.setattr("mdn_snntorch.pipeline.epochs.EpochLoop.evaluate", real_evaluate)
    monkeypatch.delenv("MDN_TEST_KILL_WORKER")
    assert cli.main([*argv, "--resume"]) == 0
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("levels", [255, 7, 2, 128])
def test_fresh_spikes_fire_with_probability_intensity_over_levels(levels):
    """Every intensity 0..L: the firing rate over 40,000 draws within 4 standard errors of intensity / L (a
    draw from bytes without the rejection of the top bytes is off by 1/256 at 255 levels: 0.4 % of a rate)."""
    from mdn_snntorch.pipeline.loader import draw_spikes

    intensity = np.arange(levels + 1, dtype=np.uint8)[None, :]
    rate = draw_spikes(np.random.default_rng(1), intensity, levels, 40_000).mean(0)[0]
    p = intensity[0] / levels
    assert np.all(np.abs(rate - p) <= 4 * np.sqrt(p * (1 - p) / 40_000) + 1e-12)
    assert rate[0] == 0 and rate[-1] == 1
