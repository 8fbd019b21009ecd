"""The audit log as the catalog's journal: planted row edits, cut and rewritten logs, anchors, an emptied
catalog, an old store brought up to the journal, refusals of the sweep and burn-iso, read-only stores."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest

from avlog.context import open_context
from avlog.errors import IntegrityError
from avlog.retention.sweep import sweep
from avlog.samples import build_demo_card
from conftest import TZ, Cli, catalog_rows, error_line, run_avlog, shift_end

ENV = {"AVLOG_USER": "tester"}
DATA = Path(__file__).parent / "data"


def cli_for(store: Path) -> Cli:
    return Cli(store)


def ok(store: Path, *args: str) -> str:
    result = cli_for(store)(*args, env=ENV)
    assert result.exit_code == 0, (args, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a row in every journaled table: devices, an ingest with findings, flags (one ended), a
    case with links, holds (one released), a disc image with its clips, and a verify run."""
    from avlog.context import init_store

    base = tmp_path_factory.mktemp("journal")
    store = base / "store"
    init_store(store, actor="tester")
    card = build_demo_card(base / "card", shift_end=shift_end(), tz=TZ)
    ok(store, "device", "register", "BC-0001", "--custodian", "张三", "--unit", "一中队")
    cli_for(store)("ingest", "--from", str(card.root), "--device-serial", "BC-0001", env=ENV)
    ok(store, "flag", "1", "--reason", "dispute", "--note", "当事人投诉")
    ok(store, "flag", "2", "--reason", "incident")
    ok(store, "unflag", "2", "--note", "误标")
    ok(store, "case", "add", "2026-001", "--retain-until", "2031-12-31")
    ok(store, "case", "link", "2026-001", "1", "3")
    ok(store, "hold", "add", "--device", "BC-0001", "--reason", "诉讼")
    ok(store, "hold", "add", "3", "--reason", "复议")
    ok(store, "hold", "release", "2", "--note", "复议结束")
    ok(store, "burn-iso", "--media", "cd")
    ok(store, "disc", "mark", "1", "--location", "档案柜 1")
    ok(store, "verify")
    for table in ("findings", "flags", "case_clips", "holds", "discs", "disc_clips"):
        assert catalog_rows(store, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] > 0, table
    return store


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def execute(store: Path, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> int:
    """A change made straight in SQLite, behind avlog's back."""
    conn = sqlite3.connect(store / "catalog.sqlite")
    try:
        count = conn.execute(sql, list(params)).rowcount
        conn.commit()
        return count
    finally:
        conn.close()


def drop_triggers(store: Path) -> None:
    execute(store, "DROP TRIGGER audit_no_update")
    execute(store, "DROP TRIGGER audit_no_delete")


def restore_triggers(store: Path) -> None:
    """Put the log's guard triggers back as avlog made them, as someone covering their tracks would."""
    execute(
        store,
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    )
    execute(
        store,
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    )


def verify_json(store: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_avlog(store, "audit", "verify", "--json", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_store_agrees_with_its_log(store: Path) -> None:
    code, doc = verify_json(store)
    assert code == 0, doc
    assert doc["ok"] and doc["differences"] == []
    proc = run_avlog(store, "audit", "verify")
    assert proc.returncode == 0 and "Every table agrees with the log." in proc.stderr


def test_every_entry_carries_the_rows_it_wrote_and_the_login(store: Path) -> None:
    import pwd

    login = pwd.getpwuid(os.geteuid()).pw_name
    entries = catalog_rows(store, "SELECT * FROM audit ORDER BY seq")
    assert {e["login"] for e in entries} == {login}
    assert {e["actor"] for e in entries} == {"tester"}
    (first,) = [json.loads(e["details"]) for e in entries if e["action"] == "clip.add" and e["subject"] == "clip:1"]
    (clip_row,) = [r[2] for r in first["rows"] if r[0] == "insert" and r[1] == "clips"]
    (real,) = catalog_rows(store, "SELECT * FROM clips WHERE id = 1")
    # clip.add records the whole row: device, times, path, hashes, ingest.
    assert clip_row == real
    assert {"device_serial", "recorded_start", "recorded_end", "original_path", "blake3", "sha256", "ingest_id"} <= set(
        clip_row
    )


# -- planted edits of every table -------------------------------------------------------------------

EDITS = [
    ("devices", "custodian", "冒名"),
    ("ingests", "source", "/elsewhere"),
    ("objects", "sha256", "0" * 64),
    ("clips", "device_serial", "BC-9999"),
    ("clips", "recorded_start", "2020-01-01T00:00:00.000000Z"),
    ("clips", "original_path", "DCIM/other.MP4"),
    ("ingest_items", "status", "failed"),
    ("findings", "seconds", 1.0),
    ("flags", "reason", "other"),
    ("cases", "retain_until", "2026-12-31"),
    ("case_clips", "unlinked_at", "2026-12-01T00:00:00.000000Z"),
    ("holds", "reason", "none"),
    ("discs", "disc_verify_result", "ok"),
    ("disc_clips", "blake3", "f" * 64),
]


@pytest.mark.parametrize(("table", "column", "value"), EDITS, ids=[f"{t}.{c}" for t, c, _v in EDITS])
def test_an_edited_row_of_every_table_is_named_with_its_entry(store: Path, table: str, column: str, value: Any) -> None:
    from avlog.store.journal import TABLES

    pk = TABLES[table].pk
    key = catalog_rows(store, f"SELECT {pk} AS k FROM {table} ORDER BY {pk} LIMIT 1")[0]["k"]
    assert execute(store, f"UPDATE {table} SET {column} = ? WHERE {pk} = ?", [value, key]) == 1

    code, doc = verify_json(store)
    assert code == 3
    assert doc["first_break"] is None  # the chain itself is intact: only the journal shows the edit
    (diff,) = [d for d in doc["differences"] if d["table"] == table]
    assert (diff["kind"], diff["key"], diff["column"], diff["table_value"]) == ("changed", key, column, value)
    entry = catalog_rows(store, "SELECT action, details FROM audit WHERE seq = ?", [diff["entry"]])[0]
    assert any(r[1] == table and r[2][pk] == key for r in json.loads(entry["details"])["rows"])
    proc = run_avlog(store, "audit", "verify")
    assert proc.returncode == 3
    assert f"{table} {key}: {column}" in proc.stdout
    assert str(diff["entry"]) in error_line(proc.stderr, report_lines=2)


@pytest.mark.parametrize("table", ["flags", "holds", "case_clips", "disc_clips", "clips", "devices"])
def test_a_deleted_row_is_missing_and_a_planted_row_is_unexpected(store: Path, table: str) -> None:
    from avlog.store.journal import TABLES

    pk = TABLES[table].pk
    (row,) = catalog_rows(store, f"SELECT * FROM {table} ORDER BY {pk} LIMIT 1")
    conn = sqlite3.connect(store / "catalog.sqlite")  # foreign keys off, as anyone editing by hand
    conn.execute(f"DELETE FROM {table} WHERE {pk} = ?", [row[pk]])
    planted = {**row, pk: row[pk] + 1000}
    if table == "devices":
        planted["serial"] = "BC-PLANTED"
    names = ", ".join(planted)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in planted)})", list(planted.values()))
    conn.commit()
    conn.close()

    code, doc = verify_json(store)
    assert code == 3
    kinds = {(d["kind"], d["key"]) for d in doc["differences"] if d["table"] == table}
    assert kinds == {("missing", row[pk]), ("unexpected", row[pk] + 1000)}


