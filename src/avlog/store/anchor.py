"""The audit chain's head, written down where the store's owner cannot rewrite it quietly, and checked later.

A hash chain shows any change inside the log, but not entries cut off its end, nor a tail rewritten with
fresh hashes by someone who controls the catalog file. An *anchor* is the head (sequence number, hash,
time, store identity) recorded outside the store: a line appended to a file elsewhere (best made
append-only with ``chattr +a``, so not even its owner can rewrite it), the system journal through
``logger``, each disc's ``bag-info.txt`` and ``catalog.json``. Checking an anchor proves that the log still
holds that entry with that hash and has only grown since: the chain from the first entry verifies, and the
anchored entry is in it unchanged.

An anchor line is one JSON object::

    {"avlog_anchor": 1, "store": "<store id>", "seq": 812, "hash": "<64 hex>", "at": "2026-12-02T02:45:00+08:00"}
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from avlog.errors import AvlogError, UsageError
from avlog.i18n import _
from avlog.store.audit import head

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
FORMAT = 1
#: An anchor file is read at most this far: it grows by one short line a night.
MAX_ANCHOR_FILE = 64 << 20


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str | None = None
    store: str | None = None  # the store identity; None when given by hand (--expect)
    source: str = ""  # where it was read: a file and line, a disc, the command line

    def to_json(self) -> dict[str, Any]:
        return {"avlog_anchor": FORMAT, "store": self.store, "seq": self.seq, "hash": self.hash, "at": self.at}

    def line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=True, separators=(",", ":"))


def store_id(db: Database) -> str:
    """The store's identity: the start of its first audit entry's hash (``store.init``), in capitals.

    Two stores number their discs alike; this tells their discs and anchors apart."""
    row = db.execute("SELECT hash FROM audit ORDER BY seq LIMIT 1").fetchone()
    return str(row[0])[:32].upper() if row else "0" * 32


def current(db: Database, at: str) -> Anchor:
    seq, digest = head(db)
    return Anchor(seq, digest, at, store_id(db))


def parse_expect(text: str) -> Anchor:
    """``SEQ:HASH`` as written down by hand."""
    seq, sep, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not sep or not seq.strip().isdigit() or not _HEX64.match(digest) or not 0 < int(seq) < 1 << 62:
        raise UsageError(
            _("--expect takes SEQ:HASH, an entry number and its 64-digit hash, not {text}").format(text=text)
        )
    return Anchor(int(seq), digest, source="--expect")


def append_to(path: Path, anchor: Anchor, store_root: Path) -> None:
    """Append the anchor's line to ``path`` and flush it to the disk. A file inside the store is refused:
    an anchor kept with what it guards proves nothing."""
    target = path.expanduser().absolute()
    if target.resolve().is_relative_to(store_root.resolve()):
        raise UsageError(_("an anchor must be kept outside the store, not at {path}").format(path=target))
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, (anchor.line() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AvlogError(
            _("cannot append the anchor to {path}: {reason}").format(path=target, reason=exc.strerror or exc)
        ) from exc


def to_syslog(anchor: Anchor) -> None:
    """Send the anchor to the system log (the journal keeps it under root's ownership)."""
    logger = shutil.which("logger")
    if logger is None:
        raise AvlogError(_("cannot anchor to the system log: the logger command is not installed"))
    done = subprocess.run(
        # --socket-errors=on: without it logger reports success when nothing listens on /dev/log.
        [
            logger,
            "--socket-errors=on",
            "--tag",
            "avlog",
            "--priority",
            "auth.notice",
            "--",
            f"avlog audit anchor {anchor.line()}",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise AvlogError(
            _("cannot anchor to the system log: {reason}").format(
                reason=" ".join((done.stderr or done.stdout).split()) or done.returncode
            )
        )


def from_json(data: Any, source: str) -> Anchor | None:
    """An anchor from its JSON object (a line of a file, a disc's catalog.json); None if it is not one."""
    if not isinstance(data, dict):
        return None
    seq, digest = data.get("seq"), data.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 1 << 62 or not isinstance(digest, str):
        return None
    if not _HEX64.match(digest):
        return None
    store = data.get("store")
    return Anchor(
        seq,
        digest,
        data.get("at") if isinstance(data.get("at"), str) else None,
        store if isinstance(store, str) else None,
        source,
    )


def read_file(path: Path) -> tuple[list[Anchor], list[str]]:
    """Every anchor in an anchor file, and the lines that are not anchors (named by number)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ANCHOR_FILE + 1)
    except OSError as exc:
        raise AvlogError(_("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)) from exc
    if len(data) > MAX_ANCHOR_FILE:
        raise AvlogError(_("{path} is larger than an anchor file can be").format(path=path))
    anchors: list[Anchor] = []
    bad: list[str] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            found = from_json(json.loads(raw), f"{path}:{number}")
        except (ValueError, RecursionError):
            found = None
        if found is None:
            bad.append(f"{path}:{number}")
        else:
            anchors.append(found)
    return anchors, bad


def from_disc_tags(tags: dict[str, bytes], source: str) -> Anchor | None:
    """The head a disc carries: ``audit_head`` in its catalog.json (with the store's identity)."""
    text = tags.get("data/catalog.json")
    if text is None:
        return None
    try:
        doc = json.loads(text)
        found = doc.get("disc", {}).get("audit_head")
    except (ValueError, AttributeError, RecursionError):
        return None
    return from_json(found, source)


def problem(db: Database, anchor: Anchor, own_store: str) -> str | None:
    """Why the log no longer holds ``anchor`` (None: it does). The chain itself is checked by the caller."""
    if anchor.store is not None and anchor.store != own_store:
        return _("it belongs to another store ({store})").format(store=anchor.store)
    row = db.execute("SELECT hash FROM audit WHERE seq = ?", [anchor.seq]).fetchone()
    if row is None:
        last, _digest = head(db)
        return _("the log ends at entry {last}: entries up to {seq} were cut off").format(last=last, seq=anchor.seq)
    if row[0] != anchor.hash:
        return _("entry {seq} has another hash now: the log was rewritten from there on").format(seq=anchor.seq)
    return None
