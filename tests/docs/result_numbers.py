"""Reading result numbers out of markdown and finding them in the committed results files.

Shared by the checks of README.md and of docs/*.md. A *number* is a decimal (``98.25``, ``-0.065``,
``5.6e-15``) in prose: code spans and fenced code blocks are code, not prose, and a link's target is not
prose either. A page is read paragraph by paragraph (:func:`paragraphs`); a paragraph's evidence is the
files under ``docs/results/`` it links to (:func:`cited`); a number is *held* by a file that has it as
written or a number that rounds to it, also as a fraction of 100 (the runs record accuracies in [0, 1]).
"""

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
PAPER = RESULTS / "paper"
TEXT = {".md", ".json", ".csv", ".txt"}
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]?\d+)?(?![\w.]*\d)")
LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")
CODE = re.compile(r"`[^`]*`")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def paragraphs(section: str) -> list[str]:
    """Blocks separated by blank lines, each bullet its own block; a table, or an indented block (a bullet's
    own table or paragraph), belongs to the block before it. Fenced code blocks are left out."""
    blocks, current = [], []
    for line in [*FENCE.sub("", section).splitlines(), ""]:
        if line.strip() and not line.startswith(("- ", "#")):
            current.append(line)
            continue
        if current and (current[0].startswith(("|", " ")) and blocks):
            blocks[-1] += "\n" + "\n".join(current)
        elif current:
            blocks.append("\n".join(current))
        current = [line] if line.startswith("- ") else []
    return blocks


def prose(block: str) -> str:
    """The block without its code spans and link targets."""
    return LINK.sub("]", CODE.sub(" ", block))


def numbers(block: str) -> list[str]:
    return NUMBER.findall(prose(block))


def cited(block: str, page: Path) -> list[Path]:
    """The text files under ``docs/results/`` that the block links to (a folder: every text file in it),
    link targets read relative to ``page``'s folder."""
    files = []
    for target in LINK.findall(block):
        path = (page.parent / target).resolve()
        if path.is_relative_to(RESULTS):
            files += sorted(p for p in path.rglob("*") if p.suffix in TEXT) if path.is_dir() else [path]
    return [f for f in files if f.suffix in TEXT]


@cache
def values(path: Path) -> tuple[str, frozenset[float]]:
    text = path.read_text()
    return text, frozenset(float(v) for v in re.findall(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?", text))


def held(number: str, files: list[Path]) -> bool:
    """``number`` is in one of ``files`` as written, or rounds from a number there (or from 100 times one)."""
    mantissa, _, exponent = number.lower().partition("e")
    x, decimals = float(number), len(mantissa.split(".")[1]) - int(exponent or 0)
    half = 0.5 * 10**-decimals * (1 + 1e-6)
    for path in files:
        text, found = values(path)
        if re.search(rf"(?<![\d.]){re.escape(number.lstrip('+'))}(?!\d)", text):
            return True
        if any(abs(v - x) <= half or abs(100 * v - x) <= half for v in found):
            return True
    return False
