"""What the command line hands to avlog: text that is not UTF-8 or would not show as typed is refused before
anything is stored (exit 2, naming the argument); paths are used whatever their bytes and shown escaped;
numbers that name a row fit the catalog or are a usage error, never an overflow."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import typer

from avlog.cli import app
from avlog.samples import SampleCard
from conftest import Cli, catalog_rows, error_line, register

#: str parameters that are paths or device names: used as given, whatever their bytes.
PATH_PARAMETERS = {("ingest", "device"), ("burn-iso", "burn"), ("disc verify", "target"), ("disc burn", "device")}
#: str parameters whose text is stored in the catalog: control and invisible characters are refused too.
STORED_PARAMETERS = {
    ("device register", "serial"),
    ("device register", "custodian"),
    ("device register", "unit"),
    ("device register", "label"),
    ("ingest", "device_serial"),
    ("flag", "note"),
    ("unflag", "note"),
    ("case add", "case_no"),
    ("case add", "title"),
    ("case unlink", "note"),
    ("hold add", "reason"),
    ("hold add", "device"),
    ("hold release", "note"),
    ("disc mark", "location"),
    ("disc mark", "note"),
}


def leaf_commands() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        elif path:
            found.append((" ".join(path), command))

    walk(typer.main.get_command(app), ())
    return found


def takes_text(command: Any, name: str) -> bool:
    """Whether the command's function declares parameter ``name`` as text (str, str | None, list[str])."""
    hints = typing.get_type_hints(inspect.unwrap(command.callback))
    return hints.get(name) in (str, str | None, list[str], list[str] | None)


def text_parameters() -> list[tuple[str, Any, Any]]:
    """Every (command, its click command, a text parameter of it) that is not a path."""
    return [
        (name, command, param)
        for name, command in leaf_commands()
        for param in command.params
        if takes_text(command, param.name) and (name, param.name) not in PATH_PARAMETERS
    ]


def benign(param: Any) -> list[str]:
    """A value that passes ``param``'s own checks, as command-line words."""
    value = {"reason": "dispute", "kind": "bodycam", "on": "2026-01-01", "retain_until": "2030-01-01"}.get(
        param.name, "1"
    )
    return [param.opts[0], value] if param.opts[0].startswith("-") else [value]


def invocation(command_name: str, command: Any, tested: Any, value: str) -> list[str]:
    words = command_name.split()
    for param in command.params:
        if param is tested:
            words += [param.opts[0], value] if param.opts[0].startswith("-") else [value]
        elif param.required:
            words += benign(param)
    return words


TEXT_PARAMETERS = text_parameters()
IDS = [f"{name} {param.name}" for name, _c, param in TEXT_PARAMETERS]


def test_the_lists_name_real_parameters() -> None:
    names = {(name, param.name) for name, _c, param in TEXT_PARAMETERS}
    assert names >= STORED_PARAMETERS
    every = {(name, p.name) for name, command in leaf_commands() for p in command.params}
    assert every >= PATH_PARAMETERS


@pytest.mark.parametrize("name, command, param", TEXT_PARAMETERS, ids=IDS)
def test_every_text_argument_that_is_not_utf8_is_a_usage_error(cli: Cli, name: str, command: Any, param: Any) -> None:
    result = cli(*invocation(name, command, param, "x\udcffy"))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = error_line(result.stderr)
    assert "not valid UTF-8: the byte \\xff at character 2" in line, line


