"""Flags (Art. 20), cases (Art. 19, 21) and legal holds: what keeps a clip beyond the ordinary minimum.

Every change is one transaction with its audit entry. Nothing here deletes:
an unflag, an unlink or a release is recorded on the row it ends, with who,
when and (where the rules ask for one) why.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from avlog.context import Context
from avlog.errors import AvlogError, NotFound, UsageError
from avlog.i18n import N_, _
from avlog.retention.policy import FLAG_REASONS
from avlog.timefmt import to_db

#: Art. 20 (1)-(4): the four grounds for long-term keeping, in the policy's order, described for people.
FLAG_TEXTS = {
    "dispute": N_("the party objects, complains or petitions"),
    "obstruction": N_("the party evades, refuses or obstructs, or abuses, insults or assaults officers"),
    "incident": N_("a mass incident or an emergency"),
    "other": N_("another case that needs long-term keeping"),
}

Row = dict[str, Any]


def _check_reason(reason: str) -> None:
    if reason not in FLAG_REASONS:
        raise UsageError(_("--reason must be one of {reasons}").format(reasons=", ".join(FLAG_REASONS)))


def _clips(ctx: Context, refs: list[str]) -> list[Row]:
    if not refs:
        raise UsageError(_("name at least one clip"))
    clips = [ctx.catalog.resolve_clip(ref) for ref in refs]
    for clip in clips:
        if clip["state"] == "purged":
            raise AvlogError(
                _("clip {id} was purged on {at}; only its tombstone remains").format(
                    id=clip["id"], at=clip["purged_at"]
                )
            )
    return list({c["id"]: c for c in clips}.values())


def active_flags(ctx: Context, clip_id: int) -> list[Row]:
    return ctx.catalog.query("SELECT * FROM flags WHERE clip_id = ? AND unflagged_at IS NULL ORDER BY id", [clip_id])


def flag(ctx: Context, refs: list[str], reason: str, note: str | None) -> list[Row]:
    """Flag clips for long-term keeping; a clip already flagged for this reason is left as it is."""
    _check_reason(reason)
    clips = _clips(ctx, refs)
    added = []
    with ctx.catalog.change():
        now = ctx.catalog.now()
        for clip in clips:
            if any(f["reason"] == reason for f in active_flags(ctx, clip["id"])):
                continue
            row = {"clip_id": clip["id"], "reason": reason, "note": note, "flagged_at": now, "flagged_by": ctx.actor}
            row["id"] = ctx.catalog.insert("flags", row)
            ctx.catalog.audit("clip.flag", f"clip:{clip['id']}", {"reason": reason, "note": note}, at=now)
            added.append(row)
    return added


def unflag(ctx: Context, refs: list[str], note: str, reason: str | None = None) -> list[Row]:
    """End clips' flags (of one reason, or all); the note saying why is required and audited."""
    if not note or not note.strip():
        raise UsageError(_("unflag needs --note saying why the clip no longer needs long-term keeping"))
    if reason is not None:
        _check_reason(reason)
    clips = _clips(ctx, refs)
    ended = []
    with ctx.catalog.change():
        now = ctx.catalog.now()
        for clip in clips:
            for f in active_flags(ctx, clip["id"]):
                if reason is not None and f["reason"] != reason:
                    continue
                ctx.catalog.update(
                    "flags", f["id"], {"unflagged_at": now, "unflagged_by": ctx.actor, "unflag_note": note}
                )
                ctx.catalog.audit("clip.unflag", f"clip:{clip['id']}", {"reason": f["reason"], "note": note}, at=now)
                ended.append(f)
    if not ended:
        raise AvlogError(_("none of these clips has an active flag to end"))
    return ended


# -- cases ------------------------------------------------------------------------------------------


def case(ctx: Context, case_no: str) -> Row:
    row = ctx.catalog.one("SELECT * FROM cases WHERE case_no = ?", [case_no])
    if row is None:
        raise NotFound(
            _("no case {case}; create it with: avlog case add {case} --retain-until DATE").format(case=case_no)
        )
    return row


def case_add(
    ctx: Context, case_no: str, *, title: str | None, retain_until: date | None, retain_years: int | None
) -> Row:
    """A case whose clips are kept while it is open, then until ``retain_until`` (or closing + years)."""
    case_no = case_no.strip()
    if not case_no:
        raise UsageError(_("the case number may not be empty"))
    if (retain_until is None) == (retain_years is None):
        raise UsageError(_("give the case's retention with exactly one of --retain-until DATE or --retain-years N"))
    if retain_years is not None and not 1 <= retain_years <= 100:
        raise UsageError(_("--retain-years must be between 1 and 100"))
    with ctx.catalog.change():
        if ctx.catalog.one("SELECT 1 FROM cases WHERE case_no = ?", [case_no]):
            raise AvlogError(_("case {case} exists already").format(case=case_no))
        now = ctx.catalog.now()
        row = {
            "case_no": case_no,
            "title": title,
            "created_at": now,
            "created_by": ctx.actor,
            "retain_until": retain_until.isoformat() if retain_until else None,
            "retain_years": retain_years,
        }
        ctx.catalog.insert("cases", row)
        ctx.catalog.audit(
            "case.add",
            f"case:{case_no}",
            {"title": title, "retain_until": row["retain_until"], "retain_years": retain_years},
            at=now,
        )
    return case(ctx, case_no)


