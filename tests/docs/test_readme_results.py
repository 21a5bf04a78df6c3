"""Every result number in the README's results section is in a committed results file its paragraph cites.

The section is read paragraph by paragraph (a bullet is a paragraph). A number with decimals outside code
spans is a result; its paragraph must link to files or folders under ``docs/results/`` and one of them must
hold the number: as written, or as a number that rounds to it (also as a fraction of 100, since the runs
record accuracies in [0, 1]). The paper's own numbers come from its transcribed tables in
``docs/results/paper/``, which every paragraph may use. Integers (epochs, seeds, counts) are not checked.
"""

import json
import re
from functools import cache
from pathlib import Path

import pytest

from mdn_snntorch import meta_neurons

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"
PAPER = RESULTS / "paper"
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?![\w.]*\d)")
LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")
CODE = re.compile(r"`[^`]*`")


def results_section(text: str) -> str:
    start = text.index("\n## Results")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def paragraphs(section: str) -> list[str]:
    """Blocks separated by blank lines, each bullet its own block; a table, or an indented block (a bullet's
    own table or paragraph), belongs to the block before it."""
    blocks, current = [], []
    for line in [*section.splitlines(), ""]:
        if line.strip() and not line.startswith(("- ", "#")):
            current.append(line)
            continue
        if current and (current[0].startswith(("|", " ")) and blocks):
            blocks[-1] += "\n" + "\n".join(current)
        elif current:
            blocks.append("\n".join(current))
        current = [line] if line.startswith("- ") else []
    return blocks


def numbers(block: str) -> list[str]:
    prose = LINK.sub("]", CODE.sub(" ", block))
    return NUMBER.findall(prose)


def cited(block: str) -> list[Path]:
    files = []
    for target in LINK.findall(block):
        path = (README.parent / target).resolve()
        if path.is_relative_to(RESULTS):
            files += (
                sorted(p for p in path.rglob("*") if p.suffix in {".md", ".json", ".csv", ".txt"}) if path.is_dir() else [path]
            )
    return files


@cache
def values(path: Path) -> tuple[str, frozenset[float]]:
    text = path.read_text()
    return text, frozenset(float(v) for v in re.findall(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?", text))


def held(number: str, files: list[Path]) -> bool:
    x, decimals = float(number), len(number.split(".")[1])
    half = 0.5 * 10**-decimals + 1e-9
    for path in files:
        text, found = values(path)
        if re.search(rf"(?<![\d.]){re.escape(number.lstrip('+'))}(?!\d)", text):
            return True
        if any(abs(v - x) <= half or abs(100 * v - x) <= half for v in found):
            return True
    return False


def test_every_result_number_is_in_a_results_file_its_paragraph_cites():
    paper = sorted(PAPER.glob("*.json"))
    missing = []
    for block in paragraphs(results_section(README.read_text())):
        found = numbers(block)
        if not found:
            continue
        files = cited(block)
        if not files:
            missing.append(f"no results file cited for {found[:4]} in: {block[:100]!r}")
            continue
        missing += [
            f"{n} (in {block[:60]!r}) is in none of {[str(f.relative_to(ROOT)) for f in files]}"
            for n in found
            if not held(n, files + paper)
        ]
    assert not missing, "\n".join(missing)


def test_the_check_catches_a_number_no_file_holds():
    block = "- 2-FS reaches 98.61 % ([results](docs/results/mnist/table.md)), the paper 98.67."
    files = cited(block)
    assert files == [RESULTS / "mnist" / "table.md"]
    assert numbers(block) == ["98.61", "98.67"]
    assert not held("98.61", files) and held("98.67", sorted(PAPER.glob("*.json")))
    assert held("98.25", files) and held("0.06", files)
    assert numbers("`--lr-decay 0.1` and [a](docs/results/x0.5.md) 1.25") == ["1.25"]


def test_the_transcribed_presets_are_the_packages():
    doc = json.loads((PAPER / "table2.json").read_text())
    assert {n: tuple(t) for n, t in doc["theta"].items()} == {n: meta_neurons.get(n).theta for n in doc["theta"]}
    assert doc["first_order_decay"] == meta_neurons.get("1st-order").decay


@pytest.mark.parametrize("target", sorted({t for t in LINK.findall(README.read_text()) if not t.startswith("http")}))
def test_every_local_link_of_the_readme_exists(target):
    assert (README.parent / target).exists(), target
