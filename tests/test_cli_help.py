"""Every command explains itself with an example; expected failures are one line and SPEC.md's exit code."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from avlog.cli import app
from avlog.context import CATALOG_NAME
from conftest import Cli, run_avlog


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the app, the root included, found by walking the click tree."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        # Typer builds on its own copy of click, so groups are recognised by their sub-commands.
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


ALL_COMMANDS = command_paths()


def test_the_walk_finds_the_commands_spec_names() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    for expected in (
        "",
        "init",
        "device",
        "device register",
        "device list",
        "ingest",
        "ls",
        "show",
        "verify",
        "audit",
        "audit verify",
        "burn-iso",
        "disc list",
        "disc show",
        "disc verify",
        "disc locate",
        "disc mark",
        "retention-sweep",
    ):
        assert expected in names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "avlog")
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "Example" in result.stdout, f"`avlog {' '.join(path)} --help` shows no example"


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_missing_store_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    proc = run_avlog(empty, "ls")
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert f"avlog --store {empty} init" in line
    assert proc.stdout == ""
    assert list(empty.iterdir()) == []  # not silently created


def test_unknown_option_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("ls", "--no-such-option")
    assert result.exit_code == 2
    assert "no-such-option" in result.stderr
    proc = run_avlog(tmp_path, "--no-such-option", "ls")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("no-such-command")
    assert result.exit_code == 2


@pytest.mark.parametrize("ref", ["999", "deadbeef"])
def test_show_of_an_absent_clip_is_not_found(cli: Cli, ref: str) -> None:
    result = cli("show", ref)
    assert result.exit_code == 1
    assert ref in one_line(result.stderr)


@pytest.mark.parametrize("ref", ["abc", "f00", "12zz34zz99"])
def test_show_of_a_malformed_reference_is_a_usage_error(cli: Cli, ref: str) -> None:
    result = cli("show", ref)
    assert result.exit_code == 2
    assert ref in one_line(result.stderr)


def test_ls_with_a_bad_date_is_a_usage_error(cli: Cli) -> None:
    result = cli("ls", "--since", "notadate")
    assert result.exit_code == 2
    assert "notadate" in one_line(result.stderr)
    assert result.stdout == ""
    good = cli("ls", "--since", "2026-11-26", "--json")
    assert good.exit_code == 0, good.stderr
    assert json.loads(good.stdout) == {"clips": []}


def test_init_twice_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVLOG_USER", "tester")
    root = tmp_path / "new-store"
    first = Cli(root)("init")
    assert first.exit_code == 0, first.stderr
    assert "exists" not in first.stderr
    for sub in ("objects", "tmp", "discs"):
        assert (root / sub).is_dir()
    settings = root / "avlog.toml"
    assert (root / CATALOG_NAME).is_file()
    # A custodian's edit to the settings must survive a second init.
    edited = settings.read_text(encoding="utf-8") + "# edited by the custodian\n"
    settings.write_text(edited, encoding="utf-8")

    second = Cli(root)("init")
    assert second.exit_code == 0, second.stderr
    assert "exists" in second.stderr
    assert settings.read_text(encoding="utf-8") == edited
    with sqlite3.connect(root / CATALOG_NAME) as conn:
        inits = conn.execute("SELECT actor FROM audit WHERE action = 'store.init'").fetchall()
        total = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert inits == [("tester",)]
    assert total == 1
