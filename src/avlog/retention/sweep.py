"""The retention sweep: decide every clip with :func:`policy.decide`, then mark, rescue and purge.

A run loads the facts of all clips with a handful of queries (no query per clip), decides each one,
and unless it is a dry run applies the decisions:

- a clip no rule keeps any more becomes due (``due_since`` = now, audit ``clip.due``);
- a due clip that a rule keeps again (a flag, a case, a hold) is rescued (``due_since`` cleared,
  audit ``clip.rescued``), so its next release starts a fresh grace period;
- a clip whose grace period is over is purged: its object is re-hashed first (a missing or damaged
  object is a problem to report, never silently tombstoned); then, in one transaction, its facts are
  loaded and decided again and only if it is still :class:`Purge` is the tombstone written
  (``state = 'purged'``, ``purged_at``, ``purge_reason``; hashes and size stay in the row forever)
  with its audit entry ``clip.purge``. After the commit the object file is removed when no stored
  clip still uses that content (content shared by two clips stays until both may go).

A crash between the commit and the removal leaves a purged clip whose object is still there; every
run removes the objects of purged clips that no stored clip needs, so a re-run converges. The decisions
and the tombstones are one transaction that first checks the catalog against its log, and the files are
removed in another that checks it again (:mod:`avlog.store.journal`): no row changed behind avlog's back
decides what is purged or removed.
Two sweeps never overlap: a run that changes the store holds ``STORE/tmp/retention.lock``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from avlog.context import Context, store_lock
from avlog.errors import AvlogError, UsageError
from avlog.i18n import _
from avlog.iso.registry import COUNTED_DISC
from avlog.retention.policy import (
    PURGED,
    CaseFact,
    ClipFacts,
    Decision,
    Due,
    FlagFact,
    HoldFact,
    Keep,
    Policy,
    Purge,
    decide,
    retention_end,
)
from avlog.store.journal import require_agreement
from avlog.timefmt import from_db, to_db

Row = dict[str, Any]

LOCK_NAME = "retention.lock"

#: Ingest findings that say the recorder's clock was wrong for a clip: its minimum counts from ingest.
WRONG_CLOCK_FINDINGS = ("implausibly_old", "future")


class SweepRunning(AvlogError):
    """Another retention sweep holds the lock (exit 1)."""


@dataclass
class Problem:
    clip_id: int
    blake3: str
    problem: str  # missing | mismatch


@dataclass
class SweepReport:
    now: datetime
    dry_run: bool
    kept: dict[str, int] = field(default_factory=dict)
    already_purged: int = 0
    due: list[tuple[Row, Due]] = field(default_factory=list)
    newly_due: list[int] = field(default_factory=list)
    rescued: list[int] = field(default_factory=list)
    purged: list[Row] = field(default_factory=list)
    freed_bytes: int = 0
    removed_objects: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "kept": dict(self.kept),
            "due": len(self.due),
            "newly_due": len(self.newly_due),
            "rescued": len(self.rescued),
            "purged": len(self.purged),
            "freed_bytes": self.freed_bytes,
            "removed_objects": len(self.removed_objects),
            "problems": len(self.problems),
        }


def policy_of(ctx: Context) -> Policy:
    r = ctx.settings.retention
    return Policy(
        min_days=r.min_days,
        grace_days=r.grace_days,
        disc_copies=r.disc_copies,
        kind_min_days=dict(r.min_days_by_kind),
    )


# -- facts ------------------------------------------------------------------------------------------


def _covers(hold: Row, clip: Row, case_ids: set[int]) -> bool:
    """Whether a standing hold covers a clip: it names the clip, one of its cases, or its device and a window
    its recording meets (catalog times compare as text). The one place this rule lives."""
    if hold["clip_id"] is not None:
        return bool(hold["clip_id"] == clip["id"])
    if hold["case_id"] is not None:
        return hold["case_id"] in case_ids
    if hold["device_serial"] != clip["device_serial"]:
        return False
    late = clip["recorded_end"] or clip["recorded_start"] or clip["ingested_at"]
    early = clip["recorded_start"] or clip["recorded_end"] or clip["ingested_at"]
    return (hold["since"] is None or late >= hold["since"]) and (hold["until"] is None or early <= hold["until"])


class _HoldIndex:
    """The standing holds by what they name (clip, case, device), so a clip meets only the holds that may
    cover it; :func:`_covers` decides each of those, so the rule stays the one above."""

    def __init__(self, holds: list[Row]):
        self.by_clip: dict[int, list[Row]] = {}
        self.by_case: dict[int, list[Row]] = {}
        self.by_device: dict[str, list[Row]] = {}
        for h in holds:
            if h["clip_id"] is not None:
                self.by_clip.setdefault(h["clip_id"], []).append(h)
            elif h["case_id"] is not None:
                self.by_case.setdefault(h["case_id"], []).append(h)
            else:
                self.by_device.setdefault(h["device_serial"], []).append(h)

    def covering(self, clip: Row, case_ids: set[int]) -> tuple[HoldFact, ...]:
        found = [*self.by_clip.get(clip["id"], ()), *self.by_device.get(clip["device_serial"], ())]
        for case_id in case_ids:
            found.extend(self.by_case.get(case_id, ()))
        if not found:
            return ()
        ids = sorted({h["id"] for h in found if _covers(h, clip, case_ids)})  # hold id order, as before
        return tuple(HoldFact(i, released=False) for i in ids)


_DB_TIME_LENGTH = len("2026-01-01T00:00:00.000000Z")


def _time(text: str | None) -> datetime | None:
    """:func:`avlog.timefmt.from_db`, fast: a catalog time has one fixed form, which ``fromisoformat`` reads
    about twenty times faster than ``strptime``; anything else goes through ``from_db`` (and its errors)."""
    if text is None:
        return None
    if len(text) == _DB_TIME_LENGTH and text[-1] == "Z" and text[10] == "T":
        return datetime.fromisoformat(text)
    return from_db(text)


_Marks = tuple[
    dict[int, tuple[FlagFact, ...]],
    dict[int, tuple[CaseFact, ...]],
    dict[int, set[int]],
    _HoldIndex,
    set[int],
    dict[int, int],
]


def load_facts(ctx: Context, clip_id: int | None = None) -> list[tuple[Row, ClipFacts]]:
    """Every clip (or one) with the facts the rules need: six queries, whatever the number of clips."""
    if clip_id is not None:
        return load_facts_for(ctx, ctx.catalog.query("SELECT * FROM clips WHERE id = ?", [clip_id]))
    clips = ctx.catalog.query("SELECT * FROM clips ORDER BY id")
    return _facts_of(clips, load_facts_marks(ctx))


def _facts_of(clips: list[Row], marks: _Marks) -> list[tuple[Row, ClipFacts]]:
    """Whole ``clips`` rows with their facts, from marks loaded in bulk."""
    flags, cases, case_ids, hold_index, wrong_clock, discs = marks
    no_cases: set[int] = set()
    result = []
    for clip in clips:
        cid = clip["id"]
        ingested = _time(clip["ingested_at"])
        assert ingested is not None
        facts = ClipFacts(
            clip_id=cid,
            recorded_end=None if cid in wrong_clock else _time(clip["recorded_end"]),
            ingested_at=ingested,
            kind=clip["media_kind"],
            device_serial=clip["device_serial"],
            state=clip["state"],
            due_since=_time(clip["due_since"]),
            flags=flags.get(cid, ()),
            cases=cases.get(cid, ()),
            holds=hold_index.covering(clip, case_ids.get(cid, no_cases)),
            verified_discs=discs.get(cid, 0),
        )
        result.append((clip, facts))
    return result


#: The columns the whole-store decision reads, in this order. A due clip in a :class:`SweepReport` carries
#: these (as a dict), not its whole row: a first sweep over years of footage may find most clips due.
DECIDE_COLUMNS: tuple[str, ...] = (
    "id",
    "blake3",
    "size",
    "device_serial",
    "media_kind",
    "state",
    "recorded_start",
    "recorded_end",
    "ingested_at",
    "due_since",
)


def _decide_rows(ctx: Context) -> Iterator[tuple[tuple[Any, ...], ClipFacts]]:
    """Every clip as a :data:`DECIDE_COLUMNS` tuple with its facts, the same facts :func:`load_facts` gives.

    For the whole store: the marks (flags, cases, holds, findings, discs) load in five queries as in
    :func:`load_facts`, the clips stream from one query as tuples, and the facts are built positionally.
    """
    bundle = load_facts_marks(ctx)
    flags, cases, case_ids, hold_index, wrong_clock, discs = bundle
    by_clip, by_case, by_device = hold_index.by_clip, hold_index.by_case, hold_index.by_device
    no_cases: set[int] = set()
    last_ingested: str | None = None
    ingested_at: datetime | None = None
    cols = ", ".join(DECIDE_COLUMNS)
    for row in ctx.catalog.tuples(f"SELECT {cols} FROM clips ORDER BY id"):
        cid, _b3, _size, serial, kind, state, start, end, ingested, due = row
        ids = case_ids.get(cid, no_cases)
        covering: tuple[HoldFact, ...] = ()
        if cid in by_clip or serial in by_device or (ids and not ids.isdisjoint(by_case)):
            clip = {"id": cid, "device_serial": serial, "recorded_start": start, "recorded_end": end}
            covering = hold_index.covering({**clip, "ingested_at": ingested}, ids)
        if ingested != last_ingested:  # the clips of one ingest share its time
            last_ingested, ingested_at = ingested, _time(ingested)
        assert ingested_at is not None
        yield (
            row,
            ClipFacts(
                cid,
                None if end is None or cid in wrong_clock else _time(end),
                ingested_at,
                kind,
                serial,
                state,
                None if due is None else _time(due),
                flags.get(cid, ()),
                cases.get(cid, ()),
                covering,
                discs.get(cid, 0),
            ),
        )


def load_facts_marks(ctx: Context, clip_ids: list[int] | None = None) -> _Marks:
    """The marks of every clip (or of ``clip_ids``): flags, cases (and their ids), standing holds, the
    clips whose recorder's clock was wrong, and the number of verified discs holding each clip (Art. 20:
    burned, and read back from the physical disc without a difference). Five queries; the ids go to
    SQLite as one JSON array."""
    import json

    q = ctx.catalog.query
    only, only_l, ids = "", "", []
    if clip_ids is not None:
        only, only_l = (
            " AND clip_id IN (SELECT value FROM json_each(?))",
            " AND l.clip_id IN (SELECT value FROM json_each(?))",
        )
        ids = [json.dumps(clip_ids)]
    flags: dict[int, list[FlagFact]] = {}
    for r in q(f"SELECT clip_id, reason FROM flags WHERE unflagged_at IS NULL{only} ORDER BY id", ids):
        flags.setdefault(r["clip_id"], []).append(FlagFact(r["reason"]))
    cases: dict[int, list[CaseFact]] = {}
    case_ids: dict[int, set[int]] = {}
    for r in q(
        "SELECT l.clip_id, c.id, c.case_no, c.closed_on, c.retain_until FROM case_clips l "
        f"JOIN cases c ON c.id = l.case_id WHERE l.unlinked_at IS NULL{only_l} ORDER BY c.case_no",
        ids,
    ):
        cases.setdefault(r["clip_id"], []).append(
            CaseFact(
                r["case_no"],
                date.fromisoformat(r["closed_on"]) if r["closed_on"] else None,
                date.fromisoformat(r["retain_until"]) if r["retain_until"] else None,
            )
        )
        case_ids.setdefault(r["clip_id"], set()).add(r["id"])
    holds = q("SELECT * FROM holds WHERE released_at IS NULL ORDER BY id")
    kinds = ", ".join("?" for _k in WRONG_CLOCK_FINDINGS)
    wrong_clock = {
        r["clip_id"]
        for r in q(
            f"SELECT DISTINCT clip_id FROM findings WHERE clip_id IS NOT NULL AND kind IN ({kinds}){only}",
            [*WRONG_CLOCK_FINDINGS, *ids],
        )
    }
    discs = {
        r["clip_id"]: r["n"]
        for r in q(
            "SELECT l.clip_id, COUNT(DISTINCT l.disc_id) AS n FROM disc_clips l JOIN discs d ON d.id = l.disc_id "
            f"WHERE {COUNTED_DISC}{only_l} GROUP BY l.clip_id",
            ids,
        )
    }
    return (
        {k: tuple(v) for k, v in flags.items()},
        {k: tuple(v) for k, v in cases.items()},
        case_ids,
        _HoldIndex(holds),
        wrong_clock,
        discs,
    )


# -- the lock ---------------------------------------------------------------------------------------


def sweep_lock(ctx: Context) -> AbstractContextManager[None]:
    """Hold ``STORE/tmp/retention.lock`` (non-blocking): a second sweep fails at once, saying why."""
    return store_lock(
        ctx,
        LOCK_NAME,
        lambda path: SweepRunning(
            _("a retention sweep is running already (it holds {path}); try again when it has finished").format(
                path=path
            )
        ),
    )


# -- the sweep --------------------------------------------------------------------------------------


def _purge_reason(facts: ClipFacts, policy: Policy, ctx: Context) -> str:
    end = retention_end(facts, policy, ctx.settings.tz)
    since = facts.due_since
    return (
        f"no rule keeps it: retention ended {end.isoformat() if end else '-'}, "
        f"due since {since.isoformat() if since else '-'}, grace {policy.grace_days} days"
    )


def _object_unneeded(ctx: Context, blake3: str) -> bool:
    return ctx.catalog.one("SELECT 1 FROM clips WHERE blake3 = ? AND state = 'stored' LIMIT 1", [blake3]) is None


def _remove_unneeded(ctx: Context, report: SweepReport) -> None:
    """Remove the object files that only purged clips name: those purged now, and those a sweep that stopped
    after its commit left behind.

    One transaction holds the catalog's write lock while the catalog is checked against its log and each file
    is removed, so no clip of that content can appear, and no row changed behind avlog's back (a clip set to
    ``purged`` in SQLite) can have its recording deleted. The transaction writes nothing: the tombstones were
    committed before, so a crash here leaves only files that the next sweep removes.
    """
    rows = ctx.catalog.query(
        "SELECT DISTINCT p.blake3, p.size FROM clips p WHERE p.state = 'purged' AND NOT EXISTS "
        "(SELECT 1 FROM clips s WHERE s.blake3 = p.blake3 AND s.state = 'stored') ORDER BY p.blake3"
    )
    present = [r for r in rows if ctx.objects.exists(r["blake3"])]
    if not present:
        return
    with ctx.catalog.change():
        require_agreement(
            ctx.catalog.db,
            _(
                "the retention sweep removed no recording: the catalog differs from its audit log, first at "
                "{difference}; see every difference with: avlog audit verify"
            ),
        )
        for r in present:
            if not _object_unneeded(ctx, r["blake3"]) or not ctx.objects.exists(r["blake3"]):
                continue
            ctx.objects.remove(r["blake3"])
            report.removed_objects.append(r["blake3"])
            report.freed_bytes += r["size"]


def _tombstone(ctx: Context, clip: Row, facts: ClipFacts, policy: Policy, at: str, report: SweepReport) -> None:
    """Write a purged clip's tombstone and its ``clip.purge`` entry, inside the sweep's transaction."""
    reason = _purge_reason(facts, policy, ctx)
    ctx.catalog.update(
        "clips", clip["id"], {"state": PURGED, "purged_at": at, "purge_reason": reason}, where="state = 'stored'"
    )
    ctx.catalog.audit(
        "clip.purge",
        f"clip:{clip['id']}",
        {
            "blake3": clip["blake3"],
            "sha256": clip["sha256"],
            "size": clip["size"],
            "due_since": clip["due_since"],
            "reason": reason,
        },
        at=at,
    )
    report.purged.append({**clip, "state": PURGED, "purged_at": at, "purge_reason": reason})


def _count(report: SweepReport, decision: Decision, clip: Row) -> None:
    if isinstance(decision, Keep):
        if decision.reason == "purged_already":
            report.already_purged += 1
        else:
            report.kept[decision.reason] = report.kept.get(decision.reason, 0) + 1
    elif isinstance(decision, Due):
        report.due.append((clip, decision))


def sweep(ctx: Context, *, dry_run: bool, as_of: datetime | None = None) -> SweepReport:
    """Decide every clip and, unless ``dry_run``, mark, rescue and purge as the rules say.

    ``as_of`` (dry runs only) previews a later sweep, assuming sweeps run every night until then: a clip
    released before ``as_of`` counts as due from its release, or from now when it is released already
    (no sweep before now marked it, so its grace period cannot have started earlier).
    """
    if as_of is not None and not dry_run:
        raise UsageError(_("--as-of previews a later sweep and goes only with --dry-run"))
    if as_of is not None and as_of.utcoffset() is None:
        raise ValueError("as_of must be an aware datetime")
    if dry_run:
        return _decide_all(ctx, (as_of or ctx.clock()).astimezone(UTC), dry_run=True, preview=as_of is not None)
    with sweep_lock(ctx):
        return _sweep_now(ctx, ctx.clock().astimezone(UTC))


def _decide_all(ctx: Context, now: datetime, *, dry_run: bool, preview: bool) -> SweepReport:
    """A dry run: decide every clip and say what a sweep at ``now`` would do, changing nothing."""
    policy = policy_of(ctx)
    first_sweep = ctx.clock().astimezone(UTC)  # the earliest a real sweep can still mark a clip due
    report = SweepReport(now=now, dry_run=dry_run)
    purge_ids: list[int] = []
    to_mark: list[Row] = []
    to_rescue: list[Row] = []
    still_needed: set[str] = set()  # contents of stored clips that stay
    with _collector_paused(), ctx.catalog.snapshot():
        _decide_each(ctx, report, policy, now, first_sweep, preview, purge_ids, to_mark, to_rescue, still_needed)
        to_purge = _rows(ctx, purge_ids)
    report.newly_due = [c["id"] for c in to_mark]
    report.rescued = [c["id"] for c in to_rescue]
    _preview_purges(ctx, to_purge, still_needed, report)
    return report


def _sweep_now(ctx: Context, now: datetime) -> SweepReport:
    """A real sweep. Its decisions and writes are one transaction, which first checks the catalog against its
    log: no row can change between the check and what the sweep does with it (a flag deleted meanwhile, or
    while the sweep waited for the catalog, cannot let its clip be purged)."""
    policy = policy_of(ctx)
    report = SweepReport(now=now, dry_run=False)
    # A first look, only to re-hash the objects about to be purged before the write lock is taken: that reads
    # gigabytes, and an object never changes under its name. What is purged is decided again below.
    look, ids = SweepReport(now=now, dry_run=True), list[int]()
    with _collector_paused(), ctx.catalog.snapshot():
        _decide_each(ctx, look, policy, now, now, False, ids, [], [], set())
        candidates = _rows(ctx, ids)
    checked: dict[str, str | None] = {}
    for clip in candidates:
        if clip["blake3"] not in checked:
            checked[clip["blake3"]] = ctx.objects.check(clip["blake3"], clip["size"], clip["sha256"])
    at = to_db(now)
    purge_ids: list[int] = []
    to_mark: list[Row] = []
    to_rescue: list[Row] = []
    with ctx.catalog.change():
        require_agreement(
            ctx.catalog.db,
            _(
                "the retention sweep purged nothing: the catalog differs from its audit log, first at {difference}; "
                "see every difference with: avlog audit verify"
            ),
        )
        with _collector_paused():
            _decide_each(ctx, report, policy, now, now, False, purge_ids, to_mark, to_rescue, set())
        for clip in to_mark:
            ctx.catalog.update("clips", clip["id"], {"due_since": at}, where="due_since IS NULL")
            ctx.catalog.audit("clip.due", f"clip:{clip['id']}", {"due_since": at}, at=at)
        for clip in to_rescue:
            ctx.catalog.update("clips", clip["id"], {"due_since": None})
            ctx.catalog.audit("clip.rescued", f"clip:{clip['id']}", {"was_due_since": clip["due_since"]}, at=at)
        for row, facts in load_facts_for(ctx, _rows(ctx, purge_ids)):
            key = row["blake3"]
            if key not in checked:  # released since the first look: checked now, under the lock
                checked[key] = ctx.objects.check(key, row["size"], row["sha256"])
            problem = checked[key]
            if problem is not None:
                report.problems.append(Problem(row["id"], key, problem))
                continue
            _tombstone(ctx, row, facts, policy, at, report)
    report.newly_due = [c["id"] for c in to_mark]
    report.rescued = [c["id"] for c in to_rescue]
    _remove_unneeded(ctx, report)
    with ctx.catalog.change():
        ctx.catalog.audit("retention.sweep", "store", report.counts(), at=at)
    return report


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: deciding a million clips allocates millions of objects that
    form no cycles, and the collector's repeated passes over them cost about a quarter of the run."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decide_each(
    ctx: Context,
    report: SweepReport,
    policy: Policy,
    now: datetime,
    first_sweep: datetime,
    preview: bool,
    purge_ids: list[int],
    to_mark: list[Row],
    to_rescue: list[Row],
    still_needed: set[str],
) -> None:
    """Decide every clip; count the kept ones and collect the rest in the lists given."""
    tz = ctx.settings.tz
    kept = report.kept
    for row, facts in _decide_rows(ctx):
        if preview and facts.due_since is None and facts.state != PURGED:
            end = retention_end(facts, policy, tz)
            if end is not None and end <= now:
                facts = _with_due_since(facts, max(end, first_sweep))
        decision = decide(facts, policy, now, tz)
        if type(decision) is Purge:
            purge_ids.append(row[0])
            continue
        if facts.state == "stored":
            still_needed.add(row[1])
        if type(decision) is Keep:
            if decision.reason == "purged_already":
                report.already_purged += 1
                continue
            kept[decision.reason] = kept.get(decision.reason, 0) + 1
            if row[-1] is not None:
                to_rescue.append(dict(zip(DECIDE_COLUMNS, row, strict=True)))
        else:
            assert isinstance(decision, Due)
            clip = dict(zip(DECIDE_COLUMNS, row, strict=True))
            report.due.append((clip, decision))
            if row[-1] is None:
                to_mark.append(clip)


def _with_due_since(facts: ClipFacts, due_since: datetime) -> ClipFacts:
    """``dataclasses.replace(facts, due_since=...)``, without its per-call field inspection."""
    f = facts
    return ClipFacts(
        f.clip_id,
        f.recorded_end,
        f.ingested_at,
        f.kind,
        f.device_serial,
        f.state,
        due_since,
        f.flags,
        f.cases,
        f.holds,
        f.verified_discs,
    )


def _rows(ctx: Context, ids: list[int]) -> list[Row]:
    """The whole rows of the clips ``ids`` (in id order): one query, whatever their number."""
    if not ids:
        return []
    import json

    return ctx.catalog.query(
        "SELECT * FROM clips WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", [json.dumps(ids)]
    )


def _object_size(ctx: Context, base: str | None, blake3: str) -> int | None:
    """:meth:`ObjectStore.size` without building a ``Path`` per object (a dry run may look at a million);
    ``base`` None: the store's own method."""
    if base is None:
        return ctx.objects.size(blake3)
    try:
        return os.stat(os.path.join(base, blake3[:2], blake3)).st_size
    except FileNotFoundError:
        return None


