"""Every result number in the README's results section is in a committed results file its paragraph cites.

The section is read paragraph by paragraph (a bullet is a paragraph). A number with decimals outside code
spans is a result; its paragraph must link to files or folders under ``docs/results/`` and one of them must
hold the number: as written, or as a number that rounds to it (also as a fraction of 100, since the runs
record accuracies in [0, 1]). The paper's own numbers come from its transcribed tables in
``docs/results/paper/``, which every paragraph may use. Integers (epochs, seeds, counts) are not checked.
"""

import json

import pytest
from result_numbers import LINK, PAPER, RESULTS, ROOT, cited, held, numbers, paragraphs

from mdn_snntorch import meta_neurons

README = ROOT / "README.md"


def results_section(text: str) -> str:
    start = text.index("\n## Results")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_result_number_is_in_a_results_file_its_paragraph_cites():
    paper = sorted(PAPER.glob("*.json"))
    missing = []
    for block in paragraphs(results_section(README.read_text())):
        found = numbers(block)
        if not found:
            continue
        files = cited(block, README)
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
    files = cited(block, README)
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
