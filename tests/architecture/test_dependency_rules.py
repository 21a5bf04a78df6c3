"""The package rules of ``import_rules`` hold for the repository, and the checker catches a breach."""

import pytest
from import_rules import layer, read_tree, violations


@pytest.fixture(scope="module")
def tree(repo_root):
    return read_tree(repo_root)


def test_the_repository_keeps_every_rule(tree):
    assert violations(tree) == []


def test_layers_of_files():
    assert layer("mdn_snntorch/neurons/mdn.py") == "library"
    assert layer("mdn_snntorch/spikefile.py") == "library"
    assert layer("mdn_snntorch/pipeline/trainer.py") == "pipeline"
    assert layer("mdn_snntorch/cli/train.py") == "cli"
    assert layer("mdn_snntorch/__main__.py") == "cli"
    assert layer("validation/run.py") == "validation"


@pytest.mark.parametrize(
    "file, added, rule",
    [
        ("mdn_snntorch/neurons/reset.py", "import sklearn", "the library imports only torch, snntorch, numpy"),
        ("mdn_snntorch/neurons/reset.py", "import h5py", "the library imports h5py only lazily"),
        ("mdn_snntorch/functional.py", "from mdn_snntorch.pipeline import trainer", "the library imports only the library"),
        ("mdn_snntorch/neurons/mdn.py", "import mdn_snntorch.pipeline", "the library imports only the library"),
        ("mdn_snntorch/pipeline/trainer.py", "import validation.metrics", "the pipeline never imports validation"),
        ("mdn_snntorch/pipeline/loader.py", "from data_prep import digits", "the pipeline never imports data_prep"),
        ("mdn_snntorch/pipeline/model.py", "from mdn_snntorch.cli import errors", "nothing outside the CLI imports the CLI"),
        ("data_prep/digits.py", "from mdn_snntorch.neurons import MDN", "data_prep imports of the library only"),
        ("data_prep/digits.py", "import validation", "data_prep never imports validation"),
        ("validation/metrics.py", "from data_prep import digits", "validation never imports data_prep"),
    ],
)
def test_an_added_forbidden_import_is_reported(tree, file, added, rule):
    changed = dict(tree)
    changed[file] = tree[file] + f"\n{added}\n"
    found = violations(changed)
    assert len(found) >= 1 and all(v.startswith(f"{file}:") for v in found)
    assert rule in found[0]


def test_lazy_imports_are_allowed_in_the_library(tree):
    changed = dict(tree)
    changed["mdn_snntorch/neurons/reset.py"] = tree["mdn_snntorch/neurons/reset.py"] + "\n\ndef f():\n    import h5py\n"
    assert violations(changed) == []
