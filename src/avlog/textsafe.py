"""Text from outside, shown so that it cannot act on a terminal, and checked before it is stored.

File names on cards, USB strings, custodians, notes, case titles, paths and arguments are data typed or
written by others. Printed raw, an escape sequence among them moves the cursor, changes colours or
erases what was printed before; a carriage return or a line feed forges a line of a report; a
right-to-left override reorders what the reader sees. A name that is not valid UTF-8 reaches Python as
lone surrogates (``surrogateescape``) and cannot be written to a UTF-8 terminal or catalog at all.

:func:`visible` shows every such character as an escape a person can read and copy (``\\x1b``,
``\\x0a``, ``\\u202e``), and the bytes of a non-UTF-8 name as the bytes they are (``\\udcff`` as
``\\xff``). It changes nothing else: ordinary text (Chinese, spaces, a backslash) is shown as it is, so
applying it twice is the same as applying it once.

:func:`refused_character` is the rule for text that goes into the catalog (serials, custodians, case
numbers, notes): it must be valid UTF-8 and hold nothing :func:`visible` would alter, so that what a
report shows is exactly what was stored. Tabs and line breaks are refused in free text too: every
record is shown on one line (the audit trail, a table cell), and a tab would show as ``\\x09``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Unicode categories that are not themselves visible: controls (C0, DEL, C1), format characters
#: (bidirectional overrides, zero-width characters), lone surrogates, line and paragraph separators.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

#: Python's ``surrogateescape`` keeps an undecodable byte 0xNN as the lone surrogate U+DCNN.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)

_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape(char: str) -> str:
    code = ord(char)
    if code in _ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"  # the byte the name held, not the surrogate that carried it
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


#: Characters that may be hidden, found fast: everything but the printable ranges text mostly consists of
#: (ASCII, Latin to Hebrew without the soft hyphen, CJK punctuation and ideographs, Hangul), none of which
#: holds a hidden character. Each character found is then judged by its Unicode category.
_SUSPECT = re.compile("[^\x20-\x7e\u00a0-\u00ac\u00ae-\u05ff\u3000-\u9fff\uac00-\ud7a3]")


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def visible(text: str) -> str:
    """``text`` with every character that would act on a terminal or cannot be encoded shown as an escape."""
    if text.isprintable():  # the common case, checked in C: nothing to do
        return text
    return _SUSPECT.sub(lambda m: _escape(c) if _hidden(c := m.group()) else c, text)


def utf8_safe(text: str) -> str:
    """``text`` with the lone surrogates that carry the bytes of a name that is not UTF-8 shown as :func:`visible`
    shows them (``\\xff``), and nothing else changed: text that UTF-8 can carry (the catalog, the audit log, a
    JSON document). Where such a name is kept, it is kept this way."""
    return _SURROGATES.sub(lambda m: _escape(m.group()), text) if _SURROGATES.search(text) else text


@dataclass(frozen=True)
class Refused:
    """The first character that keeps a text out of the catalog."""

    position: int  # 0-based, in characters
    shown: str  # how :func:`visible` shows it, e.g. ``\\x1b`` or ``\\xff``
    undecodable: bool  # part of a name or argument that is not valid UTF-8


def refused_character(text: str) -> Refused | None:
    """The first character of ``text`` the catalog does not take (see the module's rule), or None."""
    if text.isprintable():
        return None
    for found in _SUSPECT.finditer(text):
        char = found.group()
        if _hidden(char):
            return Refused(found.start(), _escape(char), unicodedata.category(char) == "Cs")
    return None


def undecodable_character(text: str) -> Refused | None:
    """The first lone surrogate of ``text`` (a byte of a name or argument that is not UTF-8), or None."""
    found = _SURROGATES.search(text)
    return None if found is None else Refused(found.start(), _escape(found.group()), True)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # JSON spells a character beyond the BMP as its UTF-16 surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


#: What :func:`json_visible` looks at: as :data:`_SUSPECT`, but not C0 (``json.dumps`` escapes it inside
#: strings, and the newlines left are the document's own).
_JSON_SUSPECT = re.compile("[^\x00-\x7e\u00a0-\u00ac\u00ae-\u05ff\u3000-\u9fff\uac00-\ud7a3]")


def json_visible(dumped: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` with the hidden characters it leaves raw (DEL,
    C1 controls, bidirectional overrides, line separators) written as ``\\uXXXX`` escapes: the same document
    for a parser, harmless when a person pipes it to a terminal. A lone surrogate (a byte of a name that is
    not UTF-8) becomes the text :func:`visible` shows for it (``\\xff``): a UTF-8 stream cannot carry it."""

    def escaped(found: re.Match[str]) -> str:
        char = found.group()
        if not _hidden(char):
            return char
        return "\\" + _escape(char) if unicodedata.category(char) == "Cs" else _json_escape(char)

    return _JSON_SUSPECT.sub(escaped, dumped)
