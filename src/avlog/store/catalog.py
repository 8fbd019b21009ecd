"""The catalog: SQLite (WAL, foreign keys) through sqlite-utils, with typed queries.

Every change runs in one ``BEGIN IMMEDIATE`` transaction together with its
audit entry (:meth:`Catalog.change`), so a change and its record commit or
vanish together, and two processes never fork the audit chain.

Rows are written only through :meth:`Catalog.insert` and :meth:`Catalog.update`,
which hand each write to the next :meth:`Catalog.audit` entry of the transaction
(the journal, :mod:`avlog.store.journal`). At commit the number of rows SQLite
changed must equal the writes the entries describe plus the entries themselves;
otherwise the transaction is rolled back: no row can enter the catalog without
its entry.

A store on a read-only filesystem (or one this account may not write) is opened
read-only: listings and checks work, changes fail with one line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from avlog.errors import AvlogError, DiskFull, NotFound, StoreError, UsageError
from avlog.i18n import _
from avlog.store import audit
from avlog.store.journal import TABLES, journaled
from avlog.store.migrations import STEPS, migrate
from avlog.timefmt import to_db

Row = dict[str, Any]

#: The largest INTEGER SQLite stores: no row id is larger, and a larger number cannot even be asked for.
MAX_ROW_ID = 2**63 - 1


class ReadOnlyStore(StoreError):
    """The store cannot be written (a read-only filesystem or another account's store)."""


def _writable(folder: Path) -> bool:
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _connect(path: Path) -> tuple[sqlite3.Connection, bool, tempfile.TemporaryDirectory[str] | None]:
    """A connection to the catalog, whether it is read-only, and the temporary copy it reads, if any.

    A writable store is opened as usual. A read-only one is opened ``immutable=1`` when it has no WAL file
    (every committed change is then in the main file; WAL would need its shared-memory file even to read,
    and nothing can create one there), else ``mode=ro`` with the WAL files beside it. When that cannot be
    opened either (a WAL file restored without its ``-shm``), the catalog and its WAL are read from a copy
    in a temporary folder, where SQLite can take the WAL in.
    """
    if _writable(path.parent):
        return sqlite3.connect(path, timeout=30), False, None
    wal = path.with_name(path.name + "-wal")
    try:
        pending = wal.stat().st_size > 0
    except FileNotFoundError:
        pending = False
    if not pending:
        return sqlite3.connect(f"{path.absolute().as_uri()}?immutable=1", uri=True, timeout=30), True, None
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn, True, None
    except sqlite3.OperationalError:
        conn.close()
    copy = tempfile.TemporaryDirectory(prefix="avlog-catalog-")
    shutil.copyfile(path, Path(copy.name) / path.name)
    shutil.copyfile(wal, Path(copy.name) / wal.name)
    return sqlite3.connect(Path(copy.name) / path.name, timeout=30), True, copy


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return "disk is full" in str(exc) or getattr(exc, "sqlite_errorcode", None) == 13  # SQLITE_FULL


def _no_room(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


class Catalog:
    def __init__(self, path: Path, *, actor: str, clock: Callable[[], datetime], login: str | None = None):
        self.path = path
        self.actor = actor
        self.login = login
        self.clock = clock
        self._writes: list[list[Any]] = []  # rows written since the last entry, for the next one
        self._counted = 0  # rows changed in this transaction that an entry accounts for
        self._copy: tempfile.TemporaryDirectory[str] | None = None  # a read-only catalog read from a copy
        try:
            conn, self.read_only, self._copy = _connect(path)
            self.db = Database(conn)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 30000")
            if self.read_only:
                applied = self.db.execute("PRAGMA user_version").fetchone()[0]
                if applied < len(STEPS):
                    raise ReadOnlyStore(
                        _(
                            "the catalog {path} needs an upgrade, which a read-only store cannot take; "
                            "open it once where it can be written"
                        ).format(path=path)
                    )
            else:
                self.db.enable_wal()
                # WAL with synchronous=FULL: a committed change survives a power cut.
                self.db.execute("PRAGMA synchronous = FULL")
                migrate(self.db, actor=actor, at=to_db(clock()), login=login)
        except sqlite3.DatabaseError as exc:
            if _no_room(path.parent):
                # WAL needs its shared-memory file even to read: a full disk shows up as an I/O error.
                raise DiskFull(
                    _("the store's disk is full ({path}); free space and run again").format(path=path.parent)
                ) from exc
            raise StoreError(_("cannot open the catalog {path}: {reason}").format(path=path, reason=exc)) from exc

    def close(self) -> None:
        self.db.close()
        if self._copy is not None:
            self._copy.cleanup()

    # -- transactions -------------------------------------------------------------------------

    def now(self) -> str:
        return to_db(self.clock())

    @contextmanager
    def change(self) -> Iterator[Database]:
        """One write transaction; commits on success, rolls back on any exception."""
        if self.read_only:
            raise ReadOnlyStore(
                _("the store at {path} is read-only: it can be listed and checked, not changed").format(
                    path=self.path.parent
                )
            )
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(_("the catalog is busy or locked: {reason}").format(reason=exc)) from exc
        self._writes, self._counted = [], 0
        before = self.db.conn.total_changes
        try:
            yield self.db
            if self._writes or self.db.conn.total_changes - before != self._counted:
                # A row written past insert()/update(), or written and not described by an entry.
                raise RuntimeError("a catalog change wrote rows that no audit entry describes")
            self.db.execute("COMMIT")
        except BaseException as exc:
            self._writes = []
            if self.db.conn.in_transaction:
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _is_disk_full(exc):
                raise DiskFull(_("the store's disk is full ({path})").format(path=self.path.parent)) from exc
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise DiskFull(_("the store's disk is full ({path})").format(path=self.path.parent)) from exc
            raise

    @contextmanager
    def snapshot(self) -> Iterator[Database]:
        """A read transaction: every query inside sees the catalog at one moment (WAL), whatever others commit
        meanwhile. Inside ``change()`` already, that transaction is the moment."""
        if self.db.conn.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            if self.db.conn.in_transaction:
                self.db.execute("COMMIT")

    def audit(self, action: str, subject: str, details: dict[str, Any], *, at: str | None = None) -> int:
        """Append an entry describing the change, with the rows written since the previous entry."""
        rows, self._writes = self._writes, []
        self._counted += 1
        return audit.append(
            self.db,
            at=at or self.now(),
            actor=self.actor,
            login=self.login,
            action=action,
            subject=subject,
            details={**details, "rows": rows},
        )

    # -- journaled writes ---------------------------------------------------------------------------

    def _in_change(self) -> None:
        if not self.db.conn.in_transaction:
            raise RuntimeError("catalog rows are written inside Catalog.change()")

    def insert(self, table: str, row: Row, *, or_ignore: bool = False) -> Any:
        """Insert one row into a journaled table; its primary key, or None when ``or_ignore`` kept an existing one.

        The row as stored (defaults included) goes into the next audit entry.
        """
        self._in_change()
        pk = TABLES[table].pk
        names = list(row)
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        cursor = self.db.conn.execute(
            f"{verb} INTO [{table}] ({', '.join(f'[{n}]' for n in names)}) VALUES ({', '.join('?' for _ in names)})",
            list(row.values()),
        )
        if cursor.rowcount == 0:
            if not or_ignore:  # a trigger that swallows inserts (RAISE(IGNORE)) must never look like a write
                raise StoreError(
                    _("the catalog did not take a row of {table}: its schema was changed").format(table=table)
                )
            return None
        key = row.get(pk, cursor.lastrowid)
        stored = self.db.conn.execute(f"SELECT * FROM [{table}] WHERE [{pk}] = ?", [key])
        columns = [c[0] for c in stored.description]
        self._writes.append(["insert", table, journaled(table, dict(zip(columns, stored.fetchone(), strict=True)))])
        self._counted += 1
        return key

    def update(self, table: str, key: Any, values: Row, *, where: str = "", params: list[Any] | None = None) -> bool:
        """Set ``values`` on the row ``key`` of a journaled table (only if the extra SQL condition ``where``
        holds); whether a row changed. The change goes into the next audit entry."""
        self._in_change()
        pk = TABLES[table].pk
        kept = journaled(table, values)
        if kept != values:
            raise ValueError(f"{table}: {sorted(set(values) - set(kept))} are observations; use observe()")
        cursor = self.db.conn.execute(
            f"UPDATE [{table}] SET {', '.join(f'[{n}] = ?' for n in values)} WHERE [{pk}] = ?"
            + (f" AND ({where})" if where else ""),
            [*values.values(), key, *(params or [])],
        )
        if cursor.rowcount == 0:
            return False
        if cursor.rowcount != 1:
            raise StoreError(
                _("the catalog changed more than one row of {table}: its schema was changed").format(table=table)
            )
        self._writes.append(["update", table, {pk: key, **values}])
        self._counted += 1
        return True

    def observe(self, table: str, key: Any, values: Row) -> None:
        """Set columns the journal leaves out (what the last check saw); no row of the journal."""
        self._in_change()
        if journaled(table, values):
            raise ValueError(f"{table}: {sorted(journaled(table, values))} are records; use update()")
        pk = TABLES[table].pk
        cursor = self.db.conn.execute(
            f"UPDATE [{table}] SET {', '.join(f'[{n}] = ?' for n in values)} WHERE [{pk}] = ?", [*values.values(), key]
        )
        self._counted += cursor.rowcount

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[Row]:
        return list(self.db.query(sql, params or []))

    def tuples(self, sql: str, params: list[Any] | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows as plain tuples, streamed: for reading the whole catalog without a dict per row."""
        return iter(self.db.conn.execute(sql, params or []))

    def one(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # -- devices (Art. 6, 10) -------------------------------------------------------------------

    def register_device(self, serial: str, *, custodian: str, unit: str, kind: str, label: str | None) -> Row:
        with self.change():
            if self.device(serial) is not None:
                raise AvlogError(_("device {serial} is registered already").format(serial=serial))
            row = {
                "serial": serial,
                "custodian": custodian,
                "unit": unit,
                "kind": kind,
                "label": label,
                "registered_at": self.now(),
                "registered_by": self.actor,
            }
            self.insert("devices", row)
            self.audit(
                "device.register", f"device:{serial}", {k: row[k] for k in ("custodian", "unit", "kind", "label")}
            )
        device = self.device(serial)
        assert device is not None
        return device

    def device(self, serial: str) -> Row | None:
        return self.one("SELECT * FROM devices WHERE serial = ?", [serial])

    def devices(self) -> list[Row]:
        return self.query(
            "SELECT d.*, (SELECT COUNT(*) FROM clips c WHERE c.device_serial = d.serial) AS clips, "
            "(SELECT MAX(started_at) FROM ingests i WHERE i.device_serial = d.serial) AS last_ingest "
            "FROM devices d ORDER BY d.serial"
        )

    # -- clips ----------------------------------------------------------------------------------

    def clip_by_key(self, device_serial: str, original_path: str, blake3: str) -> Row | None:
        return self.one(
            "SELECT * FROM clips WHERE device_serial = ? AND original_path = ? AND blake3 = ?",
            [device_serial, original_path, blake3],
        )

    def resolve_clip(self, ref: str) -> Row:
        """A clip by catalog id, or by a unique BLAKE3 prefix of at least 8 hex digits."""
        ref = ref.strip().lower()
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses, and "٣", which it reads as 3.
        digits = ref.isascii() and ref.isdigit()
        if digits and len(ref) < 8:
            if int(ref) < 1:
                raise UsageError(_("clip ids start at 1, not {ref}").format(ref=ref))
            row = self.one("SELECT * FROM clips WHERE id = ?", [int(ref)])
            if row is None:
                raise NotFound(_("no clip with id {ref}").format(ref=ref))
            return row
        if len(ref) < 8 or not ref.isascii() or any(c not in "0123456789abcdef" for c in ref):
            raise UsageError(
                _("{ref} is neither a clip id nor a BLAKE3 prefix of at least 8 hex digits").format(ref=ref)
            )
        rows = self.query("SELECT * FROM clips WHERE blake3 >= ? AND blake3 < ? ORDER BY id", [ref, ref + "g"])
        if not rows:
            if digits:
                if int(ref) > MAX_ROW_ID:
                    raise UsageError(
                        _("no clip's BLAKE3 starts with {ref}, and it is too large for a clip id").format(ref=ref)
                    )
                row = self.one("SELECT * FROM clips WHERE id = ?", [int(ref)])
                if row is not None:
                    return row
            raise NotFound(_("no clip whose BLAKE3 starts with {ref}").format(ref=ref))
        if len({r["blake3"] for r in rows}) > 1:
            raise UsageError(_("{ref} matches {n} different contents; give more digits").format(ref=ref, n=len(rows)))
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise UsageError(
                _("{ref} is the content of several clips ({ids}); name one by its id").format(ref=ref, ids=ids)
            )
        return rows[0]

    def clips(
        self,
        *,
        device: str | None = None,
        since: str | None = None,
        until: str | None = None,
        ingest_id: int | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Clips in recording order; ``since``/``until`` compare with the recording's start (catalog times)."""
        where: list[str] = []
        params: list[Any] = []
        if device is not None:
            where.append("device_serial = ?")
            params.append(device)
        if since is not None:
            where.append("COALESCE(recorded_start, ingested_at) >= ?")
            params.append(since)
        if until is not None:
            where.append("COALESCE(recorded_start, ingested_at) < ?")
            params.append(until)
        if ingest_id is not None:
            where.append("ingest_id = ?")
            params.append(ingest_id)
        sql = "SELECT * FROM clips"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY device_serial, COALESCE(recorded_start, ingested_at), id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, params)

    def audit_entries(self, *, subject: str | None = None, limit: int = 50) -> list[Row]:
        """The newest ``limit`` entries (about ``subject`` only, when given), oldest first."""
        where, params = ("WHERE subject = ?", [subject]) if subject else ("", [])
        rows = self.query(f"SELECT * FROM audit {where} ORDER BY seq DESC LIMIT ?", [*params, int(limit)])
        return rows[::-1]

    def clip(self, clip_id: int) -> Row | None:
        return self.one("SELECT * FROM clips WHERE id = ?", [clip_id])

    def audit_trail(self, subjects: list[str]) -> list[Row]:
        marks = ",".join("?" for _ in subjects)
        return self.query(f"SELECT * FROM audit WHERE subject IN ({marks}) ORDER BY seq", list(subjects))

    def findings(self, *, ingest_id: int | None = None, clip_id: int | None = None) -> list[Row]:
        if clip_id is not None:
            return self.query(
                "SELECT * FROM findings WHERE clip_id = ? OR other_clip_id = ? ORDER BY id", [clip_id, clip_id]
            )
        return self.query("SELECT * FROM findings WHERE ingest_id = ? ORDER BY id", [ingest_id])

    # -- objects --------------------------------------------------------------------------------

    def live_objects(self) -> list[Row]:
        """Objects that some stored (not purged) clip still needs."""
        return self.query(
            # IN, not a correlated EXISTS: SQLite would answer EXISTS through the state index, once per object.
            "SELECT o.* FROM objects o WHERE o.blake3 IN "
            "(SELECT c.blake3 FROM clips c WHERE c.state = 'stored') ORDER BY o.blake3"
        )

    def record_verification(self, results: dict[str, str | None], summary: dict[str, Any]) -> None:
        at = self.now()
        with self.change():
            for blake3, problem in results.items():
                self.observe("objects", blake3, {"last_verified_at": at, "last_verify_result": problem or "ok"})
            self.audit("store.verify", "store", summary, at=at)


def loads(text: str | None) -> Any:
    return json.loads(text) if text else None
