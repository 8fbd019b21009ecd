"""Named, transactional, recorded schema steps for the catalog.

Each step runs inside one transaction together with the row that records it
in ``_migrations``; ``PRAGMA user_version`` mirrors the number applied. A step
is never edited once released: a change is a new step appended to ``STEPS``.

Schema steps change tables only. A step that changes rows must describe them in
its ``catalog.migrate`` entry like any other change (``rows``, see
:mod:`avlog.store.journal`), or the journal's replay will name them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlite_utils import Database

from avlog.store.audit import append
from avlog.store.journal import begin_journal
from avlog.timefmt import to_db


def _initial(db: Database) -> None:
    db.table("devices").create(
        {
            "id": int,
            "serial": str,
            "custodian": str,
            "unit": str,
            "kind": str,
            "label": str,
            "registered_at": str,
            "registered_by": str,
        },
        pk="id",
        not_null={"serial", "custodian", "unit", "kind", "registered_at", "registered_by"},
    )
    db.table("devices").create_index(["serial"], unique=True)
    db.table("ingests").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "actor": str,
            "host": str,
            "pid": int,
            "device_serial": str,
            "device_registered": int,
            "custodian": str,
            "source": str,
            "source_kind": str,
            "status": str,  # running | done | partial | failed | interrupted
            "stored": int,
            "duplicates": int,
            "failed": int,
            "skipped": int,
            "bytes_stored": int,
            "clock_notes": str,  # JSON
        },
        pk="id",
        not_null={"started_at", "actor", "host", "device_serial", "source", "source_kind", "status"},
        defaults={"stored": 0, "duplicates": 0, "failed": 0, "skipped": 0, "bytes_stored": 0},
    )
    db.table("objects").create(
        {
            "blake3": str,
            "sha256": str,
            "size": int,
            "stored_at": str,
            "last_verified_at": str,
            "last_verify_result": str,
        },
        pk="blake3",
        not_null={"sha256", "size", "stored_at"},
    )
    db.table("clips").create(
        {
            "id": int,
            "blake3": str,
            "sha256": str,
            "size": int,
            "device_serial": str,
            "unregistered_device": int,
            "ingest_id": int,
            "original_path": str,
            "original_mtime": str,
            "media_kind": str,  # video | audio | photo
            "container": str,
            "codec": str,
            "recorded_start": str,
            "recorded_end": str,
            "duration_s": float,
            "time_source": str,  # container | filename | mtime
            "probe_error": str,
            "ingested_at": str,
            "state": str,  # stored | purged
        },
        pk="id",
        not_null={
            "blake3",
            "sha256",
            "size",
            "device_serial",
            "ingest_id",
            "original_path",
            "media_kind",
            "ingested_at",
            "state",
        },
        defaults={"state": "stored", "unregistered_device": 0},
        foreign_keys=[("blake3", "objects", "blake3"), ("ingest_id", "ingests", "id")],
    )
    db.table("clips").create_index(["device_serial", "original_path", "blake3"], unique=True)
    db.table("clips").create_index(["device_serial", "recorded_start"])
    db.table("clips").create_index(["recorded_start"])
    db.table("clips").create_index(["blake3"])
    db.table("ingest_items").create(
        {
            "id": int,
            "ingest_id": int,
            "original_path": str,
            "size": int,
            "status": str,  # stored | duplicate | failed
            "error": str,
            "blake3": str,
            "sha256": str,
            "clip_id": int,
        },
        pk="id",
        not_null={"ingest_id", "original_path", "status"},
        foreign_keys=[("ingest_id", "ingests", "id"), ("clip_id", "clips", "id")],
    )
    db.table("ingest_items").create_index(["ingest_id"])
    db.table("findings").create(
        {
            "id": int,
            "ingest_id": int,
            "device_serial": str,
            "kind": str,  # gap | overlap | future | implausibly_old | late_handover
            "clip_id": int,
            "other_clip_id": int,
            "seconds": float,
            "detail": str,
        },
        pk="id",
        not_null={"ingest_id", "device_serial", "kind"},
        foreign_keys=[("ingest_id", "ingests", "id"), ("clip_id", "clips", "id")],
    )
    db.table("findings").create_index(["ingest_id"])
    db.table("findings").create_index(["clip_id"])
    db.table("audit").create(
        {
            "seq": int,
            "at": str,
            "actor": str,
            "action": str,
            "subject": str,
            "details": str,  # canonical JSON
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
        not_null={"at", "actor", "action", "subject", "details", "prev_hash", "hash"},
    )
    db.table("audit").create_index(["hash"], unique=True)
    db.table("audit").create_index(["prev_hash"], unique=True)
    db.table("audit").create_index(["subject"])
    # Guard rails: the log is append-only through SQLite. The hash chain is what proves it.
    db.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )


def _flags_cases_holds(db: Database) -> None:
    """Art. 19-20: flags for long-term keeping, cases with their retention, legal holds; clip tombstones."""
    db.table("flags").create(
        {
            "id": int,
            "clip_id": int,
            "reason": str,  # dispute | obstruction | incident | other (Art. 20 (1)-(4))
            "note": str,
            "flagged_at": str,
            "flagged_by": str,
            "unflagged_at": str,  # set once, by unflag, with its note
            "unflagged_by": str,
            "unflag_note": str,
        },
        pk="id",
        not_null={"clip_id", "reason", "flagged_at", "flagged_by"},
        foreign_keys=[("clip_id", "clips", "id")],
    )
    db.table("flags").create_index(["clip_id"])
    db.table("cases").create(
        {
            "id": int,
            "case_no": str,
            "title": str,
            "created_at": str,
            "created_by": str,
            "retain_until": str,  # a date; NULL: decided at closing (retain_years) or kept indefinitely
            "retain_years": int,  # counted from closed_on when retain_until is not given
            "closed_on": str,  # a date; NULL while the case is open (its clips are kept indefinitely)
        },
        pk="id",
        not_null={"case_no", "created_at", "created_by"},
    )
    db.table("cases").create_index(["case_no"], unique=True)
    db.table("case_clips").create(
        {
            "id": int,
            "case_id": int,
            "clip_id": int,
            "linked_at": str,
            "linked_by": str,
            "unlinked_at": str,
            "unlinked_by": str,
        },
        pk="id",
        not_null={"case_id", "clip_id", "linked_at", "linked_by"},
        foreign_keys=[("case_id", "cases", "id"), ("clip_id", "clips", "id")],
    )
    db.table("case_clips").create_index(["clip_id"])
    db.table("case_clips").create_index(["case_id"])
    db.table("holds").create(
        {
            "id": int,
            "clip_id": int,  # exactly one of clip_id, case_id, device_serial says what is held
            "case_id": int,
            "device_serial": str,
            "since": str,  # with device_serial: the recording window held
            "until": str,
            "reason": str,
            "placed_at": str,
            "placed_by": str,
            "released_at": str,
            "released_by": str,
            "release_note": str,
        },
        pk="id",
        not_null={"reason", "placed_at", "placed_by"},
        foreign_keys=[("clip_id", "clips", "id"), ("case_id", "cases", "id")],
    )
    db.table("clips").add_column("due_since", str)  # every rule released it; purged after the grace period
    db.table("clips").add_column("purged_at", str)  # the tombstone: hashes and size stay in the row forever
    db.table("clips").add_column("purge_reason", str)
    db.table("clips").create_index(["state", "due_since"])


def _listing_indexes(db: Database) -> None:
    """Indexes for listings over a large catalog.

    ``ls --since/--until`` selects on the recording start, or the ingest time when the start is unknown
    (:meth:`Catalog.clips`): an index on exactly that expression answers a day from a million clips without
    scanning them. :meth:`Catalog.devices` looks up each device's last ingest.
    """
    db.execute("CREATE INDEX IF NOT EXISTS idx_clips_listed_at ON clips (COALESCE(recorded_start, ingested_at))")
    db.table("ingests").create_index(["device_serial", "started_at"], if_not_exists=True)


def _discs(db: Database) -> None:
    """Art. 20-21: the disc registry. A disc row exists only for an image verified after it was written."""
    db.table("discs").create(
        {
            "id": int,
            "volume_id": str,  # AVLOG_2026_0001: on the disc, in its bag-info.txt and here
            "year": int,
            "seq": int,  # the number within the year
            "media": str,  # cd | dvd | dvd-dl | bd25 | bd50 | bd100
            "purpose": str,  # archive (Art. 20) | evidence (Art. 21)
            "evidence_case_id": int,
            "image_path": str,  # where the image was written (it may be moved or deleted after burning)
            "image_bytes": int,
            "image_sha256": str,
            "image_blake3": str,
            "payload_bytes": int,
            "clip_count": int,
            "reasons": str,  # JSON: Art. 20 reasons and case numbers of its clips
            "created_at": str,
            "created_by": str,
            "state": str,  # image | burned | lost | unreadable
            "burned_at": str,
            "burned_by": str,
            "location": str,
            "image_verified_at": str,  # last read-back of the image file
            "image_verify_result": str,  # ok | mismatch | unreadable
            "disc_verified_at": str,  # last read-back of the physical disc
            "disc_verify_result": str,  # ok | mismatch | unreadable
        },
        pk="id",
        not_null={"volume_id", "year", "seq", "media", "purpose", "image_bytes", "image_sha256", "image_blake3"}
        | {"payload_bytes", "clip_count", "created_at", "created_by", "state"},
        defaults={"state": "image"},
        foreign_keys=[("evidence_case_id", "cases", "id")],
    )
    db.table("discs").create_index(["volume_id"], unique=True)
    db.table("discs").create_index(["year", "seq"], unique=True)
    db.table("disc_clips").create(
        {
            "id": int,
            "disc_id": int,
            "clip_id": int,
            "path": str,  # the clip's path on the disc, from its root
            "blake3": str,
            "sha256": str,
            "size": int,
        },
        pk="id",
        not_null={"disc_id", "clip_id", "path", "blake3", "sha256", "size"},
        foreign_keys=[("disc_id", "discs", "id"), ("clip_id", "clips", "id")],
    )
    db.table("disc_clips").create_index(["disc_id", "clip_id"], unique=True)
    db.table("disc_clips").create_index(["clip_id"])


def _journal(db: Database) -> None:
    """The audit log becomes the catalog's journal (see :mod:`avlog.store.journal`); each entry records
    the operating-system account that wrote it (``audit.login``); a card's original name bytes are kept
    beside the name shown, where the two differ (``original_name``: JSON ``{"encoding", "parts"}``)."""
    db.execute("ALTER TABLE audit ADD COLUMN login TEXT")
    db.table("clips").add_column("original_name", str)
    db.table("ingest_items").add_column("original_name", str)


#: (name, step) in the order they apply. Append only.
STEPS: list[tuple[str, Callable[[Database], None]]] = [
    ("0001_initial", _initial),
    ("0002_flags_cases_holds", _flags_cases_holds),
    ("0003_listing_indexes", _listing_indexes),
    ("0004_discs", _discs),
    ("0005_journal", _journal),
]

#: Steps that, in a catalog with entries already, also write entries (the journal's baseline).
JOURNAL_STEPS = {"0005_journal": begin_journal}


def _has_login(db: Database) -> bool:
    return any(row[1] == "login" for row in db.execute("PRAGMA table_info(audit)"))


def migrate(db: Database, *, actor: str = "avlog", at: str | None = None, login: str | None = None) -> list[str]:
    """Apply every step not yet recorded; return the names applied now.

    A step applied to a catalog that has its audit log already writes a
    ``catalog.migrate`` entry in the same transaction, like every other change.
    """
    if "_migrations" not in db.table_names():
        with db.atomic():
            db.table("_migrations").create({"name": str, "applied_at": str}, pk="name", if_not_exists=True)
    done = {row["name"] for row in db.table("_migrations").rows}
    existing_log = "audit" in db.table_names()  # a new catalog's own first steps are its creation, not changes
    applied = []
    for number, (name, step) in enumerate(STEPS, start=1):
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", [name]).fetchone():
                db.execute("COMMIT")
                continue
            step(db)
            applied_at = at or to_db(datetime.now(UTC))
            db.table("_migrations").insert({"name": name, "applied_at": applied_at})
            if existing_log:
                by = login if _has_login(db) else None
                if name in JOURNAL_STEPS:
                    JOURNAL_STEPS[name](db, at=applied_at, actor=actor, login=by)
                append(
                    db,
                    at=applied_at,
                    actor=actor,
                    login=by,
                    action="catalog.migrate",
                    subject="catalog",
                    details={"step": name, "rows": []},
                )
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
