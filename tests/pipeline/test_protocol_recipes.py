"""``mdn train --protocol authors`` on every recipe: the recipe's batch and learning rates, the authors' schedule
and reset, fresh spikes where the file stores intensities, and the scored-subset cosine on bit targets."""

import json

import numpy as np
import pytest

from mdn_snntorch import cli
from mdn_snntorch.pipeline import recipes
from mdn_snntorch.spikefile import write_arrays


@pytest.fixture(scope="module")
def files(digits, tmp_path_factory):
    """One small file per kind of input: intensities (the digits), stored spikes only (digits row by row) and
    bit-vector targets (NETtalk-like)."""
    from data_prep import digits_rows

    folder = tmp_path_factory.mktemp("recipes")
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2, (4, 6), dtype=np.uint8)
    pick = rng.integers(0, 4, 80)
    spikes = rng.random((80, 5, 12)) < 0.3
    bits = write_arrays(folder / "bits.h5", (spikes[:60], codes[pick[:60]]), (spikes[60:], codes[pick[60:]]),
                        name="bits", encoding="stored", codes=codes)  # fmt: skip
    rows = digits_rows.convert(folder / "rows.h5", steps_per_row=1)
    return {"intensities": digits, "stored spikes": str(rows), "bit targets": str(bits)}


def _input(recipe: str) -> str:
    if recipe == "nettalk":
        return "bit targets"
    return "stored spikes" if recipes.kind(recipe) == "temporal" else "intensities"


@pytest.mark.parametrize("recipe", list(recipes.RECIPES))
def test_the_authors_protocol_runs_on_every_recipe(recipe, files, tmp_path):
    kind = _input(recipe)
    run = tmp_path / "run"
    argv = ["train", "--data", files[kind], "--out", str(run), "--recipe", recipe, "--protocol", "authors",
            "--epochs", "1", "--hidden", "8", "--device", "cpu", "--threads", "1", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    doc = json.loads((run / "metrics.json").read_text())
    config, row = doc["config"], doc["epochs"][-1]
    assert doc["status"] == "finished" and config["protocol"] == "authors"
    assert (config["lr_step"], config["lr_decay"], config["lr_epoch_offset"], config["detach_reset"]) == (50, 0.1, 1, False)
    assert config["batch_size"] == recipes.settings(recipe)["batch_size"] and config["lr"] == recipes.settings(recipe)["lr"]
    assert config["resample"] is config["resample_test"] is (kind == "intensities")
    assert np.isfinite(row["train_loss"]) and 0 <= row["test_acc"] <= 1
    assert (row.get("test_cosine_first_of_5") is not None) is (kind == "bit targets")
