"""docs/snntorch.md: its python blocks run, and the files it links exist."""

from __future__ import annotations

import re

import torch


def test_python_blocks_run(repo_root):
    text = (repo_root / "docs" / "snntorch.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        scope: dict = {}
        exec(compile(block, "docs/snntorch.md", "exec"), scope)
    assert scope["spk_rec"].shape == (25, 8, 10) and torch.is_tensor(scope["mem_rec"])


def test_links_point_to_existing_files(repo_root):
    text = (repo_root / "docs" / "snntorch.md").read_text()
    for target in re.findall(r"\]\((\.\./[^)#]+|[a-z_]+\.md)[)#]", text):
        assert (repo_root / "docs" / target).resolve().exists(), target