def case_close(ctx: Context, case_no: str, on: date) -> Row:
    """Close a case: from now on its clips are kept until its retention end, no longer indefinitely."""
    with ctx.catalog.change():
        row = case(ctx, case_no)  # read inside the write transaction: two closings cannot both pass
        if row["closed_on"]:
            raise AvlogError(_("case {case} was closed on {on} already").format(case=case_no, on=row["closed_on"]))
        retain_until = row["retain_until"]
        if retain_until is None and row["retain_years"]:
            years = row["retain_years"]
            try:
                retain_until = on.replace(year=on.year + years).isoformat()
            except ValueError:  # 29 February in a year that has none
                retain_until = on.replace(year=on.year + years, day=28).isoformat()
        ctx.catalog.update("cases", row["id"], {"closed_on": on.isoformat(), "retain_until": retain_until})
        ctx.catalog.audit("case.close", f"case:{case_no}", {"closed_on": on.isoformat(), "retain_until": retain_until})
    return case(ctx, case_no)


def case_clip_links(ctx: Context, case_id: int) -> list[Row]:
    return ctx.catalog.query(
        "SELECT * FROM case_clips WHERE case_id = ? AND unlinked_at IS NULL ORDER BY clip_id", [case_id]
    )


def case_link(ctx: Context, case_no: str, refs: list[str]) -> list[int]:
    """Link clips to a case as its evidence (Art. 19); a clip linked already is left as it is."""
    row = case(ctx, case_no)
    clips = _clips(ctx, refs)
    linked = []
    with ctx.catalog.change():
        now = ctx.catalog.now()
        present = {link["clip_id"] for link in case_clip_links(ctx, row["id"])}
        for clip in clips:
            if clip["id"] in present:
                continue
            ctx.catalog.insert(
                "case_clips", {"case_id": row["id"], "clip_id": clip["id"], "linked_at": now, "linked_by": ctx.actor}
            )
            ctx.catalog.audit("case.link", f"clip:{clip['id']}", {"case": case_no}, at=now)
            linked.append(clip["id"])
    return linked


def case_unlink(ctx: Context, case_no: str, refs: list[str], note: str) -> list[int]:
    if not note or not note.strip():
        raise UsageError(_("unlink needs --note saying why the clip is no longer evidence in this case"))
    row = case(ctx, case_no)
    clips = _clips(ctx, refs)
    unlinked = []
    with ctx.catalog.change():
        now = ctx.catalog.now()
        links = {link["clip_id"]: link for link in case_clip_links(ctx, row["id"])}
        for clip in clips:
            link = links.get(clip["id"])
            if link is None:
                continue
            ctx.catalog.update("case_clips", link["id"], {"unlinked_at": now, "unlinked_by": ctx.actor})
            ctx.catalog.audit("case.unlink", f"clip:{clip['id']}", {"case": case_no, "note": note}, at=now)
            unlinked.append(clip["id"])
    if not unlinked:
        raise AvlogError(_("none of these clips is linked to case {case}").format(case=case_no))
    return unlinked


def clip_cases(ctx: Context, clip_id: int) -> list[Row]:
    return ctx.catalog.query(
        "SELECT c.* FROM cases c JOIN case_clips l ON l.case_id = c.id "
        "WHERE l.clip_id = ? AND l.unlinked_at IS NULL ORDER BY c.case_no",
        [clip_id],
    )


# -- holds ------------------------------------------------------------------------------------------


