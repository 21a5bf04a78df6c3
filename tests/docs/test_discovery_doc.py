"""docs/discovery.md runs top to bottom as written: its python blocks, in order, in one namespace."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "discovery.md"

pytest.importorskip("sklearn", reason="the page uses scikit-learn's embedded digits")


@pytest.mark.slow
def test_the_discovery_page_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the page writes conv.json and its figures to the working directory
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert namespace["points"].layers == {"1": 8, "3": 16, "5": 10}
    assert namespace["library"].names == namespace["made"].library.names and namespace["library"].names
    assert not any(p.requires_grad for n, p in namespace["frozen"].named_parameters() if "theta" in n)
    assert set(namespace["groups"]["2-FS"]) == {"spatial", "temporal"}
    for name in ("conv.json", "conv_fig3.png", "conv_fig4.png"):
        assert (tmp_path / name).exists()