@pytest.mark.parametrize("name, command, param", TEXT_PARAMETERS, ids=IDS)
def test_stored_text_with_a_control_character_is_a_usage_error(cli: Cli, name: str, command: Any, param: Any) -> None:
    """Refused for text that is stored; for a lookup, a control character finds nothing or fails later."""
    result = cli(*invocation(name, command, param, "x\x1b[31my"))
    line = error_line(result.stderr) if result.exit_code else ""
    refused = result.exit_code == 2 and "the control or invisible character \\x1b at character 2" in line
    assert refused == ((name, param.name) in STORED_PARAMETERS), (result.exit_code, result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["device", "register", "BC-1", "--custodian", "张三\t", "--unit", "一中队"],
        ["device", "register", "BC-1", "--custodian", "张三", "--unit", "一\n中队"],
        ["device", "register", "BC\u200b-1", "--custodian", "张三", "--unit", "一中队"],  # a zero-width space
        ["device", "register", "BC-1", "--custodian", "张三", "--unit", "一中队", "--label", "\u202egnp.exe"],
    ],
)
def test_tabs_line_breaks_and_invisible_characters_are_refused(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert "control or invisible character" in error_line(result.stderr)
    assert json.loads(cli("device", "list", "--json").stdout) == {"devices": []}


def test_ordinary_chinese_text_and_spaces_are_stored_as_typed(cli: Cli) -> None:
    done = cli("device", "register", "BC-0001", "--custodian", "张 三", "--unit", "一中队\u3000二组", "--json")
    assert done.exit_code == 0, done.stderr
    assert (json.loads(done.stdout)["custodian"], json.loads(done.stdout)["unit"]) == ("张 三", "一中队\u3000二组")


# -- real bytes on a real command line -----------------------------------------------------------------


def avlog_bytes(*args: str | bytes, cwd: Path | None = None) -> tuple[int, str, str]:
    """avlog as a process whose argv holds raw bytes; its output must be UTF-8 (strict decoding)."""
    env = {**os.environ, "AVLOG_USER": "tester", "COLUMNS": "2000"}
    done = subprocess.run([sys.executable, "-m", "avlog", *args], capture_output=True, env=env, cwd=cwd, timeout=120)
    return done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")


@pytest.mark.parametrize(
    "args, names",
    [
        ([b"device", b"register", b"BC\xff01", b"--custodian", b"x", b"--unit", b"y"], "'serial'"),
        ([b"device", b"register", b"BC-01", b"--custodian", b"\xe5\xbc", b"--unit", b"y"], "'--custodian'"),
        ([b"case", b"add", b"K-\xff", b"--retain-years", b"5"], "'CASE'"),
        ([b"ls", b"--device", b"\xff"], "'--device'"),
        ([b"show", b"\xfe\xff"], "'clip'"),
        ([b"hold", b"add", b"--case", b"K", b"--reason", b"\xc0\xaf"], "'--reason'"),
    ],
)
def test_arguments_that_are_not_utf8_are_refused_by_name(store: Path, args: list[bytes], names: str) -> None:
    code, out, err = avlog_bytes(b"--store", bytes(store), *args)
    assert code == 2, err
    line = error_line(err)
    assert names in line and "not valid UTF-8" in line and "\\x" in line, line
    assert out == ""
    assert catalog_rows(store, "SELECT COUNT(*) AS n FROM audit")[0]["n"] == 1  # only the store's creation


def test_a_store_and_a_card_whose_paths_are_not_utf8(tmp_path: Path, demo_card: SampleCard) -> None:
    """Paths are used as given and shown with their odd bytes as \\xNN; the catalog keeps that spelling."""
    store = bytes(tmp_path) + b"/st\xff\x1b[31mre"
    card = bytes(tmp_path) + b"/card\xfe"
    os.rename(demo_card.root, card)
    code, out, err = avlog_bytes(b"--store", store, b"init")
    assert code == 0, err
    assert "st\\xff\\x1b[31mre" in err
    assert (
        avlog_bytes(b"--store", store, b"device", b"register", b"BC-0001", b"--custodian", b"x", b"--unit", b"y")[0]
        == 0
    )
    code, out, err = avlog_bytes(b"--store", store, b"ingest", b"--from", card, b"--device-serial", b"BC-0001")
    assert code == 0, err
    assert "card\\xfe" in out.splitlines()[0]
    code, out, err = avlog_bytes(
        b"--store", store, b"ingest", b"--from", card, b"--device-serial", b"BC-0001", b"--json"
    )
    assert code == 0, err
    assert json.loads(out)["source"].endswith("/card\\xfe")
    code, out, err = avlog_bytes(b"--store", store, b"show", b"1", b"--json")
    assert code == 0, err
    assert "/st\\xff\x1b[31mre/objects/" in json.loads(out)["object_path"]  # JSON keeps the escape character
    code, out, err = avlog_bytes(b"--store", store, b"audit", b"log", b"--json")
    assert code == 0, err
    details = {e["action"]: e["details"] for e in json.loads(out)["entries"]}
    assert details["store.init"]["path"].endswith("/st\\xff\x1b[31mre")  # the catalog holds UTF-8 only
    assert details["ingest.start"]["source"].endswith("/card\\xfe")
    code, out, err = avlog_bytes(
        b"--store", store, b"ingest", b"--from", card + b"/gone\xfd", b"--device-serial", b"BC-0001"
    )
    assert code == 1 and "gone\\xfd" in error_line(err)


# -- numbers that name a row -----------------------------------------------------------------------------

HUGE = "99999999999999999999"  # more than SQLite's INTEGER holds


@pytest.mark.parametrize(
    "args",
    [
        ["show", "999999999999999999999"],
        ["show", "0"],
        ["show", "²"],
        ["hold", "release", HUGE, "--note", "x"],
        ["hold", "release", "0", "--note", "x"],
        ["hold", "release", "-1", "--note", "x"],
        ["disc", "show", HUGE],
        ["disc", "show", "0"],
        ["disc", "verify", HUGE],
        ["disc", "mark", HUGE, "--location", "cabinet 3"],
        ["disc", "locate", "999999999999999999999"],
        ["verify", "--sample", HUGE],
        ["verify", "--sample", "0"],
        ["audit", "log", "--limit", HUGE],
        ["flag", "999999999999999999999", "--reason", "dispute"],
        ["case", "link", "K-1", "999999999999999999999"],
        ["ls", "--since", "0001-01-01"],
        ["ls", "--until", "9999-12-31T23:59:59-12:00"],
        ["retention-sweep", "--dry-run", "--as-of", "9999-12-31"],
        ["hold", "add", "--device", "BC-0001", "--since", "0001-01-01", "--reason", "x"],
        ["burn-iso", "--clip", HUGE, "--dry-run"],
        ["ingest", "--wait", "--timeout", "inf"],
        ["ingest", "--wait", "--timeout", "nan"],
        ["ingest", "--wait", "--timeout", "-1"],
    ],
)
def test_numbers_and_times_out_of_range_are_usage_errors(cli: Cli, args: list[str]) -> None:
    register(cli)
    assert cli("case", "add", "K-1", "--retain-years", "5").exit_code == 0
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = error_line(result.stderr)
    assert "too large to convert" not in line and "internal error" not in line


def test_paths_the_catalog_must_record_are_refused_or_kept_escaped_when_not_utf8(
    tmp_path: Path, demo_card: SampleCard
) -> None:
    """Where a path is kept to be used again (a disc image's, a cleared card's), it cannot be kept with its
    bytes shown as \\xNN: such a path is refused up front, before anything is written."""
    store = bytes(tmp_path) + b"/store"
    assert avlog_bytes(b"--store", store, b"init")[0] == 0
    out = bytes(tmp_path) + b"/out\xff"
    code, out_text, err = avlog_bytes(b"--store", store, b"burn-iso", b"--out", out, b"--json")
    assert code == 2 and json.loads(out_text)["exit_code"] == 2
    assert "out\\xff is not a UTF-8 path" in error_line(err)
    assert not os.path.exists(out)
    odd_store = bytes(tmp_path) + b"/st\xfe"
    assert avlog_bytes(b"--store", odd_store, b"init")[0] == 0
    code, _out, err = avlog_bytes(b"--store", odd_store, b"burn-iso")
    assert code == 2 and "st\\xfe/discs is not a UTF-8 path" in error_line(err)
    assert avlog_bytes(b"--store", odd_store, b"burn-iso", b"--out", bytes(tmp_path) + b"/discs")[0] == 0

    card = bytes(tmp_path) + b"/card\xfd"
    os.rename(demo_card.root, card)
    assert (
        avlog_bytes(b"--store", store, b"device", b"register", b"BC-0001", b"--custodian", b"x", b"--unit", b"y")[0]
        == 0
    )
    args = [b"ingest", b"--from", card, b"--device-serial", b"BC-0001", b"--clear-device"]
    code, _out, err = avlog_bytes(b"--store", store, *args)
    # The card is read, cleared and recorded by its path, the odd byte kept as \xNN in the catalog.
    assert code == 0, err
    assert catalog_rows(Path(os.fsdecode(store)), "SELECT COUNT(*) AS n FROM clips")[0]["n"] > 0
    assert list(Path(os.fsdecode(card)).rglob("*.MP4")) == []
    cleared = catalog_rows(Path(os.fsdecode(store)), "SELECT details FROM audit WHERE action = 'device.clear'")
    assert json.loads(cleared[0]["details"])["source"].endswith("/card\\xfd")


def test_a_lookup_with_a_control_character_before_an_undecodable_byte_is_still_refused(cli: Cli) -> None:
    result = cli("ls", "--device", "a\x1bb\udcff")
    assert result.exit_code == 2
    assert "not valid UTF-8: the byte \\xff at character 4" in error_line(result.stderr)
