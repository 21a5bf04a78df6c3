"""The discovery module imports with the neurons alone; clustering and figures name the extra they need."""

import os
import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.machinery
    _find = importlib.machinery.PathFinder.find_spec
    def _find_installed(name, path=None, target=None):
        return None if name.split(".")[0] in ("sklearn", "matplotlib") else _find(name, path, target)
    importlib.machinery.PathFinder.find_spec = _find_installed
    """
)


def test_without_scikit_learn_and_matplotlib(repo_root, tmp_path):
    code = BLOCKER + textwrap.dedent(
        """
        import numpy as np
        import mdn_snntorch as mdn
        from mdn_snntorch.discovery import capability, capability_figure, collect_theta, freeze, generate
        from mdn_snntorch.extras import MissingExtraError
        net = mdn.MDN("init", num_neurons=4, learn_theta=True)
        points = collect_theta(net)
        frozen = freeze(net, "2-FS")
        caps = capability({"t": {"a": 1.0, "b": 0.0}})
        for call in (lambda: generate(points), lambda: capability_figure({}, "x.png")):
            try:
                call()
            except MissingExtraError as err:
                print("MISSING", err)
        print("OK", len(points), caps["t"]["a"])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo_root)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "MISSING sklearn.cluster is not installed; it comes with pip install 'mdn-snntorch[pipeline]'" in lines
    assert "MISSING matplotlib is not installed; it comes with pip install 'mdn-snntorch[pipeline]'" in lines
    assert lines[-1] == "OK 4 1.0"
