"""How a name stored on a card is shown: one path component, safe, visible, one-to-one.

A card is hostile input: its names may hold bytes that are not text, control
characters that rewrite a terminal, a ``/`` that would make one file look like
another's path, or be ``.`` / ``..``. Every name is shown by one rule:

- the stored bytes are decoded exactly (UTF-8 for a mounted card, UTF-16LE for a
  FAT or exFAT long name, ASCII for a FAT 8.3 name);
- what cannot be shown as it is becomes an escape that names it:
  ``\\xNN`` for a byte that does not decode (and for a C0 control, DEL or ``/``),
  ``\\uNNNN`` for a C1 control or an unpaired UTF-16 surrogate;
- a backslash is doubled, so an escape never stands for two different names;
- a name made only of one or two dots is shown as ``\\x2e`` / ``\\x2e\\x2e``.

So a shown component never contains ``/``, NUL or a control character, is never
empty, ``.`` or ``..``, and two different stored names never show alike. When
the shown name is not the exact decoding of the stored one, the entry keeps the
stored bytes (:func:`original_name`) and a sentence saying what was altered
(:func:`note`). Art. 14, 24: the record names the file as it was on the card.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from avlog.i18n import N_, _

# What was altered in a shown name; each kind has one whole sentence for the person reading the report.
UNDECODABLE = "undecodable"  # bytes that are not UTF-8 (a mounted card)
OEM = "oem"  # bytes above ASCII in an 8.3 name: the card's code page is unknown
SURROGATE = "surrogate"  # an unpaired UTF-16 surrogate in a long name
CONTROL = "control"
SLASH = "slash"
BACKSLASH = "backslash"
DOTS = "dots"
BLANK = "blank"
LFN_MISMATCH = "lfn_mismatch"  # a long name whose checksum names another short entry: ignored, as FAT says
LFN_DAMAGED = "lfn_damaged"  # a long name whose parts are out of order, empty or too long: ignored

NOTES = {
    UNDECODABLE: N_("The name on the card is not valid UTF-8; bytes that cannot be decoded are shown as \\xNN."),
    OEM: N_("The short name on the card holds bytes outside ASCII in an unknown code page; they are shown as \\xNN."),
    SURROGATE: N_("The long name on the card is not valid UTF-16; unpaired surrogates are shown as \\uNNNN."),
    CONTROL: N_("Control characters in the name are shown as escapes."),
    SLASH: N_("A slash stored in the name is shown as \\x2f, so that it cannot be taken for a folder."),
    BACKSLASH: N_("Backslashes in the name are shown doubled, so that escapes stay unambiguous."),
    DOTS: N_("A name made only of dots is shown as \\x2e, so that it cannot be taken for a folder link."),
    BLANK: N_("A blank short name is shown with its spaces as \\x20."),
    LFN_MISMATCH: N_(
        "A long name on the card belongs to no entry (its checksum does not match); it was ignored and the "
        "short name is shown."
    ),
    LFN_DAMAGED: N_("A damaged long name on the card was ignored; the short name is shown."),
}

# The order sentences appear in, whatever order the kinds were found in.
_ORDER = tuple(NOTES)


@dataclass(frozen=True, slots=True)
class Shown:
    """One path component as shown, and what had to be altered to show it (empty: the exact decoding)."""

    text: str
    altered: frozenset[str] = frozenset()


def _escape(text: str, undecodable_as_bytes: bool) -> tuple[str, set[str]]:
    """Escape what may not be shown in a whole name, then a name of only dots."""
    shown, kinds = _escape_chars(text, undecodable_as_bytes)
    if shown in (".", ".."):
        shown = "\\x2e" * len(shown)
        kinds.add(DOTS)
    return shown, kinds


def _escape_chars(text: str, undecodable_as_bytes: bool) -> tuple[str, set[str]]:
    """Escape what may not be shown; surrogates are bytes of a mounted card's name or UTF-16 code units."""
    kinds: set[str] = set()
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
            kinds.add(BACKSLASH)
        elif ch == "/":
            out.append("\\x2f")
            kinds.add(SLASH)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
            kinds.add(CONTROL)
        elif 0x80 <= code <= 0x9F:
            out.append(f"\\u{code:04x}")
            kinds.add(CONTROL)
        elif 0xD800 <= code <= 0xDFFF:
            if undecodable_as_bytes and 0xDC80 <= code <= 0xDCFF:  # surrogateescape: one byte of the name
                out.append(f"\\x{code - 0xDC00:02x}")
                kinds.add(UNDECODABLE)
            else:
                out.append(f"\\u{code:04x}")
                kinds.add(SURROGATE)
        else:
            out.append(ch)
    return "".join(out), kinds