def hold_add(
    ctx: Context,
    *,
    reason: str,
    clip_ref: str | None = None,
    case_no: str | None = None,
    device_serial: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Row:
    """A legal hold (complaint, litigation, supervision): whatever it covers is never purged while it stands."""
    if not reason or not reason.strip():
        raise UsageError(_("a hold needs --reason"))
    targets = [x for x in (clip_ref, case_no, device_serial) if x is not None]
    if len(targets) != 1:
        raise UsageError(_("a hold covers exactly one of: a clip, --case CASE, or --device SERIAL"))
    if (since is not None or until is not None) and device_serial is None:
        raise UsageError(_("--since and --until go with --device"))
    if since is not None and until is not None and since > until:
        raise UsageError(_("--since must not be after --until"))
    row: Row = {"reason": reason, "placed_by": ctx.actor}
    if clip_ref is not None:
        row["clip_id"] = _clips(ctx, [clip_ref])[0]["id"]
        subject = f"clip:{row['clip_id']}"
    elif case_no is not None:
        row["case_id"] = case(ctx, case_no)["id"]
        subject = f"case:{case_no}"
    else:
        assert device_serial is not None
        if ctx.catalog.device(device_serial) is None and not ctx.catalog.one(
            "SELECT 1 FROM clips WHERE device_serial = ? LIMIT 1", [device_serial]
        ):
            raise NotFound(_("no device {serial} and no clips from it").format(serial=device_serial))
        row.update(
            device_serial=device_serial,
            since=to_db(since) if since else None,
            until=to_db(until) if until else None,
        )
        subject = f"device:{device_serial}"
    with ctx.catalog.change():
        row["placed_at"] = ctx.catalog.now()
        row["id"] = ctx.catalog.insert("holds", row)
        ctx.catalog.audit(
            "hold.add",
            subject,
            {"hold": row["id"], "reason": reason, "since": row.get("since"), "until": row.get("until")},
            at=row["placed_at"],
        )
    return row


def hold_release(ctx: Context, hold_id: int, note: str) -> Row:
    if not note or not note.strip():
        raise UsageError(_("releasing a hold needs --note saying why"))
    with ctx.catalog.change():
        row = ctx.catalog.one("SELECT * FROM holds WHERE id = ?", [hold_id])  # inside: no double release
        if row is None:
            raise NotFound(_("no hold {id}").format(id=hold_id))
        if row["released_at"]:
            raise AvlogError(_("hold {id} was released already").format(id=hold_id))
        now = ctx.catalog.now()
        ctx.catalog.update("holds", hold_id, {"released_at": now, "released_by": ctx.actor, "release_note": note})
        ctx.catalog.audit("hold.release", f"hold:{hold_id}", {"note": note}, at=now)
    return {**row, "released_at": now, "released_by": ctx.actor, "release_note": note}


def holds(ctx: Context, *, released_too: bool = False) -> list[Row]:
    """Holds that stand (``released_too``: every hold), each with its case number, in the order placed."""
    where = "" if released_too else " WHERE h.released_at IS NULL"
    return ctx.catalog.query(
        f"SELECT h.*, k.case_no FROM holds h LEFT JOIN cases k ON k.id = h.case_id{where} ORDER BY h.id"
    )


def holds_by_id(ctx: Context, hold_ids: Collection[int]) -> list[Row]:
    if not hold_ids:
        return []
    return ctx.catalog.query(
        "SELECT * FROM holds WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", [json.dumps(list(hold_ids))]
    )


def holds_covering(ctx: Context, clip: Row) -> list[Row]:
    """The holds that stand over ``clip``: on it, on one of its cases, or on its device and recording time.

    Decided by the retention sweep's own rule (:func:`avlog.retention.sweep.load_facts_for`), so what
    ``show`` says keeps a clip is what keeps it."""
    from avlog.retention.sweep import load_facts_for

    ((_row, facts),) = load_facts_for(ctx, [clip])
    return holds_by_id(ctx, [h.hold_id for h in facts.holds])


def _only(column: str, clip_ids: Collection[int] | None) -> tuple[str, list[int]]:
    """A ``column IN (...)`` condition for ``clip_ids``; a long list reads them all (SQLite takes up to
    32,766 parameters; past a few thousand a scan is as cheap)."""
    if clip_ids is None or len(clip_ids) > 5000:
        return "", []
    return f" AND {column} IN (" + ",".join("?" for _ in clip_ids) + ")", list(clip_ids)


def flags_by_clip(ctx: Context, clip_ids: Collection[int] | None = None) -> dict[int, list[Row]]:
    """The flags in force (whole rows: reason, note, who, when), by clip id, in the order they were placed."""
    where, params = _only("clip_id", clip_ids)
    flags: dict[int, list[Row]] = {}
    for row in ctx.catalog.query(f"SELECT * FROM flags WHERE unflagged_at IS NULL{where} ORDER BY id", params):
        flags.setdefault(row["clip_id"], []).append(row)
    return flags


def cases_by_clip(ctx: Context, clip_ids: Collection[int] | None = None) -> dict[int, list[str]]:
    """The numbers of the cases each clip is linked to, by clip id."""
    where, params = _only("l.clip_id", clip_ids)
    cases: dict[int, list[str]] = {}
    for row in ctx.catalog.query(
        "SELECT l.clip_id, c.case_no FROM case_clips l JOIN cases c ON c.id = l.case_id "
        f"WHERE l.unlinked_at IS NULL{where} ORDER BY c.case_no",
        params,
    ):
        cases.setdefault(row["clip_id"], []).append(row["case_no"])
    return cases


def marks_by_clip(
    ctx: Context, clip_ids: Collection[int] | None = None
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Active flag reasons and linked case numbers, by clip id (two queries, for listings)."""
    flags = {cid: [f["reason"] for f in rows] for cid, rows in flags_by_clip(ctx, clip_ids).items()}
    return flags, cases_by_clip(ctx, clip_ids)
