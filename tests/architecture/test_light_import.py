"""``pip install mdn-snntorch`` without extras is enough for the neurons, and it imports light.

Each test runs a fresh interpreter in which importing the optional dependencies raises
``ModuleNotFoundError``, as on a machine where they are not installed.
"""

import json
import re
import subprocess
import sys
import textwrap

OPTIONAL = ("brian2", "h5py", "sklearn", "tonic", "torchvision", "matplotlib", "scipy", "soundfile", "tqdm", "Cython")

# the path finder no longer finds them: `import` raises ModuleNotFoundError, find_spec gives None
BLOCKER = textwrap.dedent(
    f"""
    import importlib.machinery
    _find = importlib.machinery.PathFinder.find_spec
    def _find_installed(name, path=None, target=None):
        return None if name.split(".")[0] in {OPTIONAL!r} else _find(name, path, target)
    importlib.machinery.PathFinder.find_spec = _find_installed
    """
)


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_readme_example_runs_without_any_extra(repo_root, tmp_path):
    text = (repo_root / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text[text.index("<!-- readme-example") :], re.S).group(1)
    done = run_python(
        f"""
        import sys
        exec(compile({block!r}, "README.md", "exec"))
        blocked = [m for m in sys.modules if m.split(".")[0] in {OPTIONAL!r}]
        print("RESULT", tuple(spikes.shape), blocked)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "RESULT (20, 32, 10) []" in done.stdout


def test_import_leaves_dynamo_and_the_kernels_for_first_use(tmp_path):
    done = run_python(
        """
        import json, sys
        import mdn_snntorch as mdn
        before = {m: m in sys.modules for m in ("torch._dynamo", "mdn_snntorch.fused.ops", "mdn_snntorch.fused.c_kernels")}
        import torch
        mdn.MDN("2-FS").multi_step(torch.zeros(3, 2, 4))
        after = "mdn_snntorch.fused.ops" in sys.modules
        print(json.dumps({"before": before, "after": after}))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout.splitlines()[-1])
    assert doc == {"before": {m: False for m in doc["before"]}, "after": True}


def test_a_command_that_needs_an_extra_names_it_in_one_line(tmp_path):
    done = run_python(
        """
        import sys
        from mdn_snntorch.cli import main
        sys.exit(main(["train", "--data", "data.h5"]))
        """,
        tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "mdn train: error: tqdm is not installed; it comes with pip install 'mdn-snntorch[pipeline]'"


def test_reading_a_spike_file_without_h5py_names_the_data_extra(tmp_path):
    (tmp_path / "data.h5").write_bytes(b"")
    done = run_python(
        """
        from mdn_snntorch.spikefile import read_meta
        read_meta("data.h5")
        """,
        tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "mdn_snntorch.extras.MissingExtraError: h5py is not installed; it comes with pip install 'mdn-snntorch[data]'"
    )
