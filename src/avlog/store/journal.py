"""The audit log is the catalog's journal: replaying it rebuilds every table, and what the tables say
and the log does not is a finding, never trusted.

Every audit entry carries, in its details, the rows its change wrote::

    "rows": [["insert", "clips", {"id": 12, "blake3": "…", "device_serial": "BC-0001", …}],
             ["update", "flags", {"id": 3, "unflagged_at": "…", "unflagged_by": "…", "unflag_note": "…"}]]

An ``insert`` holds the whole row as it was stored (defaults included); an ``update`` holds the row's
primary key and the columns it set. Rows are never deleted. :meth:`avlog.store.catalog.Catalog.insert`
and :meth:`~avlog.store.catalog.Catalog.update` are the only ways avlog writes these tables, and they
collect each write for the next audit entry of the same transaction; a transaction that wrote a row no
entry describes is rolled back (the count of changed rows is checked at commit).

:func:`replay` applies every entry's rows, in order, to an empty catalog of the same schema; :func:`compare`
then names every row that differs between that rebuild and the real tables, with the entry that wrote it.
``avlog audit verify`` does both, and the retention sweep and ``burn-iso`` do it before they act, so a
flag row deleted straight in SQLite can never let evidence be purged.

Stores older than the journal (catalog step 0005) have entries without rows. The step that brought them
up wrote ``catalog.baseline`` entries holding every row as it was then, after comparing the rows with what
the old entries did say; contradictions found then are kept in a ``catalog.journal`` entry and reported
by every check from then on. A replay starts from the baseline; entries before it are history only.

Two columns are observations rather than records, and are left out of the journal: ``objects.
last_verified_at`` and ``objects.last_verify_result`` (what the last ``verify`` saw; the ``store.verify``
entry keeps its summary). Changing them can only make an ingest replace an object by a proven copy of the
same content.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from avlog.errors import IntegrityError
from avlog.i18n import _
from avlog.store.audit import append, iter_entries, tolerant

Row = dict[str, Any]


@dataclass(frozen=True)
class Table:
    pk: str
    excluded: tuple[str, ...] = ()  # observations, not journaled


#: Every table the journal rebuilds, with its primary key, in the order their rows may depend on each other.
TABLES: dict[str, Table] = {
    "devices": Table("id"),
    "ingests": Table("id"),
    "objects": Table("blake3", ("last_verified_at", "last_verify_result")),
    "clips": Table("id"),
    "ingest_items": Table("id"),
    "findings": Table("id"),
    "flags": Table("id"),
    "cases": Table("id"),
    "case_clips": Table("id"),
    "holds": Table("id"),
    "discs": Table("id"),
    "disc_clips": Table("id"),
}

BASELINE = "catalog.baseline"
JOURNAL = "catalog.journal"
#: Rows per ``catalog.baseline`` entry: one entry stays a few megabytes however large the store.
BASELINE_CHUNK = 2000
#: Contradictions written into the ``catalog.journal`` entry (the total is always kept).
CONTRADICTIONS_KEPT = 1000
#: The column the rebuild keeps beside each row: the entry that last wrote it.
_SEQ = "_journal_seq"


def journaled(table: str, row: Row) -> Row:
    """``row`` without the columns the journal leaves out."""
    excluded = TABLES[table].excluded
    return {k: v for k, v in row.items() if k not in excluded} if excluded else dict(row)


@dataclass(frozen=True)
class Difference:
    """One way the tables and the log disagree.

    ``kind``: ``missing`` (the log wrote the row, the table lacks it), ``unexpected`` (the table holds a row
    no entry wrote), ``changed`` (``column`` differs), ``entry`` (an entry that cannot be applied: it writes
    a row twice or updates one never written), ``contradiction`` (found when the store's journal began),
    ``schema`` (a table, column, index, trigger or view that avlog did not make, or one it made that is gone)
    or ``integrity`` (SQLite's own ``integrity_check`` finds the file inconsistent, such as an index that no
    longer lists every row: the queries that decide retention would not see what the tables hold).
    """

    kind: str
    table: str
    key: Any
    column: str | None = None
    table_value: Any = None
    log_value: Any = None
    entry: int | None = None  # the entry that wrote the row (or could not be applied)
    detail: str | None = None

    def to_json(self) -> Row:
        return {
            "kind": self.kind,
            "table": self.table,
            "key": self.key,
            "column": self.column,
            "table_value": self.table_value,
            "log_value": self.log_value,
            "entry": self.entry,
            "detail": self.detail,
        }

    def text(self) -> str:
        """One sentence naming the row and the entry."""
        row = f"{self.table} {self.key}"
        if self.kind == "missing":
            return _("{row}: written by entry {entry}, missing from the table").format(row=row, entry=self.entry)
        if self.kind == "unexpected":
            return _("{row}: in the table, but no entry of the log wrote it").format(row=row)
        if self.kind == "changed":
            return _("{row}: {column} is {actual} in the table, {logged} in the log (entry {entry})").format(
                row=row,
                column=self.column,
                actual=json.dumps(self.table_value, ensure_ascii=False),
                logged=json.dumps(self.log_value, ensure_ascii=False),
                entry=self.entry,
            )
        if self.kind == "schema":
            return _("the catalog's schema is not avlog's: {detail}").format(detail=self.detail)
        if self.kind == "integrity":
            return _("SQLite finds the catalog file inconsistent: {detail}").format(detail=self.detail)
        if self.kind == "entry":
            return _("entry {entry} cannot be applied to {row}: {detail}").format(
                entry=self.entry, row=row, detail=self.detail
            )
        return _("{row}: {detail} (recorded by entry {entry} when the journal began)").format(
            row=row, detail=self.detail, entry=self.entry
        )


# -- replay -----------------------------------------------------------------------------------------


@dataclass
class Rebuild:
    """The catalog rebuilt from the log, and what could not be applied on the way."""

    db: Database
    entries: int
    problems: list[Difference]

    def close(self) -> None:
        self.db.close()


def _scratch() -> Database:
    """An empty catalog of the current schema in a private temporary database (SQLite's ``""``: kept in
    memory while small, spilled to a temporary file when large), each table with a column for the entry
    that last wrote each row."""
    from avlog.store.migrations import migrate

    db = Database(sqlite3.connect(""))
    migrate(db)
    # Only the primary keys stay: the other indexes speed up avlog's queries, not a replay, and a row
    # written twice under two keys shows as a difference anyway.
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
        db.execute(f"DROP INDEX [{name}]")
    for name in TABLES:
        db.execute(f"ALTER TABLE [{name}] ADD COLUMN {_SEQ} INTEGER")
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")  # 256 MiB before a large rebuild spills to its temporary file
    return db


def schema_of(db: Database) -> dict[str, Any]:
    """What a catalog's schema is made of, in a form that does not depend on how its SQL was spelled: each
    table's columns, each index's table, uniqueness, partiality and columns, each trigger's and view's SQL."""
    found: dict[str, Any] = {}
    conn = db.conn
    for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"):
        if kind == "table":
            found[f"table {name}"] = [tuple(r[1:]) for r in conn.execute(f"PRAGMA table_info([{name}])")]
            for _seq, index, unique, _origin, partial in conn.execute(f"PRAGMA index_list([{name}])"):
                if not str(index).startswith("sqlite_"):
                    columns = [r[2] for r in conn.execute(f"PRAGMA index_info([{index}])")]
                    found[f"index {index}"] = (name, unique, partial, columns)
        elif kind in ("trigger", "view"):
            found[f"{kind} {name}"] = " ".join(str(sql).split())
    return found  # every index belongs to a table and is listed with it


@functools.cache
def expected_schema() -> dict[str, Any]:
    """The schema avlog's steps make, read once from an empty catalog they build in memory."""
    from avlog.store.migrations import migrate

    db = Database(sqlite3.connect(":memory:"))
    try:
        migrate(db)
        return schema_of(db)
    finally:
        db.close()


def schema_differences(db: Database) -> list[Difference]:
    """Tables, indexes, triggers and views that differ from what avlog's steps make (a trigger that swallows
    inserts, an audit trigger dropped, an index redefined), then SQLite's own integrity check of the file."""
    expected, actual = expected_schema(), schema_of(db)
    found = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            found.append(Difference("schema", "catalog", name, detail=_("{name} is missing").format(name=name)))
        elif name not in expected:
            found.append(Difference("schema", "catalog", name, detail=_("{name} was added").format(name=name)))
        elif actual[name] != expected[name]:
            found.append(Difference("schema", "catalog", name, detail=_("{name} was changed").format(name=name)))
    for (message,) in db.conn.execute("PRAGMA integrity_check(20)"):
        if message != "ok":
            found.append(Difference("integrity", "catalog", None, detail=str(message)))
    return found


def journal_start(db: Database) -> tuple[int, list[Difference]]:
    """Where entries begin to carry their rows, and the entries that pretend to begin a journal.

    A store made by a version with the journal has it from entry 1. An older store began it with step 0005:
    its ``catalog.migrate`` entry for ``0005_journal`` follows one ``catalog.journal`` entry and the
    ``catalog.baseline`` entries between them. Any other ``catalog.journal`` or ``catalog.baseline`` entry
    was not written by that step (anyone can append a well-hashed entry): it is reported, and its rows are
    replayed like any other, so a baseline that leaves rows out cannot make them vanish.
    """
    marks = list(
        db.execute(
            "SELECT seq, action, details FROM audit WHERE action IN (?, ?, 'catalog.migrate') ORDER BY seq",
            [JOURNAL, BASELINE],
        )
    )
    step = next(
        (seq for seq, action, details in marks if action == "catalog.migrate" and '"0005_journal"' in details), None
    )
    start, legitimate = 1, set()
    if step is not None:
        before = [(seq, action) for seq, action, _d in marks if seq < step and action in (JOURNAL, BASELINE)]
        journals = [seq for seq, action in before if action == JOURNAL]
        if journals:
            start = journals[-1]
            between = [seq for seq, _a in before if seq > start]
            if between == list(range(start + 1, step)):  # nothing else between the journal entry and the step
                legitimate = {start, *between}
            else:
                start = 1
    forged = [
        Difference(
            "entry", "audit", seq, entry=seq, detail=_("it claims to begin the journal, which step 0005 did not write")
        )
        for seq, action, _d in marks
        if action in (JOURNAL, BASELINE) and seq not in legitimate
    ]
    return start, forged


#: Values a journaled column may hold (what SQLite stores as INTEGER, REAL, TEXT or NULL).
_INT_RANGE = (-(1 << 63), (1 << 63) - 1)


def _value_ok(value: Any) -> bool:
    if value is None or isinstance(value, str | float) and not isinstance(value, bool):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and _INT_RANGE[0] <= value <= _INT_RANGE[1]


def replay(db: Database, *, limit: int | None = None) -> Rebuild:
    """Apply every entry's rows, from the journal's start, to an empty catalog. At most ``limit`` problems are
    kept (the rest are counted in one more)."""
    scratch = _scratch()
    columns = {name: {c.name for c in scratch.table(name).columns} - {_SEQ} for name in TABLES}
    start, problems = journal_start(db)
    count = dropped = 0
    statements: dict[tuple[Any, ...], str | Difference] = {}

    def note(problem: Difference | None) -> None:
        nonlocal dropped
        if problem is None:
            return
        if limit is not None and len(problems) >= limit:
            dropped += 1
        else:
            problems.append(problem)

    scratch.conn.execute("BEGIN")
    for entry in iter_entries(db, since=start - 1):
        count += 1
        seq = entry["seq"]
        try:
            details = json.loads(entry["details"])
        except (ValueError, TypeError, RecursionError):
            note(Difference("entry", "audit", seq, entry=seq, detail=_("its details are not JSON")))
            continue
        if not isinstance(details, dict):
            note(Difference("entry", "audit", seq, entry=seq, detail=_("its details are not a JSON object")))
            continue
        if entry["action"] == JOURNAL:
            for problem in _contradictions(details, seq):
                note(problem)
        rows = details.get("rows", [])
        if not isinstance(rows, list):
            note(Difference("entry", "audit", seq, entry=seq, detail=_("its rows are not a list")))
            continue
        for op in rows:
            note(_apply(scratch.conn, columns, seq, op, statements))
    scratch.conn.execute("COMMIT")
    if dropped:
        problems.append(
            Difference(
                "entry", "audit", None, detail=_("{n} more entries cannot be applied (not listed)").format(n=dropped)
            )
        )
    return Rebuild(scratch, count, problems)


def _contradictions(details: Row, seq: int) -> list[Difference]:
    listed = details.get("contradictions") or []
    found = [
        Difference("contradiction", str(c.get("table")), c.get("key"), entry=seq, detail=str(c.get("detail")))
        for c in listed
        if isinstance(c, dict)
    ]
    total = details.get("contradictions_total")
    unlisted = (total if isinstance(total, int) and not isinstance(total, bool) else 0) - len(listed)
    if unlisted > 0:
        detail = _("{n} more contradictions were counted and not listed").format(n=unlisted)
        found.append(Difference("contradiction", "catalog", None, entry=seq, detail=detail))
    return found


def _shapeless(seq: int) -> Difference:
    return Difference("entry", "audit", seq, entry=seq, detail=_("a row it lists is not of the journal's form"))


def _apply(
    conn: sqlite3.Connection,
    columns: dict[str, set[str]],
    seq: int,
    op: Any,
    statements: dict[tuple[Any, ...], str | Difference],
) -> Difference | None:
    """Apply one row of an entry; a :class:`Difference` when it cannot be applied. ``statements`` caches the SQL
    of each (operation, table, columns) once it has been checked (a store writes a few dozen shapes of row)."""
    if not isinstance(op, list) or len(op) != 3:
        return _shapeless(seq)
    kind, table, values = op
    if not isinstance(kind, str) or not isinstance(table, str) or table not in TABLES or not isinstance(values, dict):
        return _shapeless(seq)
    spec = TABLES[table]
    key = values.get(spec.pk)
    if key is None or not all(isinstance(n, str) for n in values) or not all(_value_ok(v) for v in values.values()):
        return _shapeless(seq)
    names = tuple(values)
    shape = (kind, table, names)
    sql = statements.get(shape)
    if sql is None:
        sql = statements[shape] = _statement(kind, table, names, columns[table])
    if isinstance(sql, Difference):
        return Difference(sql.kind, table, key, entry=seq, detail=sql.detail)
    try:
        if kind == "insert":
            conn.execute(sql, [*values.values(), seq])
            return None
        if conn.execute(sql, [*(values[n] for n in names if n != spec.pk), seq, key]).rowcount == 0:
            return Difference("entry", table, key, entry=seq, detail=_("it changes a row no entry wrote"))
        return None
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
            reason = _("it writes a row twice ({reason})").format(reason=exc)
        else:
            reason = _("its row cannot be written ({reason})").format(reason=exc)
        return Difference("entry", table, key, entry=seq, detail=reason)


def _statement(kind: str, table: str, names: tuple[str, ...], known: set[str]) -> str | Difference:
    unknown = set(names) - known
    if unknown:
        detail = _("unknown columns: {names}").format(names=", ".join(sorted(unknown)))
        return Difference("entry", table, None, detail=detail)
    if kind == "insert":
        return (
            f"INSERT INTO [{table}] ({', '.join(f'[{n}]' for n in names)}, {_SEQ}) "
            f"VALUES ({', '.join('?' for _ in names)}, ?)"
        )
    if kind == "update":
        pk = TABLES[table].pk
        sets = "".join(f"[{n}] = ?, " for n in names if n != pk)
        return f"UPDATE [{table}] SET {sets}{_SEQ} = ? WHERE [{pk}] = ?"
    return Difference("entry", table, None, detail=_("unknown operation {op}").format(op=kind))


# -- comparing --------------------------------------------------------------------------------------


def _rows(db: Database, table: str, cols: list[str], extra: str = "") -> Iterator[tuple[Any, ...]]:
    pk = TABLES[table].pk
    select = ", ".join(f"[{c}]" for c in [pk, *cols]) + extra
    return iter(db.conn.execute(f"SELECT {select} FROM [{table}] ORDER BY [{pk}]"))


def _order(value: Any) -> tuple[int, Any]:
    """SQLite's order of keys: NULL, then numbers, then text, then blobs (a key of the wrong type is a
    difference to report, never an error of the comparison)."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


def compare(db: Database, rebuild: Rebuild, *, limit: int | None = None) -> list[Difference]:
    """Every row that differs between the real tables and the rebuild (at most ``limit``), table by table."""
    found = list(rebuild.problems)
    for table, spec in TABLES.items():
        cols = [c.name for c in rebuild.db.table(table).columns if c.name not in (_SEQ, spec.pk, *spec.excluded)]
        real = _rows(db, table, cols)
        logged = _rows(rebuild.db, table, cols, f", {_SEQ}")
        a, b = next(real, None), next(logged, None)
        while a is not None or b is not None:
            if limit is not None and len(found) >= limit:
                return found
            if b is None or (a is not None and _order(a[0]) < _order(b[0])):
                assert a is not None
                found.append(Difference("unexpected", table, a[0]))
                a = next(real, None)
            elif a is None or _order(b[0]) < _order(a[0]):
                found.append(Difference("missing", table, b[0], entry=b[-1]))
                b = next(logged, None)
            else:
                # SQLite gives each column's values one type by affinity, so equal tuples are equal rows.
                if a[1:] != b[1:-1]:
                    for i, col in enumerate(cols, start=1):
                        if a[i] != b[i] or type(a[i]) is not type(b[i]):
                            found.append(Difference("changed", table, a[0], col, a[i], b[i], entry=b[-1]))
                a, b = next(real, None), next(logged, None)
    return found


def check(db: Database, *, limit: int | None = None) -> list[Difference]:
    """Check the schema and the file, replay the log and compare it with the tables: the differences (empty
    when they agree). Run it inside one transaction of the caller (:meth:`Catalog.snapshot` or ``change()``)
    so that the log and the tables are read as one moment: a change committed meanwhile is neither a false
    alarm nor a gap between the check and what the caller then does."""

    def run() -> list[Difference]:
        found = schema_differences(db)
        rebuild = replay(db, limit=limit)
        try:
            return found + compare(db, rebuild, limit=None if limit is None else max(limit - len(found), 1))
        finally:
            rebuild.close()

    return tolerant(db, run)


def require_agreement(db: Database, refusal: str) -> None:
    """Refuse (exit 3) to act on a catalog whose tables differ from its log.

    ``refusal`` is the whole translated sentence to show, with ``{difference}`` for the first difference.
    Run by the retention sweep and ``burn-iso`` before they act, so a row changed behind avlog's back (a flag
    deleted, a disc added) can never decide what is purged or burned.
    """
    found = check(db, limit=1)
    if found:
        raise IntegrityError(refusal.format(difference=found[0].text()))


# -- the step that starts the journal in an older store ------------------------------------------------


def begin_journal(db: Database, *, at: str, actor: str, login: str | None) -> None:
    """Catalog step 0005 in a store that has entries already: compare the rows with what the old entries
    say, record the contradictions (``catalog.journal``), then every row as it is (``catalog.baseline``).

    Runs inside the step's transaction. Old entries name less than the rows hold (``clip.add`` had no
    device or times), so the baseline is the rows as found; what the old entries did say is checked first,
    and any disagreement stays on record for every later check.
    """
    contradictions = _legacy_contradictions(db)
    append(
        db,
        at=at,
        actor=actor,
        login=login,
        action=JOURNAL,
        subject="catalog",
        details={
            "contradictions": contradictions[:CONTRADICTIONS_KEPT],
            "contradictions_total": len(contradictions),
            "rows": [],
        },
    )
    for table, spec in TABLES.items():
        cursor = db.conn.execute(f"SELECT * FROM [{table}] ORDER BY [{spec.pk}]")
        names = [c[0] for c in cursor.description]
        while chunk := cursor.fetchmany(BASELINE_CHUNK):
            rows = [["insert", table, journaled(table, dict(zip(names, r, strict=True)))] for r in chunk]
            append(
                db,
                at=at,
                actor=actor,
                login=login,
                action=BASELINE,
                subject=f"table:{table}",
                details={"table": table, "rows": rows},
            )


def _legacy_contradictions(db: Database) -> list[Row]:
    """What the entries written before the journal say about clips, flags, case links, holds and discs,
    against the rows: each disagreement as ``{"table", "key", "detail"}``."""
    found: list[Row] = []
    adds: dict[int, Row] = {}
    flags: dict[tuple[int, str], int] = {}
    links: dict[tuple[int, str], int] = {}
    holds: dict[int, bool] = {}  # hold id -> still standing
    disc_clips: dict[str, list[int]] = {}
    purged: set[int] = set()
    for entry in iter_entries(db):
        action, subject = entry["action"], entry["subject"]
        try:
            details = json.loads(entry["details"])
        except ValueError:
            continue
        clip = int(subject[5:]) if subject.startswith("clip:") and subject[5:].isdigit() else None
        if action == "clip.add" and clip is not None:
            adds[clip] = details
        elif action == "clip.purge" and clip is not None:
            purged.add(clip)
        elif action in ("clip.flag", "clip.unflag") and clip is not None:
            key = (clip, str(details.get("reason")))
            flags[key] = flags.get(key, 0) + (1 if action == "clip.flag" else -1)
        elif action in ("case.link", "case.unlink") and clip is not None:
            key = (clip, str(details.get("case")))
            links[key] = links.get(key, 0) + (1 if action == "case.link" else -1)
        elif action == "hold.add" and isinstance(details.get("hold"), int):
            holds[details["hold"]] = True
        elif action == "hold.release" and subject.startswith("hold:") and subject[5:].isdigit():
            holds[int(subject[5:])] = False
        elif action == "disc.add" and subject.startswith("disc:"):
            disc_clips[subject[5:]] = sorted(int(i) for i in details.get("clips") or [])

    def note(table: str, key: Any, detail: str) -> None:
        found.append({"table": table, "key": key, "detail": detail})

    for row in db.query("SELECT id, blake3, sha256, size, original_path, ingest_id, state FROM clips ORDER BY id"):
        add = adds.pop(row["id"], None)
        if add is None:
            note("clips", row["id"], "no clip.add entry wrote this clip")
            continue
        for column, said in (("blake3", "blake3"), ("sha256", "sha256"), ("size", "size"), ("original_path", "path")):
            if add.get(said) != row[column]:
                note("clips", row["id"], f"{column} differs from its clip.add entry")
        if "ingest" in add and add["ingest"] != row["ingest_id"]:
            note("clips", row["id"], "ingest_id differs from its clip.add entry")
        if (row["state"] == "purged") != (row["id"] in purged):
            note("clips", row["id"], "its state differs from the clip.purge entries")
    for clip_id in sorted(adds):
        note("clips", clip_id, "a clip.add entry wrote this clip, the table lacks it")
    table_flags: dict[tuple[int, str], int] = {}
    for r in db.query("SELECT clip_id, reason FROM flags WHERE unflagged_at IS NULL"):
        key = (r["clip_id"], r["reason"])
        table_flags[key] = table_flags.get(key, 0) + 1
    for key in sorted(set(flags) | set(table_flags)):
        if max(flags.get(key, 0), 0) != table_flags.get(key, 0):
            note("flags", key[0], f"flags in force for reason {key[1]} differ from the clip.flag/clip.unflag entries")
    table_links: dict[tuple[int, str], int] = {}
    for r in db.query(
        "SELECT l.clip_id, c.case_no FROM case_clips l JOIN cases c ON c.id = l.case_id WHERE l.unlinked_at IS NULL"
    ):
        key = (r["clip_id"], r["case_no"])
        table_links[key] = table_links.get(key, 0) + 1
    for key in sorted(set(links) | set(table_links)):
        if max(links.get(key, 0), 0) != table_links.get(key, 0):
            note("case_clips", key[0], f"links to case {key[1]} differ from the case.link/case.unlink entries")
    for r in db.query("SELECT id, released_at FROM holds ORDER BY id"):
        standing = holds.pop(r["id"], None)
        if standing is None:
            note("holds", r["id"], "no hold.add entry placed this hold")
        elif standing != (r["released_at"] is None):
            note("holds", r["id"], "its release differs from the hold.release entries")
    for hold_id in sorted(holds):
        note("holds", hold_id, "a hold.add entry placed this hold, the table lacks it")
    table_discs: dict[str, list[int]] = {}
    for r in db.query(
        "SELECT d.volume_id, l.clip_id FROM discs d LEFT JOIN disc_clips l ON l.disc_id = d.id ORDER BY l.clip_id"
    ):
        table_discs.setdefault(r["volume_id"], [])
        if r["clip_id"] is not None:
            table_discs[r["volume_id"]].append(r["clip_id"])
    for vol in sorted(set(disc_clips) | set(table_discs)):
        if disc_clips.get(vol) != table_discs.get(vol):
            note("discs", vol, "its clips differ from its disc.add entry")
    return found
