"""Theta per batch row (the paper authors' published code): ``ThreeLayerSNN(theta_rows=B)`` and
``TrainConfig(theta_per_row=True)``.

Every row of a batch of exactly B samples has its own learnable theta ([B, N] per layer). Training skips
incomplete batches; the test set runs in chunks of B, the last one padded with silent rows whose outputs
are dropped.
"""

import json

import pytest
import torch

from mdn_snntorch import cli
from mdn_snntorch.pipeline.checkpoint import read_checkpoint
from mdn_snntorch.pipeline.loader import spike_loader
from mdn_snntorch.pipeline.loss import correct, predict, rate_mse_loss
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.pipeline.trainer import TrainConfig, train
from mdn_snntorch.spikefile import SpikeDataset

ROWS = 4


def spikes(t, b, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, b, n, generator=g) < 0.5).float()


def net_with_rows(rows=ROWS, **kwargs):
    torch.manual_seed(0)
    return ThreeLayerSNN(6, 5, 3, neuron="learnable", theta_rows=rows, **kwargs)


def test_theta_has_one_row_per_batch_row():
    net = net_with_rows()
    for layer, n in ((net.hidden, 5), (net.output, 3)):
        for theta in layer.theta:
            assert isinstance(theta, torch.nn.Parameter) and theta.shape == (ROWS, n)
    assert len(net.theta_parameters()) == 8
    out, hidden = net(spikes(7, ROWS, 6), return_hidden=True)
    assert out.shape == (7, ROWS, 3) and hidden.shape == (7, ROWS, 5)
    # without theta_rows the same network has one theta per neuron
    assert ThreeLayerSNN(6, 5, 3, neuron="learnable").hidden.theta_a.shape == (5,)


def test_each_row_uses_its_own_theta():
    """Changing row 0's theta changes only row 0's spikes; a loss on row 0 only reaches row 0 of theta."""
    net = net_with_rows()
    x = spikes(12, ROWS, 6)
    before = net(x, return_hidden=True)[1].detach()
    with torch.no_grad():
        net.hidden.theta_c[0] = 0.45  # reset just below the threshold: row 0 fires far more
    after, hidden = net(x, return_hidden=True)
    assert not torch.equal(hidden[:, 0], before[:, 0])
    assert torch.equal(hidden[:, 1:].detach(), before[:, 1:])
    hidden[:, 0].sum().backward()
    grad = net.hidden.theta_a.grad
    assert grad[0].abs().sum() > 0 and torch.equal(grad[1:], torch.zeros_like(grad[1:]))


@pytest.mark.parametrize("batch", [ROWS - 1, ROWS + 1, 2 * ROWS])
def test_a_batch_of_another_size_is_refused(batch):
    with pytest.raises(ValueError, match=f"theta_rows={ROWS}.*batch of {batch}"):
        net_with_rows()(spikes(5, batch, 6))


@pytest.mark.parametrize("bad", [0, -2, True, 2.0])
def test_theta_rows_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="theta_rows"):
        ThreeLayerSNN(6, 5, 3, neuron="learnable", theta_rows=bad)


def test_spec_round_trip_keeps_theta_rows():
    net = net_with_rows(detach_reset=False)
    spec = net.spec()
    assert spec["theta_rows"] == ROWS and json.loads(json.dumps(spec)) == spec
    twin = ThreeLayerSNN.from_spec(spec)
    twin.load_state_dict(net.state_dict())  # the [B, N] theta fit the rebuilt network
    assert twin.theta_rows == ROWS and twin.hidden.theta_d.shape == (ROWS, 5) and twin.output.theta_b.shape == (ROWS, 3)
    assert twin.hidden.detach_reset is False and twin.output.detach_reset is False
    x = spikes(9, ROWS, 6, seed=1)
    assert torch.equal(net(x), twin(x))
    with pytest.raises(ValueError, match="theta_rows"):
        twin(spikes(9, ROWS + 1, 6))


def test_padding_rows_do_not_change_the_real_rows():
    """The evaluation's padded last chunk: the real rows' outputs equal those of the same rows in a full batch."""
    net = net_with_rows(8)
    x = spikes(10, 8, 6, seed=2)
    full = net(x)
    padded = torch.cat([x[:, :3], torch.zeros(10, 5, 6)], dim=1)
    assert torch.equal(net(padded)[:, :3], full[:, :3])


