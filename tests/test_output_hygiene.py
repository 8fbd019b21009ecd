# ruff: noqa: F811 - the udev_bed fixture is imported, and a test parameter names it
"""Nothing avlog prints can act on a terminal: stored text with escape sequences, carriage returns, line feeds,
bells, C1 controls, bidirectional overrides and the bytes of names that are not UTF-8 are shown as escapes,
in every command's tables, messages, error line and log lines; JSON keeps the values and stays valid UTF-8."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from avlog import marks
from avlog.context import init_store, open_context
from avlog.ingest.pipeline import ingest
from avlog.ingest.sources import FolderSource
from avlog.iso import registry
from avlog.samples import SampleCard, build_demo_card
from conftest import HOSTILE, SHOWN, TZ, Cli, error_line, hidden, make_fat32_image, shift_end
from udevbed import UdevBed, udev_bed  # noqa: F401 - udev_bed is a fixture

SERIAL = "BC-\x1b[7m9"
SERIAL_SHOWN = "BC-\\x1b[7m9"
CASE = "K-\x1b[1m1"
EVIL_NAME = "evil\x1b]0;pwned\x07\x1b[31m.MP4"  # an OSC that would retitle the terminal, then red
EVIL_SHOWN = "evil\\x1b]0;pwned\\x07\\x1b[31m.MP4"


# -- every command over a store that holds hostile text ---------------------------------------------


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose devices, file names, flags, cases, holds and discs hold hostile text, written through
    the core (which stores what it is given; only the command line refuses such text)."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "store"
    init_store(root, actor="tester")
    card = build_demo_card(base / "card", shift_end=shift_end(), tz=TZ)
    first = card.root / next(p for p in card.recordings if p.endswith("0002.MP4"))
    shutil.copyfile(first, first.parent / EVIL_NAME)
    ctx = open_context(root, actor="tester")
    try:
        ctx.catalog.register_device(SERIAL, custodian=HOSTILE, unit=HOSTILE, kind="bodycam", label=HOSTILE)
        ctx.catalog.register_device("BC-CLEAN", custodian=HOSTILE, unit="一中队", kind="bodycam", label=None)
        report = ingest(ctx, FolderSource(card.root), SERIAL)
        assert report.failed == 0 and report.stored >= 5
        marks.flag(ctx, ["1"], "dispute", HOSTILE)
        marks.case_add(ctx, CASE, title=HOSTILE, retain_until=date(2040, 1, 1), retain_years=None)
        marks.case_link(ctx, CASE, ["2"])
        marks.hold_add(ctx, reason=HOSTILE, clip_ref="3")
        # A device's hold over a window long past: listed, but keeping none of these clips.
        marks.hold_add(
            ctx,
            reason=HOSTILE,
            device_serial=SERIAL,
            since=datetime(2001, 1, 1, tzinfo=TZ),
            until=datetime(2001, 1, 2, tzinfo=TZ),
        )
    finally:
        ctx.close()
    made = avlog(root, "burn-iso", "--media", "cd", "--json")
    assert made.returncode == 0, made.stderr
    ctx = open_context(root, actor="tester")
    try:
        registry.mark(ctx, "1", burned=True, location=HOSTILE, note=HOSTILE)
    finally:
        ctx.close()
    return root


@pytest.fixture(scope="module")
def hostile_card(hostile_store: Path) -> Path:
    return hostile_store.parent / "card"


def avlog(store: Path | bytes, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    """avlog as its own process on a wide terminal-less screen (tables do not wrap); its output must be
    UTF-8 (decoding is strict)."""
    env = {**os.environ, "AVLOG_USER": "tester", "COLUMNS": "2000"}
    done = subprocess.run(
        [sys.executable, "-m", "avlog", "--store", store, *args], capture_output=True, env=env, timeout=120
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


#: command, then what its output must show escaped (at least one of them each).
COMMANDS = [
    (["ls"], [SERIAL_SHOWN, EVIL_SHOWN]),
    (["show", "1"], [SERIAL_SHOWN, SHOWN]),  # custodian, the flag's note, the audit trail
    (["show", "2"], [SHOWN]),  # the case's title
    (["show", "3"], [SHOWN]),  # the hold's reason
    (["device", "list"], [SERIAL_SHOWN, SHOWN]),
    (["audit", "log", "--limit", "1000"], [SERIAL_SHOWN, SHOWN]),
    (["hold", "list"], [SHOWN, SERIAL_SHOWN]),
    (["case", "show", CASE], [SHOWN, "K-\\x1b[1m1"]),
    (["disc", "list"], [SHOWN]),
    (["disc", "show", "1"], [SHOWN]),
    (["disc", "locate", "1"], [SHOWN]),
    (["retention-sweep", "--dry-run", "--as-of", "2100-01-01"], [SERIAL_SHOWN, EVIL_SHOWN]),
    (["flag", "2", "--reason", "incident"], []),
    (["case", "show", "nope\x1b[2J"], ["nope\\x1b[2J"]),  # the error line
    (["ls", "--device", SERIAL], [SERIAL_SHOWN]),
]


@pytest.mark.parametrize("args, shown", COMMANDS, ids=[" ".join(a[:2]) for a, _s in COMMANDS])
def test_no_command_prints_a_raw_control_character(hostile_store: Path, args: list[str], shown: list[str]) -> None:
    done = avlog(hostile_store, *args)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert hidden(done.stdout) == [] and hidden(done.stderr) == [], (done.stdout, done.stderr)
    for text in shown:
        assert text in done.stdout + done.stderr, (text, done.stdout, done.stderr)


def test_an_ingest_report_shows_file_names_and_custodians_escaped(hostile_store: Path, hostile_card: Path) -> None:
    done = avlog(hostile_store, "ingest", "--from", str(hostile_card), "--device-serial", "BC-CLEAN")
    assert done.returncode == 0, done.stderr
    assert hidden(done.stdout) == [] and hidden(done.stderr) == []
    assert EVIL_SHOWN in done.stdout and SHOWN in done.stdout  # the file, the custodian in the heading


@pytest.mark.parametrize(
    "args, key",
    [
        (["ls", "--json"], "clips"),
        (["show", "1", "--json"], "custodian"),
        (["device", "list", "--json"], "devices"),
        (["hold", "list", "--json"], "holds"),
        (["audit", "log", "--json"], "entries"),
        (["disc", "show", "1", "--json"], "location"),
        (["case", "show", CASE, "--json"], "title"),
    ],
)
def test_json_keeps_the_stored_values_and_prints_nothing_raw(hostile_store: Path, args: list[str], key: str) -> None:
    done = avlog(hostile_store, *args)
    assert done.returncode == 0, done.stderr
    assert hidden(done.stdout) == []
    document = json.loads(done.stdout)
    assert key in document
    assert HOSTILE in set(strings(document))  # the value as stored, control characters and all


def strings(value: object) -> list[str]:
    """Every string in a JSON document, keys aside."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_device_scan_shows_hostile_usb_strings_escaped(udev_bed: UdevBed, tmp_path: Path) -> None:
    """A USB device names itself: its vendor, model and serial strings are the device's to choose."""
    card = build_demo_card(tmp_path / "card", shift_end=shift_end(), tz=TZ)
    image = make_fat32_image(card.root, tmp_path / "card.img")
    store = tmp_path / "store"
    init_store(store, actor="tester")
    udev_bed.add("cam1", "SN\x1b[31mX", "2bdf", "0280", image, vendor="Ven\x1b]0;t\x07", model="Mod\x1b[2J")
    env = {**udev_bed.env(), "AVLOG_USER": "tester", "COLUMNS": "2000"}
    done = subprocess.run(
        [sys.executable, "-m", "avlog", "--store", str(store), "device", "scan"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == 0, err
    assert hidden(out) == [] and hidden(err) == []
    # The serial comes as the device sent it; udev has already replaced what it dislikes in vendor and model.
    assert "SN\\x1b[31mX" in out and "Mod" in out


# -- the one error document, whatever fails ------------------------------------------------------------


def test_an_internal_error_with_json_still_prints_the_error_document(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from avlog.store.catalog import Catalog

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("catalog exploded \x1b[31mred")

    monkeypatch.setattr(Catalog, "clips", broken)
    result = cli("ls", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["exit_code"] == 1
    assert "internal error: RuntimeError: catalog exploded" in document["error"]
    (line,) = result.stderr.splitlines()
    assert line.startswith("avlog: internal error: RuntimeError") and "\\x1b[31mred" in line
    plain = cli("ls")
    assert plain.exit_code == 1 and plain.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "--json", "--no-such-option"],
        ["verify", "--sample", "0", "--json"],
        ["show", "--json"],  # a missing argument
        ["hold", "release", "99999999999999999999", "--note", "x", "--json"],
        ["device", "register", "BC\x1b[31m", "--custodian", "x", "--unit", "y", "--json"],
    ],
)
def test_a_usage_error_with_json_is_a_document_and_one_line(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["exit_code"] == 2
    line = error_line(result.stderr)
    assert "--help" in line and hidden(line) == []


def test_a_usage_error_of_the_top_level_options_is_a_document_too(tmp_path: Path) -> None:
    done = avlog(tmp_path, "--no-such-option", "ls", "--json")
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert document["ok"] is False and document["exit_code"] == 2
    assert document["error"].startswith("No such option: --no-such-option (see: ")
    assert done.stderr.splitlines() == [f"avlog: {document['error']}"]


def test_without_arguments_a_group_still_shows_its_help(cli: Cli) -> None:
    result = cli("device")
    assert result.exit_code == 2 and "register" in result.stdout + result.stderr


def test_a_terminal_that_cannot_show_a_character_gets_an_escape_not_a_crash(hostile_store: Path) -> None:
    """The last safety net of main(): an output encoding without Chinese (an ASCII-only terminal) gets
    backslash escapes for what it cannot show, never an exception halfway through a table."""
    env = {**os.environ, "AVLOG_USER": "tester", "PYTHONIOENCODING": "ascii", "COLUMNS": "2000"}
    for args in (["device", "list"], ["show", "1"], ["case", "show", "不存在"]):
        done = subprocess.run(
            [sys.executable, "-m", "avlog", "--store", str(hostile_store), *args], capture_output=True, env=env
        )
        out, err = done.stdout.decode("ascii"), done.stderr.decode("ascii")  # strictly ASCII
        assert "Traceback" not in err and "internal error" not in err, err
        assert done.returncode == (1 if args[0] == "case" else 0), err
        assert "\\u4e0d\\u5b58\\u5728" in err if args[0] == "case" else "\\u7ea2" in out


def test_a_file_name_that_is_not_utf8_is_shown_with_its_bytes(store: Path, demo_card: SampleCard) -> None:
    """A folder card holding a file whose name is not UTF-8 (and holds an escape sequence): ingested, listed and
    shown with its odd bytes as \\xNN and nothing raw."""
    first = demo_card.root / next(p for p in demo_card.recordings if p.endswith("0002.MP4"))
    shutil.copyfile(first, os.fsencode(first.parent) + b"/clip\xff\x1b[31m.MP4")
    assert avlog(store, "device", "register", "BC-0001", "--custodian", "x", "--unit", "y").returncode == 0
    done = avlog(store, "ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001")
    assert done.returncode == 0, done.stderr
    assert hidden(done.stdout) == [] and hidden(done.stderr) == []
    assert "clip\\xff" in done.stdout
    listed = avlog(store, "ls", "--json")
    assert listed.returncode == 0 and hidden(listed.stdout) == []
    assert any("clip\\xff" in c["original_path"] for c in json.loads(listed.stdout)["clips"])
    # The name's own bytes are kept in the catalog beside the escaped path, in the clip and its ingest item.
    import sqlite3

    conn = sqlite3.connect(f"file:{store / 'catalog.sqlite'}?mode=ro", uri=True)
    (clip_raw,) = conn.execute("SELECT original_name FROM clips WHERE original_path LIKE '%clip%'").fetchone()
    (item_raw,) = conn.execute("SELECT original_name FROM ingest_items WHERE original_path LIKE '%clip%'").fetchone()
    conn.close()
    assert clip_raw == item_raw
    assert bytes.fromhex(json.loads(clip_raw)["parts"][-1]) == b"clip\xff\x1b[31m.MP4"
    (shown,) = [c for c in json.loads(listed.stdout)["clips"] if "clip\\xff" in c["original_path"]]
    assert shown["original_name"] == json.loads(clip_raw)


def test_json_to_a_full_stdout_is_one_line_not_a_traceback(store: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "avlog", "--store", str(store), "audit", "verify", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["avlog: cannot write or read: No space left on device"]