def test_entries_cut_off_the_end_are_found_by_the_journal_and_by_an_anchor(store: Path, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    assert run_avlog(store, "audit", "anchor", "--to", str(anchors)).returncode == 0
    (last,) = catalog_rows(store, "SELECT seq, action FROM audit ORDER BY seq DESC LIMIT 1")
    assert last["action"] == "audit.anchor"
    # Someone erases where the disc is kept: the entries from its disc.mark on, and the row's location.
    (mark,) = catalog_rows(store, "SELECT seq FROM audit WHERE action = 'disc.mark'")
    drop_triggers(store)
    execute(store, "DELETE FROM audit WHERE seq >= ?", [mark["seq"]])
    restore_triggers(store)
    execute(store, "UPDATE discs SET location = NULL WHERE id = 1")
    code, doc = verify_json(store)
    assert code == 0, doc  # the chain that is left is whole and the rows fit it: only an anchor shows the cut
    code, doc = verify_json(store, "--anchor", str(anchors))
    assert code == 3
    (found,) = doc["anchors"]
    assert found["ok"] is False and "cut off" in found["problem"]
    proc = run_avlog(store, "audit", "verify", "--anchor", str(anchors))
    assert proc.returncode == 3 and "cut off" in error_line(proc.stderr, report_lines=2)

    # Had the row kept what the cut entries wrote, the journal alone would have found the cut.
    execute(store, "UPDATE discs SET location = '档案柜 1' WHERE id = 1")
    code, doc = verify_json(store)
    assert code == 3
    assert [(d["table"], d["key"], d["column"]) for d in doc["differences"]] == [("discs", 1, "location")]


def test_a_rewritten_tail_is_found_by_an_anchor_and_by_hand(store: Path, tmp_path: Path) -> None:
    from avlog.store.audit import entry_hash

    anchors = tmp_path / "anchors.jsonl"
    head = json.loads(run_avlog(store, "audit", "anchor", "--to", str(anchors), "--json").stdout)
    drop_triggers(store)
    # Rewrite the last entry's actor and fix up its hash: the chain verifies again.
    (row,) = catalog_rows(store, "SELECT * FROM audit WHERE seq = ?", [head["seq"]])
    row["actor"] = "someone"
    fields = [row[k] for k in ("seq", "at", "actor", "action", "subject", "details", "prev_hash")]
    new_hash = entry_hash(*fields, row["login"])
    execute(store, "UPDATE audit SET actor = ?, hash = ? WHERE seq = ?", [row["actor"], new_hash, row["seq"]])
    execute(store, "DELETE FROM audit WHERE seq > ?", [row["seq"]])
    restore_triggers(store)
    assert verify_json(store)[0] == 0
    code, doc = verify_json(store, "--anchor", str(anchors))
    assert code == 3 and "another hash" in doc["anchors"][0]["problem"]
    code, doc = verify_json(store, "--expect", f"{head['seq']}:{head['hash']}")
    assert code == 3
    code, doc = verify_json(store, "--expect", f"{head['seq']}:{new_hash}")
    assert code == 0


def test_anchor_refusals_and_bad_expectations(store: Path, tmp_path: Path) -> None:
    inside = run_avlog(store, "audit", "anchor", "--to", str(store / "anchors.jsonl"))
    assert inside.returncode == 2 and "outside the store" in error_line(inside.stderr)
    for bad in ("12", "x:y", "12:" + "g" * 64, "0:" + "0" * 64):
        proc = run_avlog(store, "audit", "verify", "--expect", bad)
        assert proc.returncode == 2, bad
        error_line(proc.stderr)
    garbage = tmp_path / "not-anchors.txt"
    garbage.write_text("hello\n")
    code, doc = verify_json(store, "--anchor", str(garbage))
    assert code == 3 and doc["unreadable_anchors"] == [f"{garbage}:1"]
    # A broken chain is never anchored.
    drop_triggers(store)
    execute(store, "UPDATE audit SET actor = 'x' WHERE seq = 3")
    proc = run_avlog(store, "audit", "anchor", "--to", str(tmp_path / "a.jsonl"))
    assert proc.returncode == 3 and not (tmp_path / "a.jsonl").exists()


def test_anchor_to_the_system_log(store: Path, tmp_path: Path) -> None:
    """``--syslog`` goes through logger to /dev/log: a real datagram socket stands for the journal here."""
    if Path("/dev/log").exists():
        pytest.skip("a system logger owns /dev/log on this machine; its journal is not read by the tests")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("/dev/log")
    try:
        server.settimeout(10)
        proc = run_avlog(store, "audit", "anchor", "--syslog", "--json")
        assert proc.returncode == 0, proc.stderr
        message = server.recv(65536).decode()
    finally:
        server.close()
        os.unlink("/dev/log")
    head = json.loads(proc.stdout)
    assert "avlog" in message and f'"seq":{head["seq"]}' in message and head["hash"] in message
    # Without a system logger listening, one line says so.
    proc = run_avlog(store, "audit", "anchor", "--syslog")
    assert proc.returncode == 1 and "system log" in error_line(proc.stderr)


def test_a_disc_carries_the_head_and_audit_verify_checks_it(store: Path) -> None:
    (disc,) = catalog_rows(store, "SELECT image_path FROM discs")
    image = store / "discs" / Path(disc["image_path"]).name  # the copy's own image
    assert image.exists(), image
    code, doc = verify_json(store, "--disc", str(image))
    assert code == 0, doc
    (carried,) = doc["anchors"]
    assert carried["ok"] and carried["seq"] < doc["entries"]
    drop_triggers(store)
    execute(store, "DELETE FROM audit WHERE seq >= ?", [carried["seq"]])
    restore_triggers(store)
    code, doc = verify_json(store, "--disc", str(image))
    assert code == 3 and doc["anchors"][0]["ok"] is False and "cut off" in doc["anchors"][0]["problem"]


# -- acting on rows the log contradicts --------------------------------------------------------------


def test_the_sweep_refuses_after_a_flag_row_was_deleted(store: Path) -> None:
    (flag,) = catalog_rows(store, "SELECT clip_id FROM flags WHERE unflagged_at IS NULL AND reason = 'dispute'")
    clip_id = flag["clip_id"]
    execute(store, "DELETE FROM case_clips WHERE clip_id = ?", [clip_id])
    execute(store, "DELETE FROM holds")
    execute(store, "DELETE FROM flags WHERE clip_id = ?", [clip_id])
    (clip,) = catalog_rows(store, "SELECT blake3 FROM clips WHERE id = ?", [clip_id])
    later = datetime.now(UTC) + timedelta(days=400)
    for at in (later, later + timedelta(days=30)):  # due, then past its grace: purged, were the rows trusted
        ctx = open_context(store, actor="nightly", clock=lambda at=at: at)
        try:
            with pytest.raises(IntegrityError, match="purged nothing"):
                sweep(ctx, dry_run=False)
        finally:
            ctx.close()
    assert catalog_rows(store, "SELECT state, due_since FROM clips WHERE id = ?", [clip_id]) == [
        {"state": "stored", "due_since": None}
    ]
    assert (store / "objects" / clip["blake3"][:2] / clip["blake3"]).is_file()
    proc = run_avlog(store, "retention-sweep")
    assert proc.returncode == 3 and "flags" in error_line(proc.stderr)


def test_burn_iso_refuses_a_planted_disc(store: Path, tmp_path: Path) -> None:
    execute(store, "UPDATE disc_clips SET clip_id = 2 WHERE id = 1")
    proc = run_avlog(store, "burn-iso", "--media", "cd", "--out", str(tmp_path / "out"))
    assert proc.returncode == 3
    assert "made no disc" in error_line(proc.stderr)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert run_avlog(store, "burn-iso", "--dry-run").returncode == 0  # a plan changes nothing


def test_a_write_past_the_journal_is_rolled_back(store: Path) -> None:
    ctx = open_context(store, actor="tester")
    try:
        before = catalog_rows(store, "SELECT COUNT(*) AS n FROM audit")
        with pytest.raises(RuntimeError, match="no audit entry"), ctx.catalog.change() as db:
            db.execute("UPDATE devices SET unit = 'x' WHERE id = 1")
            ctx.catalog.audit("device.note", "device:BC-0001", {})
        assert catalog_rows(store, "SELECT unit FROM devices WHERE id = 1") == [{"unit": "一中队"}]
        assert catalog_rows(store, "SELECT COUNT(*) AS n FROM audit") == before
        with pytest.raises(RuntimeError, match="no audit entry"), ctx.catalog.change():
            ctx.catalog.update("devices", 1, {"unit": "x"})  # written, never described by an entry
    finally:
        ctx.close()
    assert verify_json(store)[0] == 0


# -- a catalog that is gone ----------------------------------------------------------------------------

EVERY_COMMAND = [
    ("ls",),
    ("show", "1"),
    ("verify",),
    ("audit", "verify"),
    ("audit", "log"),
    ("audit", "anchor"),
    ("device", "list"),
    ("device", "register", "BC-0002", "--custodian", "李四", "--unit", "二中队"),
    ("flag", "1", "--reason", "dispute"),
    ("case", "add", "X-1", "--retain-until", "2030-01-01"),
    ("hold", "list"),
    ("retention-sweep",),
    ("burn-iso", "--dry-run"),
    ("disc", "list"),
    ("init",),
]


@pytest.mark.parametrize("how", ["truncated", "deleted", "first-entry-cut"])
def test_an_emptied_catalog_is_refused_by_every_command(store: Path, tmp_path: Path, how: str) -> None:
    catalog = store / "catalog.sqlite"
    for extra in ("-wal", "-shm"):
        catalog.with_name(catalog.name + extra).unlink(missing_ok=True)
    if how == "truncated":
        catalog.write_bytes(b"")
    elif how == "deleted":
        catalog.unlink()
    else:
        drop_triggers(store)
        execute(store, "DELETE FROM audit WHERE seq = 1")
    before = catalog.read_bytes() if catalog.exists() else None
    card = tmp_path / "card"
    card.mkdir()
    for args in [*EVERY_COMMAND, ("ingest", "--from", str(card), "--device-serial", "BC-0001")]:
        proc = run_avlog(store, *args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "restore catalog.sqlite from a backup" in error_line(proc.stderr), args
    after = catalog.read_bytes() if catalog.exists() else None
    assert after == before  # nothing was created, migrated or written
    json_proc = run_avlog(store, "ls", "--json")
    assert json.loads(json_proc.stdout)["exit_code"] == 3


def test_objects_replaced_by_a_file_is_named_as_the_cause(store: Path) -> None:
    shutil.rmtree(store / "objects")
    (store / "objects").write_text("not a folder")
    proc = run_avlog(store, "verify")
    assert proc.returncode == 3
    line = error_line(proc.stderr)
    assert "objects is not a folder" in line and "mismatch" not in line
    (store / "objects").unlink()
    proc = run_avlog(store, "verify")
    assert proc.returncode == 3 and "objects is missing" in error_line(proc.stderr)


# -- an old store brought up to the journal -------------------------------------------------------------


def legacy_store(root: Path, *, tamper: str | None = None) -> Path:
    """A store as avlog left it before the journal (catalog step 0004), from a dump of a real one, with its
    objects rebuilt from the same card bytes."""
    root.mkdir()
    (root / "avlog.toml").write_text("")
    for sub in ("objects", "tmp", "discs"):
        (root / sub).mkdir()
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.executescript((DATA / "legacy-0004-catalog.sql").read_text())
    conn.execute("PRAGMA user_version = 4")
    conn.execute("PRAGMA journal_mode = WAL")
    if tamper is not None:
        conn.execute(tamper)
    conn.commit()
    conn.close()
    for i in range(3):
        data = b"\x00\x00\x00\x18ftypisom" + bytes([i]) * 2000
        digest = blake3.blake3(data).hexdigest()
        folder = root / "objects" / digest[:2]
        folder.mkdir(exist_ok=True)
        (folder / digest).write_bytes(data)
    return root


def test_an_old_store_is_brought_up_to_the_journal(tmp_path: Path) -> None:
    store = legacy_store(tmp_path / "old")
    old_head = catalog_rows(store, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")[0]
    code, doc = verify_json(store)
    assert code == 0, doc
    entries = catalog_rows(store, "SELECT * FROM audit WHERE seq > ? ORDER BY seq", [old_head["seq"]])
    actions = [e["action"] for e in entries]
    assert actions[0] == "catalog.journal" and actions[-1] == "catalog.migrate"
    assert set(actions[1:-1]) == {"catalog.baseline"}
    assert json.loads(entries[0]["details"])["contradictions"] == []
    baseline = [r for e in entries[1:-1] for r in json.loads(e["details"])["rows"]]
    assert {r[1] for r in baseline} >= {"devices", "clips", "flags", "cases", "case_clips", "holds"}
    assert catalog_rows(store, "SELECT seq, hash FROM audit WHERE seq = ?", [old_head["seq"]]) == [old_head]
    # From now on, the store is checked like any other.
    execute(store, "DELETE FROM flags WHERE unflagged_at IS NULL")
    code, doc = verify_json(store)
    assert code == 3 and {d["table"] for d in doc["differences"]} == {"flags"}


def test_an_old_store_tampered_before_the_journal_keeps_its_contradiction(tmp_path: Path) -> None:
    store = legacy_store(tmp_path / "old", tamper="DELETE FROM flags WHERE unflagged_at IS NULL")
    code, doc = verify_json(store)
    assert code == 3
    (found,) = doc["differences"]
    assert (found["kind"], found["table"], found["key"]) == ("contradiction", "flags", 1)
    assert "clip.flag" in found["detail"]
    proc = run_avlog(store, "retention-sweep")
    assert proc.returncode == 3 and "purged nothing" in error_line(proc.stderr)


# -- who acts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "x\x1b[31mred",
        "two\nlines",
        " ",
        "a" * 65,
        "tab\there",
        "alice\n",
        "\nalice",
        "alice\t",
        "\u2028alice",
        "a\ue000",
    ],
)
def test_an_actor_with_control_characters_is_refused(store: Path, name: str) -> None:
    before = catalog_rows(store, "SELECT COUNT(*) AS n FROM audit")
    proc = run_avlog(store, "flag", "1", "--reason", "other", env={**os.environ, "AVLOG_USER": name})
    assert proc.returncode == 2
    assert "AVLOG_USER" in error_line(proc.stderr)
    assert catalog_rows(store, "SELECT COUNT(*) AS n FROM audit") == before


def test_the_login_is_recorded_beside_the_actor(store: Path) -> None:
    import pwd

    proc = run_avlog(store, "flag", "3", "--reason", "other", env={**os.environ, "AVLOG_USER": "王警官"})
    assert proc.returncode == 0, proc.stderr
    (entry,) = catalog_rows(
        store, "SELECT actor, login FROM audit WHERE action = 'clip.flag' ORDER BY seq DESC LIMIT 1"
    )
    assert entry == {"actor": "王警官", "login": pwd.getpwuid(os.geteuid()).pw_name}


# -- a read-only store --------------------------------------------------------------------------------


@pytest.fixture
def read_only(store: Path, tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    # A cleanly closed store: no WAL files, everything in catalog.sqlite.
    open_context(store, actor="tester").close()
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(store), str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], check=True)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_read_only_store_can_be_listed_and_verified(read_only: Path) -> None:
    listed = run_avlog(read_only, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["clips"]) >= 3
    assert run_avlog(read_only, "show", "1").returncode == 0
    checked = run_avlog(read_only, "verify", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["recorded"] is False
    assert run_avlog(read_only, "audit", "verify").returncode == 0
    assert run_avlog(read_only, "device", "list").returncode == 0
    refused = run_avlog(read_only, "flag", "1", "--reason", "other")
    assert refused.returncode == 1 and "read-only" in error_line(refused.stderr)


# -- the recipes of docs/store-format.md, run as written ---------------------------------------------------


def doc_script(name: str, tmp_path: Path) -> Path:
    """The Python block of docs/store-format.md that follows 'Save this as `NAME`'."""
    text = (Path(__file__).parent.parent / "docs" / "store-format.md").read_text(encoding="utf-8")
    after = text.split(f"Save this as\n`{name}`:", 1)[-1] if f"Save this as\n`{name}`:" in text else None
    if after is None:
        after = text.split(f"Save this as `{name}`:", 1)[1]
    code = after.split("```python\n", 1)[1].split("\n```", 1)[0]
    script = tmp_path / name
    script.write_text(code + "\n", encoding="utf-8")
    return script


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/python3", str(script), *args], capture_output=True, text=True, timeout=120)


def test_the_documented_rebuild_agrees_with_avlog(store: Path, tmp_path: Path) -> None:
    rebuild = doc_script("rebuild_catalog.py", tmp_path)
    done = run_script(rebuild, str(store))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the tables agree with the log" in done.stdout
    execute(store, "DELETE FROM flags WHERE reason = 'dispute'")
    execute(store, "UPDATE clips SET device_serial = 'BC-9999' WHERE id = 2")
    done = run_script(rebuild, str(store))
    assert done.returncode == 3
    assert "DIFFERENCE: flags 1: written by entry" in done.stdout
    assert "DIFFERENCE: clips 2: device_serial is 'BC-9999' in the table, 'BC-0001' in the log" in done.stdout


def test_the_documented_store_check_follows_the_chain_formula(store: Path, tmp_path: Path) -> None:
    check = doc_script("check_store.py", tmp_path)
    done = run_script(check, str(store))
    assert done.returncode == 0, done.stdout + done.stderr
    head = json.loads(run_avlog(store, "audit", "verify", "--json").stdout)
    assert f"head {head['head']}: all sound" in done.stdout
    drop_triggers(store)
    execute(store, "UPDATE audit SET login = NULL WHERE seq = 2")  # the older formula does not fit it either
    done = run_script(check, str(store))
    assert done.returncode == 3 and "audit entry 2 is broken" in done.stdout


# -- attacks on the journal itself -------------------------------------------------------------------------


def append_entry(store: Path, action: str, details: Any, *, seq: int | None = None) -> int:
    """A well-hashed entry appended (or planted at ``seq``) straight in SQLite, as anyone who may write the
    catalog file can."""
    from avlog.store.audit import entry_hash

    (last,) = catalog_rows(store, "SELECT seq, hash, login FROM audit ORDER BY seq DESC LIMIT 1")
    text = details if isinstance(details, str) else json.dumps(details, sort_keys=True, separators=(",", ":"))
    number = last["seq"] + 1 if seq is None else seq
    prev = last["hash"] if seq is None else "1" * 64
    at = "2026-12-02T00:00:00.000000Z"
    digest = entry_hash(number, at, "x", action, "store", text, prev, last["login"])
    execute(
        store,
        "INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash, login) "
        "VALUES (?, ?, 'x', ?, 'store', ?, ?, ?, ?)",
        [number, at, action, text, prev, digest, last["login"]],
    )
    return number


def test_an_entry_planted_before_the_first_is_a_break_not_a_journal(store: Path) -> None:
    append_entry(store, "catalog.journal", {"contradictions": [], "rows": []}, seq=0)
    code, doc = verify_json(store)
    assert code == 3 and doc["first_break"]["seq"] == 0


def test_a_forged_journal_start_is_named(store: Path) -> None:
    """A store born with the journal never wrote catalog.journal or catalog.baseline: appended ones are forged,
    and their rows are replayed on top of the real ones (a baseline leaving a row out cannot hide it)."""
    seq = append_entry(store, "catalog.journal", {"contradictions": [], "contradictions_total": 0, "rows": []})
    code, doc = verify_json(store)
    assert code == 3
    (forged,) = [d for d in doc["differences"] if d["entry"] == seq]
    assert "claims to begin the journal" in forged["detail"]


@pytest.mark.parametrize(
    "details",
    [
        '{"rows":5}',
        '{"rows":true}',
        "[1,2]",
        '{"rows":[[["insert"],"flags",{"id":1}]]}',
        '{"rows":[["insert","flags",{"id":99999999999999999999}]]}',
        '{"rows":[["insert","flags",{"id":900,"note":{"a":1}}]]}',
        '{"rows":[["insert","nowhere",{"id":1}]]}',
        '{"rows":[["delete","flags",{"id":1}]]}',
        '{"rows":' + "[" * 100000 + "]" * 100000 + "}",
    ],
    ids=["rows-number", "rows-bool", "not-object", "bad-op", "huge-id", "dict-value", "table", "op", "deep"],
)
def test_a_malformed_entry_is_named_never_a_crash(store: Path, details: str) -> None:
    seq = append_entry(store, "clip.flag", details)
    proc = run_avlog(store, "audit", "verify", "--json")
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert any(d["entry"] == seq for d in doc["differences"]), doc["differences"]
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    refused = run_avlog(store, "retention-sweep")
    assert refused.returncode == 3 and "purged nothing" in error_line(refused.stderr)


def test_a_trigger_that_swallows_writes_is_refused_and_named(store: Path) -> None:
    execute(store, "CREATE TRIGGER keep_out BEFORE INSERT ON flags BEGIN SELECT RAISE(IGNORE); END")
    before = catalog_rows(store, "SELECT COUNT(*) AS n FROM audit")
    proc = run_avlog(store, "flag", "4", "--reason", "incident")
    assert proc.returncode == 1 and "schema" in error_line(proc.stderr)
    assert catalog_rows(store, "SELECT COUNT(*) AS n FROM audit") == before  # no entry claims a flag
    code, doc = verify_json(store)
    assert code == 3
    assert [(d["kind"], d["key"]) for d in doc["differences"]] == [("schema", "trigger keep_out")]


def test_dropped_guard_triggers_are_named(store: Path) -> None:
    drop_triggers(store)
    code, doc = verify_json(store)
    assert code == 3
    assert {(d["kind"], d["key"]) for d in doc["differences"]} == {
        ("schema", "trigger audit_no_update"),
        ("schema", "trigger audit_no_delete"),
    }


def test_an_index_that_hides_rows_is_found_by_the_integrity_check(store: Path) -> None:
    """An index redefined to leave a case link out, its schema text put back: the tables look whole, but the
    queries that decide retention would not see the link."""
    conn = sqlite3.connect(store / "catalog.sqlite")
    conn.execute("DROP INDEX idx_case_clips_clip_id")
    conn.execute("CREATE INDEX idx_case_clips_clip_id ON case_clips (clip_id) WHERE case_id <> 1")
    conn.commit()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = 'CREATE INDEX [idx_case_clips_clip_id] ON [case_clips] ([clip_id])' "
        "WHERE name = 'idx_case_clips_clip_id'"
    )
    conn.commit()
    conn.close()
    code, doc = verify_json(store)
    assert code == 3
    assert any(d["kind"] == "integrity" for d in doc["differences"]), doc["differences"]
    refused = run_avlog(store, "retention-sweep")
    assert refused.returncode == 3


