"""Names from outside (neuron names of a library, task names from a spike file): one form, no look-alikes,
and folder names that stay where they are put.

- :func:`normal`: a name in NFKC form (the full-width ``２-ＦＳ`` is ``2-FS``), so two spellings of one
  name are one name.
- :func:`refusal`: why a name may not be used, or None: an invisible or control character (a line break,
  an escape, a bidirectional override, a zero-width space), letters of more than one script (the Cyrillic
  ``Ѕ`` in ``2-FЅ``), or a look-alike of a preset's name (:func:`skeleton`: the same after mapping the
  common cross-script homoglyphs, dashes and ``1 l I`` / ``0 O`` onto one character each).
- :func:`folder_name` and :func:`inside`: a name made into one folder name (characters other than letters,
  digits, ``.``, ``_`` and ``-`` become ``_``; ``.`` and ``..`` refused), and the check that a path built
  from such names resolves inside the folder it was built under.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from mdn_snntorch.printable import printable

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe58\ufe63\u02d7"
_CYRILLIC, _CYRILLIC_AS = "АВЕЅІЈКМНОРСТХУԁԛԜԝһаеѕіјорсухӏӀ", "ABESIJKMHOPCTXYdqWwhaesijopcyxll"
_GREEK, _GREEK_AS = "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧοιν", "ABEZHIKMNOPTYXoiv"
_ARMENIAN, _ARMENIAN_AS = "ՕօսՏ", "OouS"
#: characters that pass for one another within Latin and digits
_FOLD = {"1": "l", "I": "l", "|": "l", "0": "O"}
#: the homoglyphs of Latin letters in the scripts most used to spoof them, dashes, and 1/l/I, 0/O, each onto
#: one character
_LOOKALIKES = str.maketrans(
    {
        **{
            k: _FOLD.get(v, v)
            for k, v in zip(_CYRILLIC + _GREEK + _ARMENIAN, _CYRILLIC_AS + _GREEK_AS + _ARMENIAN_AS, strict=True)
        },
        **dict.fromkeys(_DASHES, "-"),
        "ı": "i",
        **_FOLD,
    }
)
#: scripts written together in one language, taken as one
_SCRIPT_GROUPS = dict.fromkeys(("HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "BOPOMOFO"), "CJK")
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_FOLDER_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def normal(name: str) -> str:
    """``name`` in Unicode normal form NFKC."""
    return unicodedata.normalize("NFKC", name)


def skeleton(name: str) -> str:
    """What ``name`` looks like: NFKC, then every common look-alike replaced by the character it imitates."""
    return normal(name).translate(_LOOKALIKES)


def _script(char: str) -> str | None:
    """The script of a letter (its Unicode name's first word: LATIN, CYRILLIC, ...), None for other characters."""
    if not unicodedata.category(char).startswith("L"):
        return None
    script = unicodedata.name(char, "UNKNOWN").split()[0]
    return _SCRIPT_GROUPS.get(script, script)


def scripts(name: str) -> list[str]:
    """The scripts of the letters of ``name``."""
    return sorted({s for s in map(_script, name) if s})


def _described(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '') or printable(char)}"


def _invisible(char: str) -> bool:
    return not char.isprintable() or unicodedata.category(char) in _INVISIBLE


@lru_cache(maxsize=8)
def _shapes(reserved: tuple[str, ...]) -> dict[str, str]:
    return {skeleton(name): name for name in reserved}


def refusal(name: str, reserved: Iterable[str] = ()) -> str | None:
    """Why ``name`` (NFKC already) may not be a name, or None: it holds an invisible or control character,
    mixes scripts, or looks like one of ``reserved`` (a preset's name) without being it."""
    if not (name.isascii() and name.isprintable()):  # the common case skips the character by character checks
        bad = next((c for c in name if _invisible(c)), None)
        if bad is not None:
            return f"it holds the invisible or control character {_described(bad)}"
        if len(scripts(name)) > 1:
            letters = [(c, s) for c in name if (s := _script(c))]
            rarest = min(scripts(name), key=lambda script: sum(s == script for _, s in letters))
            odd = next(c for c, s in letters if s == rarest)
            return f"it mixes the scripts {', '.join(scripts(name))} ({_described(odd)}), as names made to pass for others do"
    other = _shapes(tuple(reserved)).get(name.translate(_LOOKALIKES))
    if other is not None and other != name:
        return f"it looks like the preset {other!r} without being it"
    return None


def folder_name(name: str, what: str) -> str:
    """``name`` as one folder name: characters other than ``A-Z a-z 0-9 . _ -`` become ``_``; ``ValueError``
    naming ``what`` when that is empty, ``.`` or ``..`` (a folder that is not a new one below)."""
    cleaned = _FOLDER_UNSAFE.sub("_", name)
    if cleaned in ("", ".", ".."):
        raise ValueError(f"{what} {name!r} cannot name a folder (it is {cleaned!r} as a folder name); rename it")
    return cleaned


def inside(root: str | os.PathLike, path: str | os.PathLike, what: str) -> Path:
    """``path``, after checking that it resolves (symbolic links followed) inside ``root``; ``ValueError``
    naming ``what`` otherwise."""
    base, resolved = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    if not resolved.is_relative_to(base):
        raise ValueError(f"{what}: {path} resolves to {resolved}, outside {root}; refused")
    return Path(path)
