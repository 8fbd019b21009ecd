"""The catalog's migrations and pragmas, and the append-only, hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from avlog.context import CATALOG_NAME, Context, open_context
from avlog.samples import SampleCard
from avlog.store import migrations
from avlog.store.migrations import STEPS, migrate
from conftest import Cli, register, run_avlog

GENESIS = "0" * 64


def connect(store: Path) -> sqlite3.Connection:
    return sqlite3.connect(store / CATALOG_NAME)


def audit_rows(store: Path) -> list[dict[str, object]]:
    with connect(store) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    return [dict(r) for r in rows]


def expected_hash(row: dict[str, object]) -> str:
    """The documented formula, written out here without avlog's code."""
    material = [row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["details"], row["prev_hash"]]
    if row.get("login") is not None:  # entries since step 0005 record the account that wrote them
        material.append(row["login"])
    text = json.dumps(material, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ingest_demo(cli: Cli, card: SampleCard) -> dict[str, object]:
    result = cli("ingest", "--from", str(card.root), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def drop_triggers(store: Path) -> None:
    conn = connect(store)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.commit()
    conn.close()


def tamper(store: Path, sql: str, params: list[object]) -> None:
    conn = connect(store)
    cursor = conn.execute(sql, params)
    assert cursor.rowcount == 1
    conn.commit()
    conn.close()


# -- migrations --------------------------------------------------------------------------------------


def test_migrations_are_recorded_and_pragmas_set(ctx: Context, store: Path) -> None:
    db = ctx.catalog.db
    names = [r["name"] for r in db.query("SELECT name FROM _migrations ORDER BY name")]
    assert names == sorted(name for name, _step in STEPS)
    assert "0001_initial" in names
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # WAL is a property of the file: a plain connection sees it too.
    with connect(store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)


def test_foreign_keys_are_enforced(ctx: Context) -> None:
    with pytest.raises(sqlite3.IntegrityError), ctx.catalog.change() as db:
        db["clips"].insert(
            {
                "blake3": "f" * 64,
                "sha256": "0" * 64,
                "size": 1,
                "device_serial": "BC-0001",
                "ingest_id": 999,
                "original_path": "DCIM/X.MP4",
                "media_kind": "video",
                "ingested_at": "2026-01-01T00:00:00.000000Z",
            }
        )
    assert ctx.catalog.query("SELECT * FROM clips") == []


def test_reopening_applies_nothing_new(store: Path) -> None:
    with connect(store) as conn:
        before = conn.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()
    assert len(before) == len(STEPS)
    # A second open (through avlog) and a direct migrate() on the same file.
    context = open_context(store, actor="tester")
    try:
        assert migrate(context.catalog.db) == []
    finally:
        context.close()
    with connect(store) as conn:
        after = conn.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)
    assert after == before


def test_fresh_catalog_applies_every_step(tmp_path: Path) -> None:
    db = Database(sqlite3.connect(tmp_path / "fresh.sqlite"))
    try:
        assert migrate(db) == [name for name, _step in STEPS]
        assert migrate(db) == []
        assert {"devices", "ingests", "clips", "objects", "audit", "_migrations"} <= set(db.table_names())
    finally:
        db.close()


def test_a_failing_step_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(sqlite3.connect(tmp_path / "fresh.sqlite"))
    try:
        migrate(db)

        def broken(d: Database) -> None:
            d["half_done"].create({"id": int}, pk="id")
            raise RuntimeError("step failed halfway")

        steps: list[tuple[str, Callable[[Database], None]]] = [*STEPS, ("9999_broken", broken)]
        monkeypatch.setattr(migrations, "STEPS", steps)
        with pytest.raises(RuntimeError, match="halfway"):
            migrations.migrate(db)
        assert "half_done" not in db.table_names()
        assert db.execute("SELECT COUNT(*) FROM _migrations WHERE name = '9999_broken'").fetchone()[0] == 0
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(STEPS)
        assert not db.conn.in_transaction
    finally:
        db.close()


# -- the chain ---------------------------------------------------------------------------------------


def test_audit_chain_verifies_and_matches_the_documented_formula(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    ingest_demo(cli, demo_card)

    result = cli("audit", "verify")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(cli("audit", "verify", "--json").stdout)
    rows = audit_rows(store)
    assert len(rows) > len(demo_card.recordings)  # init, register, ingest start/end and one per file
    assert doc["ok"] is True
    assert doc["first_break"] is None
    assert doc["entries"] == len(rows)
    assert doc["head"] == rows[-1]["hash"]

    prev = GENESIS
    for n, row in enumerate(rows, start=1):
        assert row["seq"] == n
        assert row["prev_hash"] == prev
        assert row["hash"] == expected_hash(row), f"entry {n}"
        json.loads(str(row["details"]))  # the stored details are JSON text
        prev = str(row["hash"])
    assert [r["action"] for r in rows][:2] == ["store.init", "device.register"]


def test_triggers_refuse_update_and_delete(cli: Cli, store: Path) -> None:
    register(cli)
    before = audit_rows(store)
    conn = connect(store)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET details = '{}' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET actor = 'someone else'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit WHERE seq = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
        conn.commit()
    finally:
        conn.close()
    assert audit_rows(store) == before


def middle_seq(store: Path) -> int:
    rows = audit_rows(store)
    assert len(rows) >= 5
    return int(str(rows[len(rows) // 2]["seq"]))


def assert_break_named(store: Path, seq: int) -> dict[str, Any]:
    """``audit verify`` exits 3 with one stderr line naming ``seq``; returns the ``--json`` report."""
    proc = run_avlog(store, "audit", "verify")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(rf"\b{seq}\b", lines[0]), lines[0]
    doc_proc = run_avlog(store, "audit", "verify", "--json")
    assert doc_proc.returncode == 3
    doc: dict[str, Any] = json.loads(doc_proc.stdout)
    assert doc["ok"] is False
    return doc


def test_edited_audit_row_is_named(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    ingest_demo(cli, demo_card)
    assert run_avlog(store, "audit", "verify").returncode == 0
    seq = middle_seq(store)
    row = next(r for r in audit_rows(store) if r["seq"] == seq)
    details = json.loads(str(row["details"]))
    details["tampered"] = True
    drop_triggers(store)
    tamper(
        store,
        "UPDATE audit SET details = ? WHERE seq = ?",
        [json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False), seq],
    )

    doc = assert_break_named(store, seq)
    assert doc["first_break"]["seq"] == seq
    assert doc["entries"] == seq


def test_deleted_audit_row_is_named(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    ingest_demo(cli, demo_card)
    seq = middle_seq(store)
    drop_triggers(store)
    tamper(store, "DELETE FROM audit WHERE seq = ?", [seq])

    proc = run_avlog(store, "audit", "verify")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(rf"\bentry {seq}\b", lines[0]), lines[0]


def test_rehashed_edit_breaks_the_next_link(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    """Someone who edits a row and fixes up its own hash is still caught by the entry after it."""
    register(cli)
    ingest_demo(cli, demo_card)
    seq = middle_seq(store)
    row = next(r for r in audit_rows(store) if r["seq"] == seq)
    row["actor"] = "someone else"
    row["hash"] = expected_hash(row)
    drop_triggers(store)
    tamper(store, "UPDATE audit SET actor = ?, hash = ? WHERE seq = ?", [row["actor"], row["hash"], seq])

    doc = assert_break_named(store, seq + 1)
    assert doc["first_break"]["seq"] == seq + 1


# -- every change is audited -------------------------------------------------------------------------


def test_device_register_writes_its_audit_entry(cli: Cli, store: Path) -> None:
    before = len(audit_rows(store))
    result = cli(
        "device", "register", "BC-0042", "--custodian", "李四", "--unit", "二中队", env={"AVLOG_USER": "王警官"}
    )
    assert result.exit_code == 0, result.stderr
    rows = audit_rows(store)
    assert len(rows) == before + 1
    entry = rows[-1]
    assert entry["action"] == "device.register"
    assert entry["subject"] == "device:BC-0042"
    assert entry["actor"] == "王警官"
    details = json.loads(str(entry["details"]))
    assert details["custodian"] == "李四"
    assert details["unit"] == "二中队"
    with connect(store) as conn:
        device = conn.execute("SELECT registered_by FROM devices WHERE serial = 'BC-0042'").fetchone()
    assert device == ("王警官",)


def test_refused_change_writes_no_audit_entry(cli: Cli, store: Path) -> None:
    register(cli, "BC-0001")
    before = audit_rows(store)
    again = cli("device", "register", "BC-0001", "--custodian", "别人", "--unit", "三中队")
    assert again.exit_code == 1
    assert audit_rows(store) == before
    with connect(store) as conn:
        assert conn.execute("SELECT custodian FROM devices WHERE serial = 'BC-0001'").fetchall() == [("张三",)]


def test_every_clip_has_its_clip_add_entry(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    ingest_demo(cli, demo_card)
    with connect(store) as conn:
        conn.row_factory = sqlite3.Row
        clips = [dict(r) for r in conn.execute("SELECT id, blake3, original_path, ingested_at FROM clips")]
    assert len(clips) == len(demo_card.recordings)
    adds = [r for r in audit_rows(store) if r["action"] == "clip.add"]
    by_subject: dict[object, list[dict[str, object]]] = {}
    for entry in adds:
        by_subject.setdefault(entry["subject"], []).append(entry)
    assert set(by_subject) == {f"clip:{c['id']}" for c in clips}
    for clip in clips:
        (entry,) = by_subject[f"clip:{clip['id']}"]
        details = json.loads(str(entry["details"]))
        assert details["blake3"] == clip["blake3"]
        assert details["path"] == clip["original_path"]
        assert entry["actor"] == "tester"
        # Written by the same change as the row: one timestamp for both.
        assert entry["at"] == clip["ingested_at"]


def test_a_step_applied_to_a_catalog_with_an_audit_log_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlite_utils import Database

    from avlog.store import audit as audit_log
    from avlog.store import migrations

    db = Database(sqlite3.connect(tmp_path / "old.sqlite"))
    monkeypatch.setattr(migrations, "STEPS", migrations.STEPS[:1])
    assert migrations.migrate(db) == ["0001_initial"]  # a catalog as the first release left it
    db.execute("BEGIN")
    audit_log.append(db, at="2026-01-01T00:00:00.000000Z", actor="t", action="store.init", subject="store", details={})
    db.execute("COMMIT")
    monkeypatch.undo()
    later = [name for name, _step in migrations.STEPS[1:]]
    assert migrations.migrate(db, actor="王警官") == later
    rows = list(db.query("SELECT action, actor, details FROM audit WHERE action = 'catalog.migrate' ORDER BY seq"))
    assert [json.loads(r["details"])["step"] for r in rows] == later
    assert {r["actor"] for r in rows} == {"王警官"}
    assert audit_log.verify_chain(db).first_break is None
