"""A small report writer: the same content as Markdown (figures as relative PNG links) and as one
self-contained HTML file (figures embedded as base64), both written atomically.

Text from outside (task and neuron names come from data files and libraries) never becomes markup: the
Markdown escapes HTML (``< > &``), backslashes, table pipes and line breaks (:func:`md_text`,
:func:`md_cell`), picks a code fence longer than any backtick run in the code, and the HTML escapes everything.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from mdn_snntorch.atomic import atomic_write
from mdn_snntorch.printable import printable


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :mod:`mdn_snntorch.atomic`)."""
    return atomic_write(path, data)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())


_MD_SPECIAL = re.compile(r"([\\<>&|\[\]`])")


def md_text(text: object) -> str:
    """``text`` as literal Markdown on one line: HTML, links, code spans and table pipes escaped with a backslash,
    control characters as escapes (:func:`mdn_snntorch.printable.printable`: a table printed to a terminal
    cannot drive it)."""
    return _MD_SPECIAL.sub(r"\\\1", printable(" ".join(str(text).splitlines())))


def md_cell(text: object) -> str:
    """A Markdown table cell (the same as :func:`md_text`; a pipe can no longer split the cell)."""
    return md_text(text)


def _fence(code: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


@dataclass
class Report:
    """Ordered blocks: headings, paragraphs, tables and figures."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", (list(header), [list(map(str, r)) for r in rows])))

    def figure(self, path: str | os.PathLike, caption: str) -> None:
        self.blocks.append(("figure", (Path(path), caption)))

    def markdown(self, base: Path) -> str:
        """The report as Markdown; every text is escaped (:func:`md_text`), so ``**`` is the only markup a
        paragraph keeps."""
        out = [f"# {md_text(self.title)}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                out += ["#" * level + " " + md_text(text), ""]
            elif kind == "paragraph":
                out += [md_text(value), ""]
            elif kind == "code":
                fence = _fence(value)
                out += [fence, value, fence, ""]
            elif kind == "table":
                header, rows = value
                out.append("| " + " | ".join(md_cell(h) for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "figure":
                path, caption = value
                link = quote(os.path.relpath(path, base).replace(os.sep, "/"))
                out += [f"![{md_text(caption)}]({link})", "", f"*{md_text(caption)}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                body.append(f"<h{level}>{esc(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{esc(value)}</p>")
            elif kind == "code":
                body.append(f"<pre>{esc(value)}</pre>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{esc(h)}</th>" for h in header)
                cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            elif kind == "figure":
                path, caption = value
                data = base64.b64encode(Path(path).read_bytes()).decode()
                body.append(
                    f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{esc(caption)}</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
            "th{background:#eee}img{max-width:100%}figcaption{font-style:italic;color:#555}pre{background:#f4f4f4;padding:.6em}"
        )
        head = f'<head><meta charset="utf-8"><title>{esc(self.title)}</title><style>{style}</style></head>'
        return f"<!DOCTYPE html><html>{head}<body>{''.join(body)}</body></html>"

    def write(self, out_dir: str | os.PathLike, stem: str = "report") -> tuple[Path, Path]:
        """Write ``stem.md`` and the self-contained ``stem.html`` into ``out_dir``."""
        out_dir = Path(out_dir)
        md = write_atomic(out_dir / f"{stem}.md", self.markdown(out_dir))
        page = write_atomic(out_dir / f"{stem}.html", self.html())
        return md, page
