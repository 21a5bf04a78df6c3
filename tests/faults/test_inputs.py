"""Inputs: pinned for the length of a run, hostile spike files and checkpoints refused before any use."""

from __future__ import annotations

import json
import os
import shutil
import time

import h5py
import numpy as np
import pytest
import torch
from data_fixtures.faults import TRAIN, finish, mdn_process, snapshot, wait_for

from mdn_snntorch import cli


# ---- the spike file changes ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_data_replaced_during_training_stops_the_run(tmp_path, data, workers):
    """The file re-prepared (T 4 -> 5, seed 0 -> 9) while training: exit 1 naming what changed; the
    finished epochs stay loadable."""
    run = tmp_path / "run"
    proc = mdn_process(
        "train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 100_000, *TRAIN[4:], "--num-workers", workers
    )
    wait_for(lambda: (run / "epoch_001.pt").exists(), proc)
    assert cli.main(["prep", "digits", "--out", str(data), "--time-steps", "5", "--seed", "9", "--force"]) == 0
    result = finish(proc)
    assert result.code == 1 and f"{data} changed during the run (" in result.line
    assert "seed 0 -> 9" in result.line and "time_steps 4 -> 5" in result.line
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["status"] == "stopped" and "changed during the run" in doc["error"]
    assert torch.load(run / f"epoch_{doc['epochs_done']:03d}.pt", weights_only=True)["epoch"] == doc["epochs_done"]


def test_resume_on_a_re_prepared_file_is_refused(mdn, data, tmp_path):
    run = tmp_path / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN).code == 0
    kept = snapshot(run)
    assert mdn("prep", "digits", "--out", data, "--time-steps", 5, "--seed", 9, "--force").code == 0
    r = mdn("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 2, *TRAIN[4:], "--resume")
    assert r.code == 2 and f"cannot resume {run / 'epoch_001.pt'}: the data file {data} is not the one" in r.line
    assert "seed 0 -> 9" in r.line and "time_steps 4 -> 5" in r.line
    assert snapshot(run) == kept


def test_resume_on_a_touched_file_says_it_was_modified(mdn, data, tmp_path):
    run = tmp_path / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN).code == 0
    os.utime(data, ns=(time.time_ns(), 10**18))
    r = mdn("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 2, *TRAIN[4:], "--resume")
    assert r.code == 2 and "modified at" in r.line


def test_resume_sees_a_changed_attribute_outside_the_known_keys(mdn, data, tmp_path):
    """An attribute the meta-data record does not keep, changed with the modification time restored: the digest of all
    root attributes tells."""
    run = tmp_path / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN).code == 0
    st = os.stat(data)
    with h5py.File(data, "r+") as f:
        f.attrs["notes"] = "relabelled"
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = mdn("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 2, *TRAIN[4:], "--resume")
    assert r.code == 2 and "is not the one" in r.line and "root attributes (digest" in r.line


def test_evaluate_does_not_reuse_a_run_trained_on_other_data(mdn, data, tmp_path):
    common = ["--data", data, "--neurons", "2-FS", "--seeds", 1, "--jobs", 1, "--out", tmp_path / "ev", *TRAIN]
    assert mdn("evaluate", *common).code == 0
    assert mdn("prep", "digits", "--out", data, "--time-steps", 4, "--seed", 3, "--force").code == 0
    r = mdn("evaluate", *common)
    assert r.code == 2 and "holds a run trained on another version of" in r.line and "seed 0 -> 3" in r.line


# ---- hostile spike files ------------------------------------------------------------------------
def _replace(f, name, **create):
    del f[name]
    f.create_dataset(name, **create)


def _external(f, tmp):
    secret = tmp / "secret.bin"
    secret.write_bytes(b"\xff" * 100_000)
    _replace(f, "train/spikes", shape=f["train/spikes"].shape, dtype=np.uint8, external=[(str(secret), 0, 100_000)])


def _virtual(f, tmp):
    layout = h5py.VirtualLayout(shape=f["train/labels"].shape, dtype=np.int64)
    layout[:] = h5py.VirtualSource(str(tmp / "other.h5"), "labels", shape=f["train/labels"].shape)
    del f["train/labels"]
    f.create_virtual_dataset("train/labels", layout)


def _huge(f, tmp):
    """A 10^9-sample split: 8 GB of labels and 32 GB of spikes declared in a file of about 120 KB."""
    shape = f["train/spikes"].shape
    _replace(f, "train/labels", shape=(10**9,), dtype=np.int64)
    _replace(f, "train/spikes", shape=(10**9, *shape[1:]), dtype=np.uint8, chunks=(4096, *shape[1:]), compression="gzip")


def _labels(values):
    def edit(f, tmp):
        y = f["train/labels"][()].astype(values.dtype)
        y[: len(values)] = values
        _replace(f, "train/labels", data=y)

    return edit


def _empty(split):
    def edit(f, tmp):
        for name in ("spikes", "labels", "intensity"):
            ds = f[f"{split}/{name}"]
            _replace(f, f"{split}/{name}", shape=(0, *ds.shape[1:]), dtype=ds.dtype)

    return edit


def _attr(name, value):
    return lambda f, tmp: f.attrs.__setitem__(name, value)


def _link(kind):
    def edit(f, tmp):
        del f["test/labels"]
        f["test/labels"] = h5py.SoftLink("/train/labels") if kind == "soft" else h5py.ExternalLink("other.h5", "/labels")

    return edit


@pytest.mark.parametrize(
    "damage, message",
    [
        (_external, "train/spikes uses HDF5 external storage (data in other files); refused"),
        (_virtual, "train/labels is a virtual dataset (data in other files); refused"),
        (_link("soft"), "test/labels is a link (SoftLink)"),
        (_link("external"), "test/labels is a link (ExternalLink)"),
        (_huge, "train/spikes declares shape (1000000000, 4, 8) (32000000000 bytes) but stores only 0 bytes"),
        (_labels(np.array([7.5])), "train/labels are float64; expected integers"),
        (_labels(np.array([10])), "train/labels outside 0..9"),
        (_attr("num_classes", 10.5), "attribute 'num_classes' is 10.5; expected a positive integer"),
        (_attr("time_steps", 4.0), "attribute 'time_steps' is 4.0; expected a positive integer"),
        (_attr("version", 1.7), "missing or invalid 'version' attribute (1.7; expected an integer)"),
        (_empty("train"), "split 'train' holds no samples"),
        (_empty("test"), "split 'test' holds no samples"),
    ],
    ids=[
        "external-storage", "virtual", "soft-link", "external-link", "1e9-samples", "label-7.5", "label-range",
        "num-classes-10.5", "time-steps-float", "version-1.7", "no-train-samples", "no-test-samples",
    ],
)  # fmt: skip
def test_hostile_spike_files_are_refused_before_use(mdn, data, tmp_path, damage, message):
    (tmp_path / "other.h5").write_bytes(b"")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["labels"] = np.zeros(1347, np.int64)
    with h5py.File(data, "a") as f:
        damage(f, tmp_path)
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN)
    assert r.code == 2 and r.line.startswith(f"mdn train: error: {data}: ") and message in r.line, r.line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_chunk_is_an_error_naming_the_file(mdn, data, tmp_path, workers):
    with h5py.File(data) as f:
        chunk = f["train/spikes"].id.get_chunk_info(0)
    raw = bytearray(data.read_bytes())
    raw[chunk.byte_offset + 100 : chunk.byte_offset + 300] = bytes(200)
    data.write_bytes(bytes(raw))
    r = mdn("train", "--data", data, "--out", tmp_path / "run", *TRAIN, "--num-workers", workers)
    assert r.code == 2 and f"{data}: cannot read train/spikes samples" in r.line


