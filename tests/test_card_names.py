"""Names on a card are shown safely and one-to-one (avlog.ingest.names), whatever bytes they hold.

Property tests: for any stored name, the shown component has no "/", NUL or control character, is not
empty, "." or "..", and decoding its escapes gives back exactly the stored bytes, so two different
names never show alike.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from avlog.ingest import names

ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def safe(shown: str) -> bool:
    return (
        shown not in ("", ".", "..")
        and "/" not in shown
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    )


def unescape_posix(shown: str) -> bytes:
    out = bytearray()
    pos = 0
    for m in ESCAPE.finditer(shown):
        out += shown[pos : m.start()].encode("utf-8")
        code = m.group(1)
        if code == "\\":
            out += b"\\"
        elif code[0] == "x":
            out.append(int(code[1:], 16))
        else:
            out += chr(int(code[1:], 16)).encode("utf-8")
        pos = m.end()
    out += shown[pos:].encode("utf-8")
    return bytes(out)


def unescape_utf16(shown: str) -> bytes:
    out = bytearray()
    pos = 0
    for m in ESCAPE.finditer(shown):
        out += shown[pos : m.start()].encode("utf-16-le")
        code = m.group(1)
        unit = ord("\\") if code == "\\" else int(code[1:], 16)
        out += unit.to_bytes(2, "little")
        pos = m.end()
    out += shown[pos:].encode("utf-16-le")
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b))
def test_a_posix_name_shows_safely_and_decodes_back_to_its_bytes(raw: bytes) -> None:
    shown = names.show_posix(raw)
    assert safe(shown.text), shown
    assert unescape_posix(shown.text) == raw
    assert (shown.altered == frozenset()) == (shown.text == raw.decode("utf-8", "replace"))  # marked iff altered


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(1, 0xFFFF), min_size=1, max_size=40))
def test_a_utf16_name_shows_safely_and_decodes_back_to_its_units(units: list[int]) -> None:
    raw = b"".join(u.to_bytes(2, "little") for u in units)
    shown = names.show_utf16(raw)
    assert safe(shown.text), shown
    assert unescape_utf16(shown.text) == raw


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=11, max_size=11), st.booleans(), st.booleans())
def test_a_short_name_always_shows_safely(raw: bytes, lower_base: bool, lower_ext: bool) -> None:
    shown = names.show_short(raw, lower_base, lower_ext)
    assert safe(shown.text), shown


def test_examples_of_each_rule() -> None:
    assert names.show_posix(b"\xff\xfeclip.MP4").text == "\\xff\\xfeclip.MP4"
    assert names.show_posix("录像.MP4".encode()).text == "录像.MP4"
    assert names.show_posix("录像.MP4".encode()).altered == frozenset()
    assert names.show_posix(b"a\\b").text == "a\\\\b"
    assert names.show_posix(b"\x1b[31m\xc2\x9b").text == "\\x1b[31m\\u009b"
    assert names.show_posix(b"..").text == "\\x2e\\x2e"
    assert names.show_utf16("bad".encode("utf-16-le") + b"\x00\xd8").text == "bad\\ud800"
    assert names.show_short(b"CFG/SET INI").text == "CFG\\x2fSET.INI"
    assert names.show_short(b"LOWER   MP4", True, True).text == "lower.mp4"
    assert names.show_short(b"           ").text == "\\x20" * 8
    assert names.show_short(b"\x05BC     MP4").text == "\\xe5BC.MP4"
    assert names.show_path(b"/media/user/CAM\xff") == "/media/user/CAM\\xff"
    note = names.note({names.SLASH, names.BACKSLASH})
    assert note is not None and note.index("Backslashes") > note.index("slash")
    assert names.original_name(["fat-8.3", "utf-16le"], [b"DCIM       ", b"a\x00"]) == {
        "encoding": "utf-16le",
        "parts": ["4443494d20202020202020", "6100"],
        "encodings": ["fat-8.3", "utf-16le"],
    }