def test_a_change_committed_while_the_sweep_waits_is_seen_by_its_check(store: Path) -> None:
    """The check and the decisions are one transaction: a flag deleted while the sweep waited for the catalog
    cannot let its clip be purged."""
    (flag,) = catalog_rows(store, "SELECT clip_id FROM flags WHERE unflagged_at IS NULL AND reason = 'dispute'")
    conn = sqlite3.connect(store / "catalog.sqlite", isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM flags WHERE clip_id = ?", [flag["clip_id"]])
    sweep_proc = subprocess.Popen(
        [sys.executable, "-m", "avlog", "--store", str(store), "retention-sweep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # the sweep has taken its first look and waits for the write lock
        assert sweep_proc.poll() is None
        conn.execute("COMMIT")
        _out, err = sweep_proc.communicate(timeout=120)
    finally:
        conn.close()
        if sweep_proc.poll() is None:
            sweep_proc.kill()
    assert sweep_proc.returncode == 3 and "purged nothing" in error_line(err)


def test_a_read_only_store_restored_with_its_wal_but_no_shm_is_read(store: Path, tmp_path: Path) -> None:
    """A backup restored as catalog.sqlite with its -wal file (and no -shm) onto read-only media."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    copy = tmp_path / "restored"
    shutil.copytree(store, copy, symlinks=True)
    holder = sqlite3.connect(store / "catalog.sqlite")  # keeps the WAL from being checkpointed away
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute("SELECT COUNT(*) FROM audit").fetchone()  # its use of the WAL keeps the file in place
    proc = run_avlog(store, "flag", "5", "--reason", "other", "--note", "in the WAL only")
    assert proc.returncode == 0, proc.stderr
    shutil.copyfile(store / "catalog.sqlite", copy / "catalog.sqlite")
    shutil.copyfile(store / "catalog.sqlite-wal", copy / "catalog.sqlite-wal")
    holder.close()
    (copy / "catalog.sqlite-shm").unlink(missing_ok=True)
    assert (copy / "catalog.sqlite-wal").stat().st_size > 0
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(copy), str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], check=True)
        shown = run_avlog(mount, "show", "5", "--json")
        assert shown.returncode == 0, shown.stderr
        assert "other" in json.loads(shown.stdout)["flags"]  # the change only the WAL held is seen
        assert run_avlog(mount, "audit", "verify").returncode == 0
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_hostile_anchor_lines_are_named_never_a_crash(store: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "anchors.jsonl"
    hostile.write_text(
        '{"seq":99999999999999999999,"hash":"' + "a" * 64 + '"}\n' + "[" * 100000 + "]" * 100000 + "\n",
        encoding="ascii",
    )
    code, doc = verify_json(store, "--anchor", str(hostile))
    assert code == 3 and doc["unreadable_anchors"] == [f"{hostile}:1", f"{hostile}:2"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_avlog(store, "audit", "verify", "--anchor", str(empty))
    assert proc.returncode == 0 and "holds no anchor yet" in proc.stderr
