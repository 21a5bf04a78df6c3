"""The report writer: Markdown with relative figure links, self-contained HTML."""

from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mdn_snntorch.pipeline.report import Report, save_figure


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def test_report_writes_markdown_and_self_contained_html(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = save_figure(fig, tmp_path / "figs" / "line.png")
    report = Report("Demo <report>")
    report.heading("Numbers")
    report.table(["neuron", "acc"], [["2-FS", "97.1 +- 0.3"], ["1st-order", "96.0 +- 0.2"]])
    report.figure(png, "a line")
    md, page = report.write(tmp_path)

    text = md.read_text()
    assert "| 2-FS | 97.1 +- 0.3 |" in text and "![a line](figs/line.png)" in text
    parser = _Collect()
    parser.feed(page.read_text())
    assert parser.tags.count("tr") == 3 and "table" in parser.tags
    assert parser.srcs and parser.srcs[0].startswith("data:image/png;base64,iVBOR"), "the PNG is embedded"
    assert "Demo &lt;report&gt;" in page.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_atomic_write_gives_normal_permissions_and_keeps_the_old_file_on_failure(tmp_path):
    import os

    import pytest

    from mdn_snntorch.atomic import atomic_write

    path = atomic_write(tmp_path / "a.txt", "first")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

    def fail(f):
        f.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
