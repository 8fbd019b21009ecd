"""retention-sweep: keep what the rules require, purge what they allow (Art. 19, 20)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from avlog.cli.app import JsonOpt, _closing, _examples, _open, app
from avlog.cli.params import key_text, user_time
from avlog.errors import IntegrityError, UsageError
from avlog.i18n import _


@app.command(
    "retention-sweep",
    help=_(
        "Decide every clip with the retention rules and purge what they allow, nothing else. A clip no rule "
        "keeps first becomes due and is purged only after grace_days; until then a flag, a case or a hold "
        "rescues it. A purged clip keeps its tombstone (hashes, size, when, why) in the catalog. "
        "Exit 3 when an object to purge is missing or damaged, 1 when another sweep is running."
    ),
    short_help=_("Purge what the retention policy allows (run it nightly)."),
    epilog=_examples(
        "avlog retention-sweep --dry-run",
        "avlog retention-sweep --dry-run --as-of 2027-06-30 --json",
        "avlog retention-sweep --quiet",
    ),
)
def retention_sweep(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("Show what would happen; change nothing."))] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help=_("With --dry-run: preview the sweep at this date, as if sweeps ran every night until then."),
            show_default=False,
            callback=key_text,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help=_("Print nothing unless something is wrong (for cron)."))
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.retention.sweep import sweep
    from avlog.timefmt import show, to_db

    if as_of is not None and not dry_run:
        raise UsageError(_("--as-of previews a later sweep and goes only with --dry-run"))
    with _closing(_open(ctx)) as c:
        tz = c.settings.tz
        report = sweep(c, dry_run=dry_run, as_of=user_time(as_of, tz, "--as-of") if as_of else None)
        flags_by_clip: dict[int, list[str]] = {}
        cases_by_clip: dict[int, list[str]] = {}
        if report.purged:
            from avlog import marks

            flags_by_clip, cases_by_clip = marks.marks_by_clip(c, [r["id"] for r in report.purged])
    purged_docs: list[dict[str, Any]] = [
        {
            **render.clip_json(row, tz, flags=flags_by_clip.get(row["id"]), cases=cases_by_clip.get(row["id"])),
            "purged_at": show(row.get("purged_at"), tz),
            "purge_reason": row.get("purge_reason"),
        }
        for row in report.purged
    ]
    if as_json:
        render.emit_json(
            {
                "dry_run": report.dry_run,
                "as_of": report.now.astimezone(tz).isoformat(timespec="seconds"),
                "purged": purged_docs,
                "kept": report.kept,
                "already_purged": report.already_purged,
                "freed_bytes": report.freed_bytes,
                "due": [
                    {
                        "id": row["id"],
                        "blake3": row["blake3"],
                        "due_since": show(to_db(d.since), tz),
                        "purge_after": show(to_db(d.purge_after), tz),
                    }
                    for row, d in report.due
                ],
                "newly_due": report.newly_due,
                "rescued": report.rescued,
                "problems": [{"id": p.clip_id, "blake3": p.blake3, "problem": p.problem} for p in report.problems],
            }
        )
    elif not quiet:
        _print_tables(report, tz)
    if not quiet:
        render.log(
            _(
                "retention sweep{dry}: {purged} purged ({freed}), {due} due ({new} newly), {rescued} rescued, "
                "{kept} kept, {problems} problem(s)"
            ).format(
                dry=_(" (dry run)") if report.dry_run else "",
                purged=len(report.purged),
                freed=render.human_size(report.freed_bytes),
                due=len(report.due),
                new=len(report.newly_due),
                rescued=len(report.rescued),
                kept=sum(report.kept.values()),
                problems=len(report.problems),
            )
        )
    if report.problems:
        raise IntegrityError(
            _("{n} clip(s) not purged: their object is missing or damaged ({clips}); run avlog verify").format(
                n=len(report.problems), clips=", ".join(f"{p.clip_id} {p.problem}" for p in report.problems)
            )
        )


def _print_tables(report: Any, tz: Any) -> None:
    from rich.table import Table

    from avlog import render

    kept = Table(title=_("Kept"))
    kept.add_column(_("reason"))
    kept.add_column(_("clips"), justify="right")
    for reason, n in sorted(report.kept.items()):
        kept.add_row(reason, str(n))
    kept.add_row(_("due (grace period)"), str(len(report.due)))
    render.out.print(kept)
    if report.purged:
        title = _("Would be purged") if report.dry_run else _("Purged")
        table = render.clips_table(report.purged, tz)
        table.title = title
        render.out.print(table)
    else:
        render.out.print(_("Nothing to purge."))