def test_theta_per_row_needs_the_learnable_neuron():
    with pytest.raises(ValueError, match="theta_per_row needs neuron='learnable'"):
        TrainConfig(data="digits.h5", theta_per_row=True, neuron="2-FS")
    TrainConfig(data="digits.h5", theta_per_row=True, neuron="learnable")  # fine


def padded_test_metrics(model, data, rows):
    """Test accuracy, mean loss and the predicted classes computed here: the test split in chunks of ``rows``,
    the last chunk padded with zero rows whose outputs are dropped."""
    right = n = 0
    loss, predicted = 0.0, set()
    with torch.no_grad():
        for x, y in spike_loader(data, "test", rows):
            k = x.shape[1]
            if k < rows:
                x = torch.cat([x, x.new_zeros(x.shape[0], rows - k, x.shape[2])], dim=1)
            out = model(x)[:, :k]
            right += int(correct(out, y))
            loss += float(rate_mse_loss(out, y)) * k
            predicted |= set(predict(out).tolist())
            n += k
    return right / n, loss / n, predicted


def test_training_with_theta_per_row_on_digits(digits, tmp_path):
    """Batch 64 divides neither split (1347 train, 450 test): the incomplete training batch is skipped and the
    last test chunk is padded. With the undetached reset too, the authors' whole training setup."""
    batch = 64
    n_train, n_test = len(SpikeDataset(digits, "train")), len(SpikeDataset(digits, "test"))
    assert n_train % batch and n_test % batch
    config = TrainConfig(
        data=digits, out=str(tmp_path / "run"), neuron="learnable", theta_per_row=True, detach_reset=False,
        hidden=32, batch_size=batch, epochs=1, lr=1e-2, device="cpu", threads=1, progress=False,
    )  # fmt: skip
    result = train(config)
    model = result.model
    assert model.theta_rows == batch
    assert model.hidden.detach_reset is False and model.output.detach_reset is False
    for layer, n in ((model.hidden, 32), (model.output, 10)):
        for theta in layer.theta:
            assert theta.shape == (batch, n)
    assert not torch.equal(model.hidden.theta_a[0], model.hidden.theta_a[1])  # each row learned from its own samples
    assert result.config["theta_per_row"] is True and result.config["detach_reset"] is False

    # one optimiser step per complete batch: floor(1347 / 64) = 21, the last 3 samples skipped
    checkpoint = read_checkpoint(tmp_path / "run")
    state = checkpoint["optimizer"]["state"]
    theta_group = next(g for g in checkpoint["optimizer"]["param_groups"] if g["name"] == "theta")
    assert len(theta_group["params"]) == 8
    for index in theta_group["params"]:
        assert state[index]["exp_avg"].shape[0] == batch
        assert int(state[index]["step"]) == n_train // batch
    assert checkpoint["model_spec"]["theta_rows"] == batch

    model.eval()
    acc, loss, predicted = padded_test_metrics(model, digits, batch)
    assert len(predicted) > 1  # the outputs differ between samples: the comparison below is not trivial
    assert result.test_acc == pytest.approx(acc, abs=1e-12)
    assert result.metrics[-1]["test_loss"] == pytest.approx(loss, rel=1e-6)


def test_cli_flags_set_theta_per_row_and_the_undetached_reset(digits, tmp_path):
    run = tmp_path / "cli"
    argv = ["train", "--data", digits, "--out", str(run), "--neuron", "learnable", "--theta-per-row", "--undetached-reset",
            "--epochs", "1", "--hidden", "8", "--batch-size", "100", "--device", "cpu", "--threads", "1",
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    config = json.loads((run / "metrics.json").read_text())["config"]
    assert config["theta_per_row"] is True and config["detach_reset"] is False
    assert read_checkpoint(run)["model"]["hidden.theta_a"].shape == (100, 8)


def test_theta_per_row_is_refused_across_processes(digits):
    """Each process would see a slice of the batch, not the rows its theta belong to."""
    from mdn_snntorch.pipeline.distributed import DistContext
    from mdn_snntorch.pipeline.trainer import _Run

    config = TrainConfig(data=digits, neuron="learnable", theta_per_row=True, batch_size=50, hidden=8, device="cpu", threads=1)
    with pytest.raises(ValueError, match="theta_per_row runs in one process only"):
        _Run(config, DistContext(rank=0, local_rank=0, world_size=2), torch.device("cpu"), None)