# ---- checkpoints --------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_unloadable_newest_checkpoint_falls_back_to_the_previous(mdn, data, tmp_path, damage):
    run = tmp_path / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 2, *TRAIN[4:]).code == 0
    newest = run / "epoch_002.pt"
    newest.write_bytes(b"" if damage == "empty" else newest.read_bytes()[:1000])
    first = (run / "epoch_001.pt").read_bytes()
    r = mdn("train", "--data", data, "--out", run, *TRAIN[:2], "--epochs", 2, *TRAIN[4:], "--resume")
    assert r.code == 0 and f"warning: {newest}: not a loadable checkpoint" in r.err and "using epoch_001.pt" in r.err
    assert (run / "epoch_001.pt").read_bytes() == first
    assert torch.load(newest, weights_only=True)["epoch"] == 2  # epoch 2 trained again, the broken file replaced


def test_no_loadable_checkpoint_is_an_error_naming_it(mdn, data, tmp_path):
    run = tmp_path / "run"
    assert mdn("train", "--data", data, "--out", run, *TRAIN).code == 0
    (run / "epoch_001.pt").write_bytes(b"PK\x03\x04garbage")
    r = mdn("train", "--data", data, "--out", run, *TRAIN, "--resume")
    assert r.code == 2 and f"{run / 'epoch_001.pt'}: not a loadable checkpoint" in r.line


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("command", ["train", "validate"])
def test_a_malicious_checkpoint_is_refused_without_running_it(mdn, data, tmp_path, command):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "mdn-train-checkpoint", "x": _Payload(marker)}, run / "epoch_001.pt")
    if command == "train":
        r = mdn("train", "--data", data, "--out", run, *TRAIN, "--resume")
    else:
        r = mdn("validate", "--checkpoint", run, "--data", data, "--quick", "--no-progress", "--out", tmp_path / "v")
    assert r.code == 2 and f"{run / 'epoch_001.pt'}: refused, it holds objects other than tensors" in r.line
    assert "weights_only" not in r.err and not marker.exists()


