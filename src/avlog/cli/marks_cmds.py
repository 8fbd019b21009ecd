"""Flags (Art. 20), cases (Art. 19, 21) and legal holds."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

import typer

from avlog.cli.app import JsonOpt, _closing, _examples, _open, app
from avlog.cli.params import MAX_ROW_ID, key_text, stored_text, user_time
from avlog.errors import UsageError
from avlog.i18n import _

case_app = typer.Typer(
    help=_("Cases: clips used as evidence are kept as long as their case (Art. 19, 21)."),
    no_args_is_help=True,
    epilog=_examples("avlog case add 2026-017 --title '某餐馆投诉' --retain-years 5", "avlog case link 2026-017 12 13"),
)
hold_app = typer.Typer(
    help=_("Legal holds: nothing they cover is purged while they stand (complaint, litigation, supervision)."),
    no_args_is_help=True,
    epilog=_examples("avlog hold add --case 2026-017 --reason 'administrative reconsideration'", "avlog hold list"),
)
app.add_typer(case_app, name="case", short_help=_("Cases and the clips that are their evidence."))
app.add_typer(hold_app, name="hold", short_help=_("Legal holds that block purging."))

ClipsArg = Annotated[
    list[str], typer.Argument(help=_("Clip ids or BLAKE3 prefixes (at least 8 hex digits)."), callback=key_text)
]
CaseArg = Annotated[str, typer.Argument(metavar="CASE", callback=key_text)]


def _end_of(text: str, tz: Any) -> datetime:
    """``--until 2026-11-30`` holds all of 30 November; a time given with it is taken as it is."""
    moment = user_time(text, tz, "--until")
    if len(text.strip()) == 10:  # a date alone
        moment = moment + timedelta(days=1) - timedelta(microseconds=1)
    return moment


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            _("{option} must be a date like 2027-06-30, not {text}").format(option=option, text=text)
        ) from exc


@app.command(
    help=_(
        "Flag clips for long-term keeping on disc (Art. 20): dispute (1), obstruction (2), incident (3) "
        "or other (4). A flagged clip is never purged until it is on enough verified discs."
    ),
    short_help=_("Flag clips for long-term keeping."),
    epilog=_examples("avlog flag 12 13 --reason dispute --note '当事人当场提出异议'"),
)
def flag(
    ctx: typer.Context,
    clips: ClipsArg,
    reason: Annotated[str, typer.Option(help=_("dispute, obstruction, incident or other."), callback=key_text)],
    note: Annotated[
        str | None, typer.Option(help=_("What happened, for the record."), show_default=False, callback=stored_text)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        added = marks.flag(c, clips, reason, note)
    if as_json:
        render.emit_json({"flagged": [a["clip_id"] for a in added], "reason": reason})
    else:
        render.err.print(_("{n} clip(s) flagged ({reason})").format(n=len(added), reason=reason))


@app.command(
    help=_("End clips' flags. The note saying why is required and kept in the audit log."),
    short_help=_("End clips' flags, with a note."),
    epilog=_examples("avlog unflag 12 --note '复议结束，不再需要长期保存'"),
)
def unflag(
    ctx: typer.Context,
    clips: ClipsArg,
    note: Annotated[str, typer.Option(help=_("Why the clip no longer needs long-term keeping."), callback=stored_text)],
    reason: Annotated[
        str | None, typer.Option(help=_("Only flags of this reason."), show_default=False, callback=key_text)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        ended = marks.unflag(c, clips, note, reason)
    if as_json:
        render.emit_json({"unflagged": [{"clip_id": f["clip_id"], "reason": f["reason"]} for f in ended]})
    else:
        render.err.print(_("{n} flag(s) ended").format(n=len(ended)))


def _case_json(c: Any, row: dict[str, Any]) -> dict[str, Any]:
    from avlog import marks

    return {
        "case": row["case_no"],
        "title": row["title"],
        "created_at": row["created_at"],
        "created_by": row["created_by"],
        "closed_on": row["closed_on"],
        "retain_until": row["retain_until"],
        "retain_years": row["retain_years"],
        "open": row["closed_on"] is None,
        "clips": [link["clip_id"] for link in marks.case_clip_links(c, row["id"])],
    }


@case_app.command(
    "add",
    help=_("Open a case. Its clips are kept while it is open, then until --retain-until or closing + --retain-years."),
    epilog=_examples("avlog case add 2026-017 --retain-until 2031-12-31", "avlog case add 2026-018 --retain-years 5"),
)
def case_add(
    ctx: typer.Context,
    case_no: Annotated[str, typer.Argument(metavar="CASE", help=_("The case number."), callback=stored_text)],
    title: Annotated[
        str | None, typer.Option(help=_("What the case is about."), show_default=False, callback=stored_text)
    ] = None,
    retain_until: Annotated[
        str | None, typer.Option(help=_("Keep its clips until this date."), show_default=False, callback=key_text)
    ] = None,
    retain_years: Annotated[
        int | None, typer.Option(help=_("Keep its clips this many years after closing."), show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        row = marks.case_add(
            c, case_no, title=title, retain_until=_date(retain_until, "--retain-until"), retain_years=retain_years
        )
        doc = _case_json(c, row)
    if as_json:
        render.emit_json(doc)
    else:
        render.err.print(_("Case {case} opened").format(case=row["case_no"]))


@case_app.command(
    "close",
    help=_("Close a case on a date; its clips are then kept until its retention end."),
    epilog=_examples("avlog case close 2026-017 --on 2026-12-20"),
)
def case_close(
    ctx: typer.Context,
    case_no: CaseArg,
    on: Annotated[str, typer.Option("--on", help=_("The closing date."), callback=key_text)],
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    closed_on = _date(on, "--on")
    assert closed_on is not None
    with _closing(_open(ctx)) as c:
        doc = _case_json(c, marks.case_close(c, case_no, closed_on))
    if as_json:
        render.emit_json(doc)
    else:
        until = doc["retain_until"] or _("indefinitely")
        render.err.print(_("Case {case} closed; its clips are kept until {until}").format(case=case_no, until=until))


@case_app.command(
    "link", help=_("Link clips to a case as its evidence."), epilog=_examples("avlog case link 2026-017 12 13")
)
def case_link(
    ctx: typer.Context,
    case_no: CaseArg,
    clips: ClipsArg,
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        linked = marks.case_link(c, case_no, clips)
    if as_json:
        render.emit_json({"case": case_no, "linked": linked})
    else:
        render.err.print(_("{n} clip(s) linked to case {case}").format(n=len(linked), case=case_no))


@case_app.command(
    "unlink",
    help=_("Unlink clips from a case; the note saying why is required and audited."),
    epilog=_examples("avlog case unlink 2026-017 13 --note '误关联'"),
)
def case_unlink(
    ctx: typer.Context,
    case_no: CaseArg,
    clips: ClipsArg,
    note: Annotated[
        str, typer.Option(help=_("Why the clip is no longer evidence in this case."), callback=stored_text)
    ],
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        unlinked = marks.case_unlink(c, case_no, clips, note)
    if as_json:
        render.emit_json({"case": case_no, "unlinked": unlinked})
    else:
        render.err.print(_("{n} clip(s) unlinked from case {case}").format(n=len(unlinked), case=case_no))


@case_app.command(
    "show", help=_("Show a case, its retention and its clips."), epilog=_examples("avlog case show 2026-017")
)
def case_show(ctx: typer.Context, case_no: CaseArg, as_json: JsonOpt = False) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        row = marks.case(c, case_no)
        doc = _case_json(c, row)
        rows = [c.catalog.resolve_clip(str(i)) for i in doc["clips"]]
        tz = c.settings.tz
    if as_json:
        render.emit_json(doc)
        return
    state = _("open") if doc["open"] else _("closed on {on}").format(on=doc["closed_on"])
    until = doc["retain_until"] or (
        _("{n} years after closing").format(n=doc["retain_years"]) if doc["retain_years"] else _("indefinitely")
    )
    render.out.print(_("Case {case}: {title}").format(case=doc["case"], title=doc["title"] or ""))
    render.out.print(_("{state}; clips kept until {until}").format(state=state, until=until))
    if rows:
        render.out.print(render.clips_table(rows, tz))


@hold_app.command(
    "add",
    help=_("Place a legal hold on a clip, a case, or a device's recordings in a time window."),
    epilog=_examples(
        "avlog hold add 12 --reason '行政诉讼'",
        "avlog hold add --device BC-0001 --since 2026-11-01 --until 2026-11-30 --reason '督察'",
    ),
)
def hold_add(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help=_("Complaint, litigation, supervision …"), callback=stored_text)],
    clip: Annotated[
        str | None, typer.Argument(help=_("A clip id or BLAKE3 prefix."), show_default=False, callback=key_text)
    ] = None,
    case_no: Annotated[
        str | None,
        typer.Option("--case", help=_("Every clip of this case."), show_default=False, callback=key_text),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help=_("Every clip of this device."), show_default=False, callback=stored_text)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help=_("With --device: recorded at or after."), show_default=False, callback=key_text),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help=_("With --device: recorded at or before."), show_default=False, callback=key_text),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        tz = c.settings.tz
        row = marks.hold_add(
            c,
            reason=reason,
            clip_ref=clip,
            case_no=case_no,
            device_serial=device,
            since=user_time(since, tz, "--since") if since else None,
            until=_end_of(until, tz) if until else None,
        )
    if as_json:
        render.emit_json({"hold": row["id"], "reason": reason})
    else:
        render.err.print(_("Hold {id} placed").format(id=row["id"]))


@hold_app.command(
    "release",
    help=_("Release a legal hold; the note saying why is required and audited."),
    epilog=_examples("avlog hold release 3 --note '判决已生效'"),
)
def hold_release(
    ctx: typer.Context,
    hold_id: Annotated[int, typer.Argument(metavar="HOLD", min=1, max=MAX_ROW_ID)],
    note: Annotated[str, typer.Option(help=_("Why the hold ends."), callback=stored_text)],
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        marks.hold_release(c, hold_id, note)
    if as_json:
        render.emit_json({"released": hold_id})
    else:
        render.err.print(_("Hold {id} released").format(id=hold_id))


@hold_app.command(
    "list", help=_("List holds that stand (with --all, released ones too)."), epilog=_examples("avlog hold list --json")
)
def hold_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help=_("Released holds too."))] = False,
    as_json: JsonOpt = False,
) -> None:
    from rich.table import Table

    from avlog import marks, render

    with _closing(_open(ctx)) as c:
        rows = marks.holds(c, released_too=all_)
    if as_json:
        render.emit_json({"holds": rows})
        return
    if not rows:
        render.err.print(_("No holds."))
        return
    table = Table()
    for header in ("#", _("covers"), _("reason"), _("placed"), _("released")):
        table.add_column(header)
    for r in rows:
        covers = (
            f"clip {r['clip_id']}"
            if r["clip_id"]
            else f"case {r['case_no']}"
            if r["case_id"]
            else f"device {r['device_serial']}"
        )
        table.add_row(str(r["id"]), covers, r["reason"], r["placed_at"], r["released_at"] or "-")
    render.out.print(table)
