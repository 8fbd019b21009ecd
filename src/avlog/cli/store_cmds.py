"""Store commands: init, ls, show, verify, audit, demo."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from avlog.cli.app import (
    JsonOpt,
    _closing,
    _examples,
    _open,
    _store_path,
    app,
    audit_app,
)
from avlog.cli.params import MAX_ROW_ID, key_text, user_time
from avlog.context import SETTINGS_NAME, init_store, open_context
from avlog.errors import (
    IntegrityError,
    UsageError,
)
from avlog.i18n import _, ngettext

# -- init -------------------------------------------------------------------------------------------


@app.command(
    help=_("Create a store (folders, settings file, catalog); running it again changes nothing."),
    epilog=_examples("avlog init", "avlog --store /srv/avlog init"),
)
def init(ctx: typer.Context) -> None:
    from avlog import render

    root = _store_path(ctx).absolute()
    had_settings = (root / SETTINGS_NAME).exists()
    created = init_store(root)
    message = _("Created the store at {path}") if created else _("The store at {path} exists already")
    render.err.print(message.format(path=root))
    if not created and not had_settings:
        render.err.print(_("Wrote the default settings to {path}").format(path=root / SETTINGS_NAME))


# -- ls / show --------------------------------------------------------------------------------------


@app.command(
    "ls",
    help=_("List clips in recording order."),
    epilog=_examples("avlog ls --device BC-0001 --since 2026-11-26 --until 2026-11-27", "avlog ls --json"),
)
def ls(
    ctx: typer.Context,
    device: Annotated[
        str | None, typer.Option(help=_("Only this device's clips."), show_default=False, callback=key_text)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help=_("Recorded at or after this time (ISO 8601)."), show_default=False, callback=key_text),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help=_("Recorded before this time (ISO 8601)."), show_default=False, callback=key_text),
    ] = None,
    case: Annotated[
        str | None,
        typer.Option("--case", help=_("Only clips linked to this case."), show_default=False, callback=key_text),
    ] = None,
    flagged: Annotated[bool, typer.Option("--flagged", help=_("Only clips flagged for long-term keeping."))] = False,
    as_json: JsonOpt = False,
) -> None:
    from avlog import marks, render
    from avlog.retention.sweep import load_facts_for, policy_of
    from avlog.timefmt import to_db

    with _closing(_open(ctx)) as c:
        tz = c.settings.tz
        if case is not None:
            marks.case(c, case)  # an unknown case is an error, not an empty list
        rows = c.catalog.clips(
            device=device,
            since=to_db(user_time(since, tz, "--since")) if since else None,
            until=to_db(user_time(until, tz, "--until")) if until else None,
        )
        # One bulk load of the rules' facts (flags and cases among them) for every listed clip.
        loaded = load_facts_for(c, rows)
        if case is not None:
            loaded = [(r, f) for r, f in loaded if any(k.case_id == case for k in f.cases)]
        if flagged:
            loaded = [(r, f) for r, f in loaded if f.flags]
        rows = [r for r, _f in loaded]
        flags = {r["id"]: [x.reason for x in f.flags] for r, f in loaded}
        cases = {r["id"]: [k.case_id for k in f.cases] for r, f in loaded}
        custodians = {d["serial"]: d["custodian"] for d in c.catalog.devices()}
        policy, now = policy_of(c), c.clock()  # one clock reading for the whole listing
        retention = {r["id"]: render.retention_json(r, f, policy, now, tz) for r, f in loaded}
        if as_json:
            render.emit_json(
                {
                    "clips": [
                        {
                            **render.clip_json(
                                r, tz, custodians.get(r["device_serial"]), flags.get(r["id"]), cases.get(r["id"])
                            ),
                            "retention": retention[r["id"]],
                        }
                        for r in rows
                    ]
                }
            )
        elif rows:
            render.out.print(render.clips_table(rows, tz, retention))
        else:
            render.err.print(_("No clips match."))


@app.command(
    help=_("Show one clip: where it came from, its hashes, its times, findings and its audit trail."),
    epilog=_examples("avlog show 12", "avlog show 3f9a01c2 --json"),
)
def show(
    ctx: typer.Context,
    clip: Annotated[
        str, typer.Argument(help=_("A clip id, or a BLAKE3 prefix of at least 8 hex digits."), callback=key_text)
    ],
    as_json: JsonOpt = False,
) -> None:
    from rich.table import Table

    from avlog import marks, render
    from avlog.retention.sweep import load_facts_for, policy_of
    from avlog.store.catalog import loads
    from avlog.timefmt import show as show_time

    with _closing(_open(ctx)) as c:
        tz = c.settings.tz
        row = c.catalog.resolve_clip(clip)
        device = c.catalog.device(row["device_serial"])
        ((_row, facts),) = load_facts_for(c, [row])
        data = render.clip_json(
            row,
            tz,
            device["custodian"] if device else None,
            [f.reason for f in facts.flags],
            [k.case_id for k in facts.cases],
        )
        linked = marks.clip_cases(c, row["id"])
        case_nos = {k["id"]: k["case_no"] for k in linked}
        data["retention"] = {
            **render.retention_json(row, facts, policy_of(c), c.clock(), tz),
            "flags": [
                {"reason": f["reason"], "note": f["note"], "at": show_time(f["flagged_at"], tz), "by": f["flagged_by"]}
                for f in marks.active_flags(c, row["id"])
            ],
            "cases": [
                {
                    "case": k["case_no"],
                    "title": k["title"],
                    "open": k["closed_on"] is None,
                    "closed_on": k["closed_on"],
                    "retain_until": k["retain_until"],
                    "retain_years": k["retain_years"],
                }
                for k in linked
            ],
            "holds": [
                render.hold_json(h, tz, case_nos.get(h["case_id"]))
                for h in marks.holds_by_id(c, [h.hold_id for h in facts.holds])
            ],
        }
        data["object_path"] = str(c.objects.path(row["blake3"]))
        from avlog.iso import registry

        data["discs"] = [
            {
                "volume_id": d["volume_id"],
                "purpose": d["purpose"],
                "state": d["state"],
                "counts_as_copy": bool(d["counts"]),
                "location": d["location"],
                "path_on_disc": d["path"],
            }
            for d in registry.locate(c, row["id"])
        ]
        findings = c.catalog.findings(clip_id=row["id"])
        data["findings"] = [
            {
                "kind": f["kind"],
                "clip_id": f["clip_id"],
                "other_clip_id": f["other_clip_id"],
                "seconds": f["seconds"],
                "detail": loads(f["detail"]),
            }
            for f in findings
        ]
        trail = c.catalog.audit_trail([f"clip:{row['id']}"])
        data["audit"] = [
            {
                "seq": a["seq"],
                "at": show_time(a["at"], tz),
                "actor": a["actor"],
                "action": a["action"],
                "details": loads(a["details"]),
            }
            for a in trail
        ]
        if as_json:
            render.emit_json(data)
            return
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for key in (
            "id",
            "device_serial",
            "custodian",
            "original_path",
            "media_kind",
            "codec",
            "recorded_start",
            "recorded_end",
            "duration_s",
            "time_source",
            "probe_error",
            "size",
            "blake3",
            "sha256",
            "ingest_id",
            "ingested_at",
            "state",
            "object_path",
        ):
            value = data[key]
            if key == "size":
                value = f"{render.human_size(value)} ({value} B)"
            table.add_row(_(key), "-" if value is None else str(value))
        render.out.print(table)
        render.print_retention(data["retention"])
        if data["discs"]:
            render.out.print(_("Discs:"), style="bold")
            for d in data["discs"]:
                render.out.print(
                    "  • "
                    + _("{vol} ({purpose}, {state}{counts}){where}").format(
                        vol=d["volume_id"],
                        purpose=d["purpose"],
                        state=d["state"],
                        counts=_(", counts as a copy") if d["counts_as_copy"] else "",
                        where=_(" at {location}").format(location=d["location"]) if d["location"] else "",
                    )
                )
        if findings:
            render.out.print(_("Findings:"), style="bold yellow")
            for f in findings:
                render.out.print(
                    "  • " + render.finding_text(f["kind"], f["seconds"], f["other_clip_id"], loads(f["detail"]))
                )
        render.out.print(_("Audit trail:"), style="bold")
        render.out.print(render.audit_rows_table(trail, tz))


# -- verify -----------------------------------------------------------------------------------------


@app.command(
    help=_(
        "Re-hash stored objects from disk against the catalog. Lists every missing or altered object, "
        "then exits 3 if there was any (for cron)."
    ),
    epilog=_examples("avlog verify", "avlog verify --sample 50 --json"),
)
def verify(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help=_("Check every object (the default)."))] = False,
    sample: Annotated[
        int | None,
        typer.Option(help=_("Check a random sample of N objects."), min=1, max=MAX_ROW_ID, show_default=False),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.store.fixity import verify_objects

    if all_ and sample is not None:
        raise UsageError(_("--all and --sample exclude each other"))
    with _closing(_open(ctx)) as c:
        bar = (
            None
            if as_json
            else render.simple_progress(_("verifying"), len(c.catalog.live_objects()) if sample is None else sample)
        )
        if bar is not None:
            bar.start()
        try:
            report = verify_objects(
                c.catalog,
                c.objects,
                sample=sample,
                progress=(lambda _h, _s: bar.advance(bar.task_ids[0])) if bar else None,
            )
        finally:
            if bar is not None:
                bar.stop()
    bad = [{"blake3": b.blake3, "problem": b.problem, "clips": b.clip_ids} for b in report.bad]
    if as_json:
        render.emit_json(
            {
                "checked": report.checked,
                "ok": report.ok,
                "bad": bad,
                "sampled": report.sampled,
                "unreferenced": report.unreferenced,
                "recorded": report.recorded,
            }
        )
    else:
        for b in report.bad:
            render.out.print(
                Text.assemble(
                    (_(b.problem), "bold red"),
                    f" {b.blake3} " + _("(clips {ids})").format(ids=", ".join(map(str, b.clip_ids))),
                )
            )
        if report.unreferenced:
            render.err.print(
                _("{n} complete object(s) not yet in the catalog (an interrupted ingest; re-run it)").format(
                    n=len(report.unreferenced)
                )
            )
        render.err.print(
            _("{checked} objects checked: {ok} sound, {bad} bad").format(
                checked=report.checked, ok=report.ok, bad=len(report.bad)
            )
        )
        if not report.recorded:
            render.err.print(_("The store is read-only: the results were not recorded in the catalog."))
    if report.bad:
        shown = ", ".join(f"{b.blake3[:16]} ({_(b.problem)})" for b in report.bad[:BAD_NAMED])
        n = len(report.bad)
        if n > BAD_NAMED:  # the one line stays one line; every object is listed above it and in --json
            raise IntegrityError(
                _("{n} objects missing or altered, the first {shown_n}: {list}").format(
                    n=n, shown_n=BAD_NAMED, list=shown
                )
            )
        raise IntegrityError(
            ngettext("{n} object missing or altered: {list}", "{n} objects missing or altered: {list}", n).format(
                n=n, list=shown
            )
        )


# -- audit ------------------------------------------------------------------------------------------


@audit_app.command(
    "verify",
    help=_(
        "Check the audit log: walk its hash chain, replay it into a scratch catalog and compare every table with "
        "it (the log is the catalog's journal), and check heads written down earlier (anchors). Exit 3 naming "
        "every entry that does not fit, every row that differs and every anchor the log no longer holds."
    ),
    epilog=_examples(
        "avlog audit verify",
        "avlog audit verify --anchor /var/log/avlog/anchors.jsonl",
        "avlog audit verify --disc /srv/avlog/discs/AVLOG_2026_0001.iso",
        "avlog audit verify --expect 812:3f9a01c2…(64 hex digits) --json",
    ),
)
def audit_verify(
    ctx: typer.Context,
    anchor_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--anchor",
            readable=False,
            help=_("An anchor file (avlog audit anchor --to FILE): every head in it must still be in the log."),
            show_default=False,
        ),
    ] = None,
    discs: Annotated[
        list[Path] | None,
        typer.Option(
            "--disc",
            readable=False,
            help=_("A disc image or drive: the head it carries must still be in the log."),
            show_default=False,
        ),
    ] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect", help=_("A head written down by hand, as SEQ:HASH."), show_default=False, callback=key_text
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.auditing import verify_log
    from avlog.store import anchor

    wanted = [anchor.parse_expect(text) for text in expect or []]
    with _closing(_open(ctx)) as c:
        check = verify_log(c, anchor_files=anchor_files or [], discs=discs or [], expected=wanted)
    brk, differences = check.chain.first_break, check.differences
    if as_json:
        render.emit_json(
            {
                "entries": check.chain.entries,
                "head": check.chain.head,
                "ok": check.ok,
                "first_break": {"seq": brk.seq, "reason": brk.reason} if brk else None,
                "differences": [d.to_json() for d in differences],
                "anchors": [
                    {"source": a.source, "seq": a.seq, "hash": a.hash, "at": a.at, "ok": p is None, "problem": p}
                    for a, p in check.anchors
                ],
                "unreadable_anchors": check.unreadable,
                "empty_anchor_files": check.empty_files,
            }
        )
    else:
        if brk is None:
            render.err.print(
                _("Audit chain intact: {n} entries, head {head}").format(n=check.chain.entries, head=check.chain.head)
            )
            if not differences:
                render.err.print(_("Every table agrees with the log."))
        for d in differences[:DIFFERENCES_SHOWN]:
            render.out.print(d.text())
        if len(differences) > DIFFERENCES_SHOWN:
            render.out.print(
                _("… and {n} more differences (all of them with --json)").format(n=len(differences) - DIFFERENCES_SHOWN)
            )
        for a, p in check.anchors:
            if p is None:
                render.err.print(
                    _("Anchor {seq}:{hash} ({source}) holds").format(seq=a.seq, hash=a.hash[:16], source=a.source)
                )
            else:
                render.out.print(_("Anchor {seq} ({source}): {problem}").format(seq=a.seq, source=a.source, problem=p))
        for source in check.unreadable:
            render.out.print(_("{source} holds no anchor").format(source=source))
        for path in check.empty_files:
            render.err.print(_("{path} holds no anchor yet: nothing to check there").format(path=path))
    failure = check.failure()
    if failure is not None:
        raise failure


#: Damaged objects named in verify's closing line.
BAD_NAMED = 10

#: Differences printed as lines (``--json`` lists more).
DIFFERENCES_SHOWN = 50


@audit_app.command(
    "anchor",
    help=_(
        "Write the audit chain's head (entry number, hash, time, store) where the store's owner cannot rewrite it "
        "quietly: appended to a file outside the store (make it append-only with chattr +a) and/or the system "
        "log. Check it later with avlog audit verify --anchor FILE or --expect SEQ:HASH."
    ),
    epilog=_examples(
        "avlog audit anchor --syslog",
        "avlog audit anchor --to /var/log/avlog/anchors.jsonl --syslog",
        "avlog audit anchor --json",
    ),
)
def audit_anchor(
    ctx: typer.Context,
    to: Annotated[
        list[Path] | None,
        typer.Option("--to", help=_("Append the head to this file (outside the store)."), show_default=False),
    ] = None,
    syslog: Annotated[bool, typer.Option("--syslog", help=_("Send the head to the system log (logger)."))] = False,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.auditing import anchor_head

    with _closing(_open(ctx)) as c:
        head, places = anchor_head(c, to=to or [], syslog=syslog)
    if as_json:
        render.emit_json({**head.to_json(), "to": places})
    else:
        render.out.print(f"{head.seq}:{head.hash}")
        if places:
            render.err.print(_("Anchored entry {seq} to: {places}").format(seq=head.seq, places=", ".join(places)))
        else:
            render.err.print(_("Write this head down outside the store, or anchor it with --to FILE or --syslog."))


@audit_app.command(
    "log",
    help=_("Show audit entries, newest last."),
    epilog=_examples("avlog audit log --limit 20", "avlog audit log --subject clip:12 --json"),
)
def audit_log(
    ctx: typer.Context,
    subject: Annotated[
        str | None,
        typer.Option(help=_("Only entries about this subject, e.g. clip:12."), show_default=False, callback=key_text),
    ] = None,
    limit: Annotated[int, typer.Option(help=_("At most this many of the newest entries."), min=1, max=MAX_ROW_ID)] = 50,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.store.catalog import loads
    from avlog.timefmt import show as show_time

    with _closing(_open(ctx)) as c:
        rows = c.catalog.audit_entries(subject=subject, limit=limit)
        if as_json:
            render.emit_json(
                {
                    "entries": [
                        {
                            **{k: r[k] for k in ("seq", "actor", "login", "action", "subject", "prev_hash", "hash")},
                            "at": show_time(r["at"], c.settings.tz),
                            "details": loads(r["details"]),
                        }
                        for r in rows
                    ]
                }
            )
        else:
            render.out.print(render.audit_rows_table(rows, c.settings.tz))


# -- demo -------------------------------------------------------------------------------------------


@app.command(
    help=_(
        "Build a sample body-camera card of real short clips, ingest it into a new temporary store "
        "and show the custodian's report. No camera needed."
    ),
    epilog=_examples("avlog demo", "avlog demo --json"),
)
def demo(as_json: JsonOpt = False) -> None:
    from avlog import render
    from avlog.ingest.pipeline import ingest as run_ingest
    from avlog.ingest.sources import FolderSource
    from avlog.samples import build_demo_card

    work = Path(tempfile.mkdtemp(prefix="avlog-demo-"))
    store = work / "store"
    init_store(store)
    with _closing(open_context(store)) as c:
        now = c.clock()
        card = build_demo_card(work / "card", shift_end=now - timedelta(minutes=20), tz=c.settings.tz)
        c.catalog.register_device(
            "DEMO-0001", custodian=_("Demo Officer"), unit=_("Demo Unit"), kind="bodycam", label="demo card"
        )
        if not as_json:
            render.err.print(
                _("Sample card with {n} recordings at {path}").format(n=len(card.recordings), path=card.root)
            )
        report = run_ingest(
            c, FolderSource(card.root), "DEMO-0001", progress=None if as_json else render.RichIngestProgress()
        )
        if as_json:
            doc = render.ingest_json(report, c.settings.tz)
            doc["store"] = str(store)
            render.emit_json(doc)
        else:
            render.print_ingest(report, c.catalog, c.settings.tz)
            render.err.print(
                _("The demo store is at {store}; look around with: avlog --store {store} ls").format(store=store)
            )