def test_a_truncated_metrics_file_in_an_evaluation_is_named(mdn, data, tmp_path):
    common = ["--data", data, "--neurons", "2-FS", "--seeds", 1, "--jobs", 1, "--out", tmp_path / "ev", *TRAIN]
    assert mdn("evaluate", *common).code == 0
    metrics = tmp_path / "ev" / "runs" / "digits" / "2-FS" / "seed0" / "metrics.json"
    metrics.write_text(metrics.read_text()[:50])
    r = mdn("evaluate", *common)
    assert r.code == 2 and f"{metrics}: unreadable run file" in r.line


# ---- libraries and neuron names -----------------------------------------------------------------
def _library(path, neurons):
    path.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": neurons}))
    return path


GOOD = {"name": "mine", "order": 2, "theta": [0.06, 0.2, -0.06, 0.01]}


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("dir", "is a directory, not a JSON file"),
        (b"\xff\xfe\x00", "is not a text (UTF-8 JSON) file"),
        ("{not json", "is not valid JSON"),
        ([1], "neurons[0]: expected an object"),
        ([{**GOOD, "theta": ["a", 1, 2, 3]}], "field 'theta' must be a list of four finite numbers"),
        ([{**GOOD, "theta": 5}], "field 'theta' must be a list of four finite numbers"),
        ([{**GOOD, "order": "2"}], "field 'order' must be 1 or 2"),
        ([{**GOOD, "name": 5}], "field 'name' must be a non-empty string"),
        ([{"name": "f", "order": 1, "decay": "0.8"}], "field 'decay' must be a finite number"),
        ([GOOD, GOOD], "neuron name(s) 'mine' appear more than once"),
    ],
    ids=["missing", "directory", "binary", "bad-json", "not-an-object", "theta-strings", "theta-number",
         "order-string", "name-number", "decay-string", "duplicate"],
)  # fmt: skip
def test_bad_libraries_are_one_line_errors(mdn, tmp_path, content, message):
    path = tmp_path / "lib.json"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        _library(path, content)
    r = mdn("presets", "--library", path)
    assert r.code == 2 and str(path) in r.line and message in r.line, r.line


@pytest.mark.parametrize("command", ["train", "evaluate", "validate"])
def test_a_library_neuron_named_like_a_preset_is_refused(mdn, data, tmp_path, command):
    lib = _library(tmp_path / "lib.json", [{**GOOD, "name": "2-FS"}])
    argv = {
        "train": ["train", "--data", data, "--neuron", "2-FS", "--library", lib, "--out", tmp_path / "o", *TRAIN],
        "evaluate": ["evaluate", "--data", data, "--library", lib, "--seeds", 1, "--jobs", 1, "--out", tmp_path / "o", *TRAIN],
        "validate": ["validate", "--library", lib, "--quick", "--no-progress", "--out", tmp_path / "o"],
    }[command]
    r = mdn(*argv)
    assert r.code == 2 and f"neuron name '2-FS' is defined by more than one source: the presets, {lib}" in r.line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_name_in_two_libraries_is_refused(mdn, data, tmp_path, command):
    a, b = _library(tmp_path / "a.json", [GOOD]), _library(tmp_path / "b.json", [GOOD])
    argv = {
        "train": ["train", "--data", data, "--neuron", "mine", "--out", tmp_path / "o", *TRAIN],
        "evaluate": ["evaluate", "--data", data, "--neurons", "mine", "--seeds", 1, "--jobs", 1, "--out", tmp_path / "o", *TRAIN],
    }[command]
    r = mdn(*argv, "--library", a, b)
    assert r.code == 2 and f"neuron name 'mine' is defined by more than one source: {a}, {b}" in r.line


def test_discover_checks_its_generated_names_against_the_presets():
    from mdn_snntorch.discovery import check_names
    from mdn_snntorch.meta_neurons import MetaNeuron

    check_names([MetaNeuron("lib-1", 2, (0.06, 0.2, -0.06, 0.01))])
    with pytest.raises(ValueError, match="'2-FS' is defined by more than one source: the presets"):
        check_names([MetaNeuron("2-FS", 2, (0.06, 0.2, -0.06, 0.01))])


def test_spike_file_checks_run_before_any_allocation(data, tmp_path):
    """The 10^9-sample file is refused in well under a second, reading nothing of its size."""
    from mdn_snntorch.spikefile import SpikeDataset, SpikeFileError

    huge = tmp_path / "huge.h5"
    shutil.copy(data, huge)
    with h5py.File(huge, "a") as f:
        _huge(f, tmp_path)
    start = time.perf_counter()
    with pytest.raises(SpikeFileError, match="declares shape"):
        SpikeDataset(huge, "train")
    assert time.perf_counter() - start < 1.0
