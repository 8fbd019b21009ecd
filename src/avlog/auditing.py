"""Checking the audit log whole (its chain, the tables it journals, the heads anchored outside the store)
and anchoring its head: what ``avlog audit verify`` and ``avlog audit anchor`` do, as a library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from avlog.context import Context
from avlog.errors import IntegrityError
from avlog.i18n import _
from avlog.store import anchor, journal
from avlog.store.anchor import Anchor
from avlog.store.audit import ChainReport, verify_chain

#: Differences collected at most (``audit verify --json`` lists them; the first one is the exit line).
DIFFERENCES_LIMIT = 1000


@dataclass
class AuditCheck:
    chain: ChainReport
    differences: list[journal.Difference] = field(default_factory=list)
    anchors: list[tuple[Anchor, str | None]] = field(default_factory=list)  # each with why it fails, or None
    unreadable: list[str] = field(default_factory=list)  # anchor lines or discs that hold no anchor
    empty_files: list[str] = field(default_factory=list)  # anchor files with no line yet (a first night)

    @property
    def ok(self) -> bool:
        return self.failure() is None

    def failure(self) -> IntegrityError | None:
        """The one line a failed check ends with (exit 3), or None when everything holds."""
        brk = self.chain.first_break
        if brk is not None:
            return IntegrityError(_("audit entry {seq} is broken: {reason}").format(seq=brk.seq, reason=brk.reason))
        if len(self.differences) == 1:
            return IntegrityError(
                _("the catalog differs from its audit log: {first}").format(first=self.differences[0].text())
            )
        if self.differences:
            return IntegrityError(
                _("the catalog differs from its audit log in {n} places, the first: {first}").format(
                    n=len(self.differences), first=self.differences[0].text()
                )
            )
        problems = [p for _a, p in self.anchors if p]
        if problems:
            return IntegrityError(
                _("the audit log no longer holds an anchored head: {problem}").format(problem=problems[0])
            )
        if self.unreadable:
            return IntegrityError(_("{source} holds no anchor").format(source=self.unreadable[0]))
        return None


def verify_log(
    ctx: Context,
    *,
    anchor_files: Sequence[Path] = (),
    discs: Sequence[Path] = (),
    expected: Sequence[Anchor] = (),
) -> AuditCheck:
    """Walk the chain; if it is whole, replay it and compare the tables; check every anchor given."""
    from avlog.iso.verify import read_tags

    db = ctx.catalog.db
    with ctx.catalog.snapshot():  # the chain, the log and the tables read at one moment
        check = AuditCheck(verify_chain(db))
        if check.chain.first_break is None:  # a broken chain cannot be replayed: its first break is the finding
            check.differences = journal.check(db, limit=DIFFERENCES_LIMIT)
    found = list(expected)
    for path in anchor_files:
        anchors, bad = anchor.read_file(path)
        if not anchors and not bad:
            check.empty_files.append(str(path))
        found += anchors
        check.unreadable += bad
    for disc in discs:
        carried = anchor.from_disc_tags(read_tags(disc, ("data/catalog.json",)), str(disc))
        if carried is None:
            check.unreadable.append(str(disc))
        else:
            found.append(carried)
    own = anchor.store_id(db)
    check.anchors = [(a, anchor.problem(db, a, own)) for a in found]
    return check


def anchor_head(ctx: Context, *, to: Sequence[Path] = (), syslog: bool = False) -> tuple[Anchor, list[str]]:
    """Write the chain's head to each file of ``to`` and/or the system log; record it (``audit.anchor``).

    A broken chain is never anchored: that would certify it.
    """
    report = verify_chain(ctx.catalog.db)
    if report.first_break is not None:
        raise IntegrityError(
            _("no anchor written: audit entry {seq} is broken: {reason}").format(
                seq=report.first_break.seq, reason=report.first_break.reason
            )
        )
    head = anchor.current(ctx.catalog.db, ctx.clock().astimezone(ctx.settings.tz).isoformat(timespec="seconds"))
    places = []
    for path in to:
        anchor.append_to(path, head, ctx.root)
        places.append(str(path.expanduser().absolute()))
    if syslog:
        anchor.to_syslog(head)
        places.append("syslog")
    if not ctx.catalog.read_only:
        with ctx.catalog.change():
            ctx.catalog.audit("audit.anchor", "store", {"seq": head.seq, "hash": head.hash, "to": places})
    return head, places
