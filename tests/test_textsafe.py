"""avlog.textsafe and the consoles, log and error lines of avlog.render: what acts on a terminal is shown as an
escape, nothing else changes; JSON keeps every value and stays valid UTF-8."""

from __future__ import annotations

import io
import json
import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.table import Table

from avlog import render
from avlog.textsafe import (
    json_visible,
    refused_character,
    undecodable_character,
    utf8_safe,
    visible,
)
from conftest import HOSTILE, SHOWN, hidden

HIDDEN = ("Cc", "Cf", "Cs", "Zl", "Zp")

SERIAL, SERIAL_SHOWN = "BC-\x1b[7m9", "BC-\\x1b[7m9"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain 张三 text", "plain 张三 text"),
        ("a\x1b[31mb", "a\\x1b[31mb"),
        ("line\nforged", "line\\x0aforged"),
        ("tab\there", "tab\\x09here"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("name\udcff\udc80.mp4", "name\\xff\\x80.mp4"),  # the bytes of a name that is not UTF-8
        ("rtl\u202egnp.exe", "rtl\\u202egnp.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("sep\u2028x", "sep\\u2028x"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("back\\slash \u3000 ideographic space", "back\\slash \u3000 ideographic space"),
    ],
)
def test_visible_escapes_exactly_what_acts_on_a_terminal(text: str, shown: str) -> None:
    assert visible(text) == shown


@given(st.text())
def test_visible_output_is_inert_encodable_and_stable(text: str) -> None:
    shown = visible(text)
    assert hidden(shown) == [] and "\n" not in shown
    shown.encode("utf-8")  # never a lone surrogate left
    assert visible(shown) == shown
    assert (refused_character(text) is None) == (shown == text)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Zl", "Zp"))))
def test_ordinary_text_is_shown_as_it_is(text: str) -> None:
    assert visible(text) == text and refused_character(text) is None


def test_every_hidden_character_of_unicode_is_escaped() -> None:
    """The fast search for suspects skips ranges that hold no hidden character; this holds for every code point
    of this Python's Unicode tables (a future Unicode version adding one to those ranges would fail here)."""
    hidden_chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in HIDDEN]
    assert len(hidden_chars) > 2000
    text = "".join(hidden_chars)
    assert visible(text) == "".join(visible(c) for c in hidden_chars)
    assert all(visible(c) != c for c in hidden_chars)
    assert all(refused_character(f"ok{c}") is not None for c in hidden_chars)
    dumped = json_visible(json.dumps(text, ensure_ascii=False))
    assert hidden(dumped) == [] and json.loads(dumped) == utf8_safe(text)


def test_undecodable_character_finds_the_first_byte_that_is_not_utf8() -> None:
    found = undecodable_character("a\x1bb\udcfec")
    assert found is not None and (found.position, found.shown, found.undecodable) == (3, "\\xfe", True)
    assert undecodable_character("张三\x1b") is None


def test_refused_character_says_where_and_what() -> None:
    found = refused_character("BC\udcff1")
    assert found is not None and (found.position, found.shown, found.undecodable) == (2, "\\xff", True)
    found = refused_character("张三\x1b")
    assert found is not None and (found.position, found.shown, found.undecodable) == (2, "\\x1b", False)


def test_json_keeps_values_escapes_controls_and_shows_undecodable_bytes() -> None:
    document = {"note": HOSTILE, "path": "/card/a\udcffb.mp4", "keys\udcfe": [Path("/x\udcfd"), 3, None, True]}
    text = json_visible(json.dumps(document, ensure_ascii=False, default=str))
    text.encode("utf-8")
    assert hidden(text) == [] and "\n" not in text
    back = json.loads(text)
    assert back["note"] == HOSTILE  # control characters are JSON escapes: the value is kept exactly
    assert back["path"] == "/card/a\\xffb.mp4" and back["keys\\xfe"] == ["/x\\xfd", 3, None, True]
    assert utf8_safe("ok\udcff\x1b") == "ok\\xff\x1b"


def test_emit_json_with_a_surrogate_never_crashes(capsys: pytest.CaptureFixture[str]) -> None:
    render.emit_json({"source": "/media/\udcffcard", "note": "\x1b[31m\u2028"})
    out = capsys.readouterr().out
    assert json.loads(out) == {"source": "/media/\\xffcard", "note": "\x1b[31m\u2028"}
    assert hidden(out) == []


def test_a_terminal_gets_avlogs_own_colours_and_nothing_else() -> None:
    """On a terminal rich adds its own SGR sequences; once those are taken out, nothing hidden is left."""
    buffer = io.StringIO()
    console = render.VisibleConsole(file=buffer, force_terminal=True, color_system="standard", width=200)
    table = Table(title=HOSTILE)
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    console.print(table)
    console.print(HOSTILE, style="bold red")
    console.print(render.styled(HOSTILE, "green"))
    rich_own = re.sub(r"\x1b\[[0-9;]*m", "", buffer.getvalue())
    assert hidden(rich_own) == []
    assert rich_own.count(SHOWN) == 5


def test_log_and_error_lines_are_one_inert_line(capsys: pytest.CaptureFixture[str]) -> None:
    render.log(f"/dev/sdb1: recorder {SERIAL} plugged in: {HOSTILE}")
    render.error_line(f"no case {HOSTILE}")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(hidden(line) == [] for line in lines)
    assert lines[0].endswith(f"avlog: /dev/sdb1: recorder {SERIAL_SHOWN} plugged in: {SHOWN}")
    assert lines[1] == f"avlog: no case {SHOWN}"
