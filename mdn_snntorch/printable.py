"""Text from outside made safe to print: one line, every character a terminal would act on shown as an escape.

Names and attributes come from files anyone may have written (a spike file's ``dataset`` attribute, a
library's neuron names, a lock file's host): printed raw, an escape sequence would drive the terminal and a
line break would add a line of its own (a fake row of a table). :func:`printable` is what every message,
table and log line of the project passes such text through: each character that ``str.isprintable`` rejects
(control and format characters, line and paragraph separators, spaces other than ' ', unassigned code points,
lone surrogates) becomes the escape Python's ``repr`` gives it (``\\n``, ``\\x1b``, ``\\u202e``).
"""

from __future__ import annotations

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object) -> str:
    """``str(text)`` with every non-printable character as its escape: one line, shown literally by a terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
