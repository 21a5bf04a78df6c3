"""Every result number in docs/*.md has a committed results file or a benchmarks/ command behind it.

Each page is read paragraph by paragraph as the README's results section is (``result_numbers``: a bullet
is a paragraph, a table belongs to the paragraph before it, code is not prose). A decimal is a result
unless one of the rules of :func:`setting` says what else it is. A paragraph with results must either
link to files under ``docs/results/`` that hold every one of them, or, linking none, name the
``benchmarks/`` script that prints them.
"""

import ast
import re
from functools import cache
from pathlib import Path

import pytest
from result_numbers import LINK, PAPER, RESULTS, ROOT, cited, held, numbers, paragraphs

from mdn_snntorch import meta_neurons

PAGES = sorted((ROOT / "docs").glob("*.md"))
#: a test the paragraph names holds the numbers it asserts, as a results file does
TEST = re.compile(r"tests/[\w/]+\.py")
BENCHMARK = re.compile(r"benchmarks/([\w-]+\.(?:py|sh))")
#: a paper section (``§4.1``, ``§3.3-4.4``) or a software version (``Python 3.11``) is a name, not a number
REFERENCE = re.compile(r"§\s?\d+(?:\.\d+)*(?:\s?-\s?\d+(?:\.\d+)*)?|\b(?:Python|torch|Brian2|snnTorch) \d+\.\d+")
#: a section's paragraph that says a script "prints every figure below" vouches for the section's later paragraphs
PRINTS_BELOW = re.compile(r"benchmarks/([\w-]+\.py)[^`]*`? prints every figure below")
BOUND = re.compile(r"(?:<=|>=|<|>)\s?[-+]?\d+\.\d+")
HEADING = re.compile(r"^#+ .*$", re.M)
#: the library's code: its float literals are its settings (defaults, presets, tolerances)
LIBRARY = ("mdn_snntorch", "data_prep", "validation")


@cache
def code_literals() -> frozenset[str]:
    """Every float literal of the library's code, as the code writes it (``0.9``, ``1e-3``)."""
    found = set()
    for path in (p for folder in LIBRARY for p in (ROOT / folder).rglob("*.py")):
        source = path.read_text()
        found.update(
            ast.get_source_segment(source, node)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, float)
        )
    return frozenset(found)


@cache
def preset_values() -> frozenset[float]:
    """The presets' theta components and 1st-order decays (``mdn_snntorch.meta_neurons``)."""
    found = set()
    for neuron in meta_neurons.PRESETS.values():
        found.update(neuron.theta if neuron.order == 2 else (neuron.decay,))
    return frozenset(found)


@cache
def paper_text() -> str:
    return "\n".join(p.read_text() for p in sorted(PAPER.glob("*.json")))


def setting(number: str, literals: bool = True) -> bool:
    """``number`` is not a measured result: a preset's value, a number of the paper as its transcribed
    tables write it (they cite the paper, not a run of this project), or (with ``literals``) a literal of the
    library's code as the code writes it (``0.9``, not ``0.90``)."""
    written = re.compile(rf"(?<![\d.]){re.escape(number.lstrip('+'))}(?!\d)")
    if float(number) in preset_values() or written.search(paper_text()):
        return True
    return literals and number.lstrip("+-") in code_literals()


def results(block: str, literals: bool = True) -> list[str]:
    """The block's decimals that are results: in prose, not a reference, not a bound (``<= 0.8``: a target
    or a limit is a choice), not a setting (``literals``: code literals count as settings)."""
    return [n for n in numbers(BOUND.sub(" ", REFERENCE.sub(" ", block))) if not setting(n, literals)]


def unbacked(text: str, page: Path) -> list[str]:
    """One line for every paragraph of the page ``text`` whose results no file it links holds (its links read
    from ``page``'s folder) and that, linking none, names no benchmark."""
    problems = []
    for section in HEADING.split(text):
        problems += _unbacked_section(section, page)
    return problems


def _unbacked_section(section: str, page: Path) -> list[str]:
    problems, vouching = [], []
    for block in paragraphs(section):
        vouching = vouching or PRINTS_BELOW.findall(block)
        files = cited(block, page) + [ROOT / t for t in TEST.findall(block) if (ROOT / t).is_file()]
        where = f"{page.name}: {block[:70]!r}"
        if files:
            # a paragraph that cites results states results: a code literal there must be held too (a setting
            # in such a paragraph is written as code), so a result that equals a literal is not waved through
            problems += [
                f"{where}: {n} is in none of {[str(f.relative_to(ROOT)) for f in files]}"
                for n in results(block, literals=False)
                if not held(n, files)
            ]
            continue
        found = results(block)
        if not found:
            continue
        scripts = BENCHMARK.findall(block) or vouching
        if not scripts:
            problems.append(f"{where}: no results file linked and no benchmarks/ script named for {found[:6]}")
        problems += [
            f"{where}: names benchmarks/{s}, which does not exist" for s in scripts if not (ROOT / "benchmarks" / s).exists()
        ]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_result_number_of_a_page_is_in_a_results_file_its_paragraph_links_or_a_named_benchmark(page):
    problems = unbacked(page.read_text(), page)
    assert not problems, "\n".join(problems)


def test_every_results_link_of_the_docs_exists():
    targets = {(page.parent / t).resolve() for page in PAGES for t in LINK.findall(page.read_text()) if not t.startswith("http")}
    assert not [str(t) for t in targets if t.is_relative_to(RESULTS) and not t.exists()]


def test_what_counts_as_a_result():
    assert results("2-FS (0.060, 0.219, -0.065, 0.003) and 1st-order 0.8, paper §3.3-4.4, §4.1") == []
    assert results("`--lr-decay 0.9`, target <= 0.8, the paper's 98.67") == []
    assert results("reaches 98.61 %, 1.58x, worst case 5.6e-15") == ["98.61", "1.58", "5.6e-15"]


def test_the_check_catches_a_number_no_file_holds_and_a_paragraph_with_no_source():
    page, mnist = ROOT / "docs" / "page.md", "[results](results/mnist/table.md)"
    assert cited(mnist, page) == [RESULTS / "mnist" / "table.md"]
    text = f"## A\n\n2-FS reaches 98.25 % {mnist}.\n\n- it reaches 98.61 % {mnist}\n\nA step takes 23.5 ms.\n"
    first, second = unbacked(text, page)
    assert "98.61 is in none of ['docs/results/mnist/table.md']" in first and "no results file linked" in second
    named = "A step takes 23.5 ms (`python benchmarks/bench_neuron.py`), a load 24.1 ms (benchmarks/nothing.py).\n"
    assert [line.split(": ")[-1] for line in unbacked(named, page)] == ["names benchmarks/nothing.py, which does not exist"]