def _preview_purges(ctx: Context, to_purge: list[Row], still_needed: set[str], report: SweepReport) -> None:
    """What a real sweep would purge and free; objects are only looked at (size), not re-hashed.

    ``still_needed``: the contents of the stored clips that are not purged.
    """
    freed: set[str] = set()
    base: str | None = str(ctx.objects.objects)
    if to_purge:  # the fast path only while it names the same file as ObjectStore.path
        key = to_purge[0]["blake3"]
        if os.path.join(str(base), key[:2], key) != str(ctx.objects.path(key)):
            base = None
    sizes: dict[str, int | None] = {}  # content shared by several clips is looked at once
    for clip in to_purge:
        key = clip["blake3"]
        if key not in sizes:
            sizes[key] = _object_size(ctx, base, key)
        size = sizes[key]
        if size is None or size != clip["size"]:
            report.problems.append(Problem(clip["id"], clip["blake3"], "missing" if size is None else "mismatch"))
            continue
        report.purged.append(clip)
        if clip["blake3"] not in still_needed and clip["blake3"] not in freed:
            freed.add(clip["blake3"])
            report.freed_bytes += clip["size"]


# -- facts for listings -----------------------------------------------------------------------------


def load_facts_for(ctx: Context, clips: list[Row]) -> list[tuple[Row, ClipFacts]]:
    """The facts of ``clips`` (full ``clips`` rows, as listings have them), in their order: five queries,
    whatever their number, so a listing decides each row without a query per row."""
    if not clips:
        return []
    return _facts_of(clips, load_facts_marks(ctx, [clip["id"] for clip in clips]))
