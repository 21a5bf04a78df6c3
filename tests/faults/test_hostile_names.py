"""Names from files (a spike file's ``dataset``, a library's neurons) never leave ``--out`` and never pass for a
preset (docs/robustness.md#inputs)."""

from __future__ import annotations

import json

import h5py
import pytest
from data_fixtures.faults import TRAIN, snapshot

from mdn_snntorch import meta_neurons
from mdn_snntorch.neurons import factory

THETA = [0.06, 0.219, -0.065, 0.003]
ESC = "\x1b"


def library(path, *names, description=""):
    neurons = [{"name": n, "order": 2, "theta": THETA, "description": description} for n in names]
    path.write_text(json.dumps({"format": "mdn-meta-neuron-library", "version": 1, "neurons": neurons}))
    return path


def renamed(data, task):
    with h5py.File(data, "a") as f:
        f.attrs["dataset"] = task
    return data


# ---- run folders stay inside --out --------------------------------------------------------------
@pytest.mark.parametrize("task, neuron", [("..", ".."), ("..", "2-FS"), (".", ".."), ("digits", "..")])
def test_run_folders_named_dot_dot_are_refused(task, neuron, mdn, data, tmp_path):
    renamed(data, task)
    out = tmp_path / "a" / "ev"
    out.mkdir(parents=True)
    lib = library(tmp_path / "lib.json", neuron) if neuron != "2-FS" else None
    before = snapshot(tmp_path)
    libraries = ["--library", lib] if lib else []
    r = mdn("evaluate", "--data", data, "--neurons", neuron, *libraries, "--seeds", 1, "--jobs", 1, "--out", out, *TRAIN)
    assert r.code == 2, r.line
    what = f"the task name of {data} (its 'dataset' attribute) {task!r}" if task in (".", "..") else "the neuron name '..'"
    assert f"{what} cannot name a folder" in r.line, r.line
    assert snapshot(tmp_path) == before  # nothing written, inside or beside --out


def test_a_run_folder_that_resolves_outside_out_is_refused(mdn, data, tmp_path):
    out, elsewhere = tmp_path / "ev", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "runs").symlink_to(elsewhere)
    r = mdn("evaluate", "--data", data, "--neurons", "2-FS", "--seeds", 1, "--jobs", 1, "--out", out, *TRAIN)
    assert r.code == 2 and "resolves to" in r.line and f"outside {out}; refused" in r.line, r.line
    assert list(elsewhere.iterdir()) == []


# ---- names: NFKC, no control characters, no look-alikes of the presets ----------------------------
@pytest.mark.parametrize(
    "name, reason",
    [
        ("x\n2-FS", "the invisible or control character U+000A \\n"),
        (f"2-FS{ESC}[8m", "the invisible or control character U+001B \\x1b"),
        ("2-F\u200bS", "the invisible or control character U+200B ZERO WIDTH SPACE"),
        ("2-F\u202eS", "the invisible or control character U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("2-F\u0405", "mixes the scripts CYRILLIC, LATIN (U+0405 CYRILLIC CAPITAL LETTER DZE)"),
        ("\u0456nit", "mixes the scripts CYRILLIC, LATIN (U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I)"),
        ("2\u2010FS", "looks like the preset '2-FS' without being it"),
        ("lst-order", "looks like the preset '1st-order' without being it"),
        ("2-WD\u0405", "mixes the scripts"),
    ],
)
def test_a_library_name_that_could_pass_for_another_is_refused(name, reason, mdn, tmp_path):
    lib = library(tmp_path / "lib.json", "fine", name)
    r = mdn("presets", "--library", lib)
    assert r.code == 2 and r.out == "", r.out
    assert r.line.startswith(f"mdn presets: error: {lib}: neurons[1] (") and reason in r.line, r.line
    assert ESC not in r.err and len(r.err.splitlines()) == 1
    with pytest.raises(ValueError, match="refused"):
        meta_neurons.load_library(lib)


def test_names_are_nfkc_normalised_so_a_full_width_preset_name_is_the_preset_name(tmp_path):
    lib = meta_neurons.load_library(library(tmp_path / "lib.json", "\uff12-\uff26\uff33", "ﬁne"))
    assert lib.names == ["2-FS", "fine"]
    with pytest.raises(ValueError, match="2-FS"):  # now plainly the preset's name: resolving it is ambiguous
        factory.lookup("2-FS", [lib])
    with pytest.raises(ValueError, match="appear more than once"):
        meta_neurons.load_library(library(tmp_path / "twice.json", "ﬁne", "fine"))


def test_names_of_one_script_are_fine(tmp_path):
    lib = meta_neurons.load_library(library(tmp_path / "lib.json", "ядро", "神経細胞", "ニューロン", "spatial-ab0-cd1"))
    assert lib.names == ["ядро", "神経細胞", "ニューロン", "spatial-ab0-cd1"]