def show_posix(raw: bytes) -> Shown:
    """A name from a mounted card (bytes, as the kernel gives them): UTF-8, with the rest escaped."""
    text, kinds = _escape(raw.decode("utf-8", "surrogateescape"), undecodable_as_bytes=True)
    if not text:  # the kernel never gives one; kept total for hostile callers
        return Shown("\\x00", frozenset({CONTROL}))
    return Shown(text, frozenset(kinds))


def show_utf16(raw: bytes) -> Shown:
    """A long name (FAT LFN or exFAT), as UTF-16LE code units; the caller has cut it at its length or NUL."""
    text, kinds = _escape(raw.decode("utf-16-le", "surrogatepass"), undecodable_as_bytes=False)
    return Shown(text, frozenset(kinds))


def show_short(stored: bytes, lower_base: bool = False, lower_ext: bool = False) -> Shown:
    """A FAT 8.3 name from its 11 stored bytes; ``lower_*`` are the case bits Windows NT keeps in the entry.

    Bytes above ASCII are in the card's OEM code page, which the card does not
    name: they are shown as ``\\xNN`` rather than guessed.
    """
    name = bytearray(stored[:11])
    if name[:1] == b"\x05":  # 0x05 stands for a first byte 0xE5, which marks a deleted entry
        name[0] = 0xE5
    base, ext = bytes(name[:8]).rstrip(b" "), bytes(name[8:11]).rstrip(b" ")
    kinds: set[str] = set()

    def part(raw: bytes, lower: bool) -> str:
        out = []
        for byte in raw:
            if byte >= 0x80:
                out.append(f"\\x{byte:02x}")
                kinds.add(OEM)
                continue
            ch = chr(byte)
            if lower and "A" <= ch <= "Z":
                ch = ch.lower()
            escaped, found = _escape_chars(ch, undecodable_as_bytes=False)
            out.append(escaped)
            kinds.update(found)
        return "".join(out)

    if not base:  # an 8.3 name may not start with a space; show the stored spaces rather than nothing
        shown = "\\x20" * 8 + ("." + part(ext, lower_ext) if ext else "")
        kinds.add(BLANK)
        return Shown(shown, frozenset(kinds))
    text = part(base, lower_base) + ("." + part(ext, lower_ext) if ext else "")
    if text in (".", ".."):
        text = "\\x2e" * len(text)
        kinds.add(DOTS)
    return Shown(text, frozenset(kinds))


def show_path(path: str | bytes | os.PathLike[str]) -> str:
    """A local path (a mount point, an image file) for messages and records: its bytes escaped as names are.

    A card's label becomes its mount point's name, so even the path avlog is
    given may hold bytes that are not text. ``.`` and ``..`` stay as they are
    here: they are the user's own spelling of a path, not a card's names.
    """
    raw = os.fsencode(path)
    return "/".join(_escape_chars(os.fsdecode(part), undecodable_as_bytes=True)[0] for part in raw.split(b"/"))


def note(kinds: Iterable[str]) -> str | None:
    """The sentences saying what was altered in a path's names, in a fixed order; None when nothing was."""
    found = set(kinds)
    sentences = [_(NOTES[k]) for k in _ORDER if k in found]
    return " ".join(sentences) if sentences else None


def original_name(encodings: list[str], parts: list[bytes]) -> dict[str, object]:
    """The stored bytes of each path component, JSON-able: ``{"encoding", "parts"}`` (hex per component).

    ``encoding`` is ``utf-16le``, ``fat-8.3`` or ``posix``. A FAT path may mix
    long-named and short-only components: then ``encoding`` is the file's own
    and ``encodings`` lists each component's.
    """
    doc: dict[str, object] = {"encoding": encodings[-1], "parts": [p.hex() for p in parts]}
    if len(set(encodings)) > 1:
        doc["encodings"] = list(encodings)
    return doc


def fold(shown: str) -> str:
    """The key two names of one FAT folder collide under: FAT compares names without case."""
    return unicodedata.normalize("NFC", shown).casefold()


def utf16_until_nul(units: bytes) -> bytes:
    """UTF-16LE code units up to the first NUL unit, which ends a name stored in fixed-size slots."""
    for i in range(0, len(units) - 1, 2):
        if units[i : i + 2] == b"\x00\x00":
            return units[:i]
    return units
