"""The README's example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs():
    text = README.read_text()
    marker = text.index("<!-- readme-example")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert tuple(namespace["spikes"].shape) == (20, 32, 10)
    assert tuple(namespace["rate"].shape) == (32, 10)
    assert tuple(namespace["v"].shape) == (100, 4, 8)
