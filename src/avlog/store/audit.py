"""The append-only, hash-chained audit log.

Entry ``n`` stores the hash of entry ``n-1``; its own hash is the SHA-256 of
the UTF-8 bytes of the compact JSON array

    [seq, at, actor, action, subject, details, prev_hash]

or, for an entry that records the operating-system account that wrote it
(``login``, every entry since catalog step 0005),

    [seq, at, actor, action, subject, details, prev_hash, login]

where ``details`` is the stored JSON text itself (keys sorted, no spaces,
non-ASCII kept). The first entry's ``prev_hash`` is 64 zeros. Anyone can
re-check the chain with a few lines of any language; ``avlog audit verify``
does it and names the first entry that does not fit.

``actor`` is the person acting (``$AVLOG_USER`` where the process may take it,
else the login); ``login`` is the account the process ran as, which a person
cannot choose. The log is also the catalog's journal: see :mod:`avlog.store.journal`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlite_utils import Database

from avlog.i18n import _

T = TypeVar("T")

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details: str,
    prev_hash: str,
    login: str | None = None,
) -> str:
    fields: list[Any] = [seq, at, actor, action, subject, details, prev_hash]
    if login is not None:
        fields.append(login)
    material = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    # surrogateescape: a column read with raw_text() hashes as the bytes it holds
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def append(
    db: Database,
    *,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any],
    login: str | None = None,
) -> int:
    """Add one entry inside the caller's open transaction; return its sequence number."""
    if not db.conn.in_transaction:
        raise RuntimeError("audit entries are written inside the change's own transaction")
    head = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    details_text = canonical_json(details)
    digest = entry_hash(seq, at, actor, action, subject, details_text, prev, login)
    if login is None:
        db.execute(
            "INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, at, actor, action, subject, details_text, prev, digest],
        )
    else:
        db.execute(
            "INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash, login) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, at, actor, action, subject, details_text, prev, digest, login],
        )
    return seq


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head: str
    first_break: ChainBreak | None


def _columns(db: Database) -> str:
    """The columns an entry is read with: ``login`` exists from catalog step 0005 on."""
    names = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
    login = "login" if "login" in names else "NULL AS login"
    return f"seq, at, actor, action, subject, details, prev_hash, hash, {login}"


def iter_entries(db: Database, since: int | None = None) -> Iterator[dict[str, Any]]:
    """Entries in sequence order: every row of the table, or those after ``since``."""
    where, params = ("", []) if since is None else ("WHERE seq > ?", [since])
    cursor = db.execute(f"SELECT {_columns(db)} FROM audit {where} ORDER BY seq", params)
    cols = [c[0] for c in cursor.description]
    for row in cursor:
        yield dict(zip(cols, row, strict=True))


def head(db: Database) -> tuple[int, str]:
    """The last entry's sequence number and hash; ``(0, GENESIS)`` for an empty log."""
    row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


@contextmanager
def raw_text(db: Database) -> Iterator[None]:
    """Read text columns as they are stored, bytes that are not UTF-8 kept as surrogates (so a tampered
    column is checked and reported, never an error of the reading); the connection's own reading after."""
    before = db.conn.text_factory
    db.conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
    try:
        yield
    finally:
        db.conn.text_factory = before


def verify_chain(db: Database) -> ChainReport:
    """Walk the whole chain; report the first entry whose link or hash is wrong."""
    return tolerant(db, lambda: _verify_chain(db))


def tolerant(db: Database, read: Callable[[], T]) -> T:
    """``read()``, and if a text column holds bytes that are not UTF-8 (which SQLite hands over only when
    someone wrote them behind avlog's back), ``read()`` again under :func:`raw_text`: the fast reading for a
    sound catalog, a finding rather than an error for a tampered one."""
    try:
        return read()
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    with raw_text(db):
        return read()


def _verify_chain(db: Database) -> ChainReport:
    prev = GENESIS
    expected_seq = 1
    count = 0
    texts = ("at", "actor", "action", "subject", "details", "prev_hash", "hash")
    for row in iter_entries(db):  # every row, a planted seq 0 or below included
        count += 1
        if not isinstance(row["seq"], int) or row["seq"] < expected_seq:
            return ChainReport(count, prev, ChainBreak(row["seq"], _("it is numbered before the first entry")))
        if row["seq"] != expected_seq:
            return ChainReport(count, prev, ChainBreak(row["seq"], _("entry {n} is missing").format(n=expected_seq)))
        if not all(isinstance(row[k], str) for k in texts) or not isinstance(row["login"], str | None):
            return ChainReport(count, prev, ChainBreak(row["seq"], _("its fields are not text")))
        if row["prev_hash"] != prev:
            return ChainReport(count, prev, ChainBreak(row["seq"], _("it does not link to the entry before it")))
        digest = entry_hash(
            row["seq"],
            row["at"],
            row["actor"],
            row["action"],
            row["subject"],
            row["details"],
            row["prev_hash"],
            row["login"],
        )
        if digest != row["hash"]:
            return ChainReport(count, prev, ChainBreak(row["seq"], _("its content does not match its hash")))
        prev = row["hash"]
        expected_seq += 1
    return ChainReport(count, prev, None)
