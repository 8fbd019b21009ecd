"""How the CLI shows things: rich tables and progress on the terminal, JSON documents for scripts.

Only the CLI imports this module; the core reports progress through plain callbacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.style import Style
from rich.table import Table
from rich.text import Text

from avlog.clipdoc import clip_json
from avlog.i18n import N_, _, ngettext
from avlog.ingest.report import IngestReport
from avlog.ingest.timeline import Finding
from avlog.retention.policy import PURGED, ClipFacts, Due, Keep, Policy, decide, explain, retention_end
from avlog.store.catalog import Catalog, loads
from avlog.textsafe import json_visible, visible
from avlog.timefmt import from_db, show


class VisibleConsole(Console):
    """A console that shows every string it is given through :func:`avlog.textsafe.visible`.

    Rich turns each string it prints (a message, a table cell, a title, a caption) into text through
    ``render_str``; escaping there reaches every one of them, before rich measures widths, so an escape
    sequence, a carriage return or a line feed in a file name, a custodian or a note shows as ``\x1b``,
    ``\x0d``, ``\x0a`` and can neither act on the terminal nor forge a line. Text objects built by avlog
    itself carry avlog's own words and styles; data put in one goes through :func:`styled`.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)


def styled(text: str, style: str | Style = "") -> Text:
    """Data in a style of its own, shown as every other string is (:func:`visible`)."""
    return Text(visible(text), style=style)


# markup=False: file names, custodians and USB strings are data; "[red]x.mp4" must show as it is.
out = VisibleConsole(highlight=False, markup=False)
err = VisibleConsole(stderr=True, highlight=False, markup=False, soft_wrap=True)  # a notice is one line


def error_line(message: str) -> None:
    """The one line a failure prints on stderr: never wrapped, red on a terminal, nothing in it can act on
    the terminal or start another line."""
    text = "avlog: " + " ".join(visible(message).split())
    if err.is_terminal:
        err.print(text, style="bold red", markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


#: Whether this command has printed its JSON document (the CLI prints an error document otherwise).
json_emitted = False


def drop_stdout() -> None:
    """After stdout failed: point it at /dev/null, so that what is still buffered cannot fail again at exit."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout. Control characters in its strings are JSON escapes (the values
    are kept); bytes of a name that is not UTF-8 are shown as :func:`visible` shows them."""
    global json_emitted
    sys.stdout.write(json_visible(json.dumps(document, ensure_ascii=False, indent=2, default=str)) + "\n")
    sys.stdout.flush()
    json_emitted = True


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class RichIngestProgress:
    """Files and bytes on stderr while an ingest runs; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.files = 0
        self.done = 0

    def begin(self, files: int, total_bytes: int) -> None:
        if not err.is_terminal:
            return
        self.files = files
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.task = self.progress.add_task(_("ingesting"), total=total_bytes, files=f"0/{files}")
        self.progress.start()

    def file(self, path: str, size: int) -> None:
        if self.progress is not None and self.task is not None:
            self.done += 1
            # The description is markup: a file name in it is escaped twice, for the terminal and for rich.
            self.progress.update(
                self.task, files=f"{self.done}/{self.files}", description=escape_markup(visible(path)[-40:])
            )

    def advance(self, nbytes: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, nbytes)

    def end(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class RichPhaseProgress:
    """One bar per phase of long work on stderr ("write AVLOG_2026_0001", "verify ..."); silent when stderr
    is not a terminal. Call it as the core's ``start(name, phase, total)`` callback."""

    PHASES = {"write": N_("writing"), "verify": N_("reading back"), "burn": N_("burning")}

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def __call__(self, name: str, phase: str, total: int) -> Callable[[int], None]:
        if not err.is_terminal:
            return lambda n: None
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
        progress = self.progress
        task = progress.add_task(escape_markup(visible(f"{_(self.PHASES.get(phase, phase))} {name}")), total=total)
        return lambda n: progress.advance(task, n)

    def end(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def simple_progress(label: str, total: int) -> Progress | None:
    if not err.is_terminal:
        return None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    progress.add_task(escape_markup(visible(label)), total=total)
    return progress


# -- clips ------------------------------------------------------------------------------------

__all__ = ["clip_json"]  # the clip document lives in avlog.clipdoc: discs carry it too


def table_time(text: str | None, tz: tzinfo) -> str:
    """A stored time for a table: local date and time, without the zone the header names."""
    moment = from_db(text)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def clips_table(rows: list[dict[str, Any]], tz: tzinfo, retention: Mapping[int, dict[str, Any]] | None = None) -> Table:
    """Clips as a table; with ``retention`` (by clip id, from :func:`retention_json`) also their state,
    retention end and what keeps them."""
    table = Table(title=None, show_lines=False)
    headers = [_("id"), _("device"), _("recorded"), _("duration"), _("size"), _("file"), _("BLAKE3")]
    if retention is not None:
        headers += [_("state"), _("kept until"), _("retention")]
    for header in headers:
        table.add_column(header)
    for row in rows:
        cells = [
            str(row["id"]),
            row["device_serial"],
            table_time(row["recorded_start"], tz),
            human_seconds(row["duration_s"]),
            human_size(row["size"]),
            row["original_path"],
            row["blake3"][:12],
        ]
        if retention is not None:
            cells += [_(row["state"]), *retention_cells(retention[row["id"]])]
        table.add_row(*cells)
    return table


# -- retention --------------------------------------------------------------------------------------

#: Short names of the reasons a clip is kept, for table cells.
KEEP_SHORT = {
    "hold": N_("legal hold"),
    "case_open": N_("open case"),
    "case_retention": N_("closed case"),
    "flagged_not_on_discs": N_("flagged, not on discs"),
    "minimum_retention": N_("minimum retention"),
}


def _iso(moment: datetime | None, tz: tzinfo) -> str | None:
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment is not None else None


def retention_json(row: dict[str, Any], facts: ClipFacts, policy: Policy, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """The retention decision for one clip at ``now``, for ``ls`` and ``show``.

    ``decision``: keep, due (no rule keeps it, its grace period runs), purge (the next sweep purges it)
    or purged. ``reason``: the rule that keeps it (keep only). ``until``: when the rules release it, in
    the store's zone; None while something keeps it indefinitely (a hold, an open case, a flag) and for
    a purged clip. ``due_since``: when a sweep found it due (None before a sweep has marked it).
    """
    decision = decide(facts, policy, now, tz)
    due_since = from_db(row["due_since"])
    doc: dict[str, Any] = {
        "decision": "",
        "reason": None,
        "until": None,
        "due_since": _iso(due_since, tz),
        "purge_after": None,
        "purged_at": show(row.get("purged_at"), tz),
        "purge_reason": row.get("purge_reason"),
        "explanation": explain(decision, tz),
    }
    if row["state"] == PURGED:
        doc["decision"] = "purged"
        return doc
    end = retention_end(facts, policy, tz)
    doc["until"] = _iso(end, tz)
    if isinstance(decision, Keep):
        doc.update(decision="keep", reason=decision.reason)
    elif isinstance(decision, Due):
        doc["decision"] = "due"
        if due_since is not None:
            doc["purge_after"] = _iso(decision.purge_after, tz)
        else:  # released, but no sweep has marked it due yet: its grace period starts with the next sweep
            doc["explanation"] = _(
                "released on {end}: the next sweep marks it due and purges it {days} days later, unless a flag, "
                "a case or a hold rescues it first"
            ).format(end=_iso(end, tz), days=policy.grace_days)
    else:
        doc["decision"] = "purge"
        if due_since is not None:
            doc["purge_after"] = _iso(due_since + timedelta(days=policy.grace_days), tz)
    return doc


def retention_cells(doc: dict[str, Any]) -> tuple[str, str]:
    """The "kept until" and "retention" cells of a clip's row, from :func:`retention_json`."""
    until = doc["until"]
    when = datetime.fromisoformat(until).strftime("%Y-%m-%d %H:%M") if until else _("indefinitely")
    decision = doc["decision"]
    if decision == "keep":
        return when, _(KEEP_SHORT.get(doc["reason"], doc["reason"]))
    if decision == "due":
        after = doc["purge_after"]
        label = (
            _("due, purged from {when}").format(when=datetime.fromisoformat(after).strftime("%Y-%m-%d %H:%M"))
            if after
            else _("due at the next sweep")
        )
        return when, label
    if decision == "purge":
        return when, _("purged by the next sweep")
    return "-", _("purged")


def hold_json(hold: dict[str, Any], tz: tzinfo, case_no: str | None = None) -> dict[str, Any]:
    """A legal hold over a clip: what it covers (the clip, a case, or a device's recordings) and why."""
    if hold["clip_id"] is not None:
        covers = "clip"
    elif hold["case_id"] is not None:
        covers = "case"
    else:
        covers = "device"
    return {
        "hold": hold["id"],
        "covers": covers,
        "clip_id": hold["clip_id"],
        "case": case_no,
        "device_serial": hold["device_serial"],
        "since": show(hold["since"], tz),
        "until": show(hold["until"], tz),
        "reason": hold["reason"],
        "placed_at": show(hold["placed_at"], tz),
        "placed_by": hold["placed_by"],
    }


def print_retention(doc: dict[str, Any]) -> None:
    """``show``'s retention section: the decision explained, then the flags, cases and holds behind it."""
    out.print(_("Retention:"), style="bold")
    until, label = retention_cells(doc)
    line = f"  {_(doc['decision'])}: {label}"
    if doc["decision"] == "keep":
        line += "; " + (_("retention ends {when}").format(when=until) if doc["until"] else _("no end as things stand"))
    out.print(line)
    out.print(f"  {doc['explanation']}")
    for f in doc["flags"]:
        note = f": {f['note']}" if f["note"] else ""
        out.print(
            "  • " + _("flagged {reason} on {at} by {by}").format(reason=f["reason"], at=f["at"], by=f["by"]) + note
        )
    for k in doc["cases"]:
        if k["open"]:
            text = _("case {case}, open: keeps it while open").format(case=k["case"])
        elif k["retain_until"]:
            text = _("case {case}, closed on {on}: keeps it through {until}").format(
                case=k["case"], on=k["closed_on"], until=k["retain_until"]
            )
        else:
            text = _("case {case}, closed on {on}: keeps it without an end date").format(
                case=k["case"], on=k["closed_on"]
            )
        out.print("  • " + text + (f" ({k['title']})" if k["title"] else ""))
    for h in doc["holds"]:
        what = {"clip": _("this clip"), "case": _("case {case}"), "device": _("device {device}")}[h["covers"]].format(
            case=h["case"], device=h["device_serial"]
        )
        out.print(
            "  • "
            + _("legal hold {id} on {what} since {at} by {by}: {reason}").format(
                id=h["hold"], what=what, at=h["placed_at"], by=h["placed_by"], reason=h["reason"]
            )
        )


# -- ingest -------------------------------------------------------------------------------------

FINDING_TEXT = {
    "gap": N_("gap of {duration} before this clip (after clip {other})"),
    "overlap": N_("overlaps clip {other} by {duration}"),
    "future": N_("dated {duration} in the future: check the recorder's clock (Art. 11)"),
    "implausibly_old": N_("dated {duration} ago: check the recorder's clock (Art. 11)"),
    "late_handover": N_("handed over {duration} after it ended, not on the recording day (Art. 18)"),
    "clock_ahead": N_(
        "the newest clip ends {duration} after the recorder was plugged in: its clock runs ahead (Art. 11)"
    ),
    "clock_behind": N_(
        "the newest clip is dated {duration} before the previous handover: the recorder's clock runs behind (Art. 11)"
    ),
    "name_time_mismatch": N_(
        "its file name says {name_time}, its container {container_time}: {duration} apart; a clock changed "
        "between them or a renamed file (Art. 11)"
    ),
}


def _detail_time(text: Any) -> str:
    """A time of a finding's detail (ISO 8601 in the store's zone) as a table shows times."""
    try:
        return datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(text)


def finding_text(kind: str, seconds: float | None, other: int | None, detail: dict[str, Any] | None = None) -> str:
    times = {}
    if kind == "name_time_mismatch":  # the one text that names the times of its detail
        times = {key: _detail_time((detail or {}).get(key)) for key in ("name_time", "container_time")}
    text = _(FINDING_TEXT.get(kind, kind)).format(duration=human_seconds(seconds), other=other, **times)
    if kind == "late_handover" and detail and detail.get("over_deadline"):
        text += " " + _("— over the deadline")
    return text


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "clip_id": f.clip_id,
        "other_clip_id": f.other_clip_id,
        "seconds": f.seconds,
        "detail": f.detail,
    }


def ingest_json(report: IngestReport, tz: tzinfo) -> dict[str, Any]:
    return {
        "ingest_id": report.ingest_id,
        "device_serial": report.device_serial,
        "custodian": report.custodian,
        "registered": report.registered,
        "source": report.source,
        "source_kind": report.source_kind,
        "started_at": report.started_at.astimezone(tz).isoformat(timespec="seconds"),
        "finished_at": report.finished_at.astimezone(tz).isoformat(timespec="seconds") if report.finished_at else None,
        "status": report.status,
        "clips": [
            {
                "original_path": i.original_path,
                "blake3": i.blake3,
                "sha256": i.sha256,
                "size": i.size,
                "status": i.status,
                "error": i.error,
                "clip_id": i.clip_id,
                "media_kind": i.media_kind,
                "time_source": i.time_source,
                "probe_error": i.probe_error,
                # where the path shown is not exactly the name on the card: its bytes, and what was altered
                "original_name": getattr(i.entry, "original_name", None),
                "name_note": getattr(i.entry, "name_note", None),
            }
            for i in report.items
        ],
        "stored": report.stored,
        "duplicates": report.duplicates,
        "rehandovers": report.rehandovers,
        "failed": report.failed,
        "bytes_stored": report.bytes_stored,
        "skipped": report.skipped,
        "findings": [finding_json(f) for f in report.findings],
        "clock": {
            "plugged_at": report.plugged_at.astimezone(tz).isoformat(timespec="seconds") if report.plugged_at else None,
            "newest_clip_end": report.clock.newest_end.astimezone(tz).isoformat(timespec="seconds")
            if report.clock and report.clock.newest_end
            else None,
            "verdict": report.clock.finding.kind if report.clock and report.clock.finding else "ok",
        },
        "aborted": report.aborted,
        "stopped": report.stopped,
    }


SKIP_TEXT = {
    "system": N_("system"),
    "not_media": N_("not recordings"),
    "not_a_file": N_("links or special files"),
    "volume_label": N_("entries marked as a volume label"),
}

STATUS_STYLE = {"stored": "green", "duplicate": "cyan", "rehandover": "yellow", "failed": "bold red"}


def print_ingest(report: IngestReport, catalog: Catalog, tz: tzinfo) -> None:
    who = report.custodian or _("unregistered device")
    out.print(
        _("Ingest #{id} — device {serial} ({who}) from {source}").format(
            id=report.ingest_id, serial=report.device_serial, who=who, source=report.source
        ),
        style="bold",
    )
    if not report.registered:
        out.print(_("Clips are marked as coming from an unregistered device."), style="yellow")
    table = Table()
    for header in (_("status"), _("file"), _("size"), _("recorded"), _("duration"), _("note")):
        table.add_column(header, overflow="fold")
    clips = {row["id"]: row for row in catalog.clips(ingest_id=report.ingest_id)}
    for item in report.items:
        row = clips.get(item.clip_id or -1) or (catalog.clip(item.clip_id) if item.clip_id else None)
        note = item.error or ""
        if item.probe_error:
            note = _("unreadable container, stored as is: {reason}").format(reason=item.probe_error)
        elif item.status == "duplicate":
            note = _("already in the store")
        elif item.status == "rehandover" and row:
            note = _(
                "handed over again: its clip was purged on {date} under the retention rules; not stored again"
            ).format(date=table_time(row["purged_at"], tz))
        elif row and row["time_source"] and row["time_source"] != "container":
            note = _("time from {source}").format(source=_(row["time_source"]))
        table.add_row(
            Text(_(item.status), style=STATUS_STYLE[item.status]),
            item.original_path,
            human_size(item.size),
            table_time(row["recorded_start"], tz) if row else "-",
            human_seconds(row["duration_s"]) if row else "-",
            note,
        )
    if report.items:
        out.print(table)
    skipped = sum(report.skipped.values())
    out.print(
        _("{stored} stored, {dups} already in the store, {failed} failed; {skipped} other files skipped").format(
            stored=report.stored, dups=report.duplicates, failed=report.failed, skipped=skipped
        )
        + (
            " (" + ", ".join(f"{n} {_(SKIP_TEXT.get(k, k))}" for k, n in sorted(report.skipped.items())) + ")"
            if skipped
            else ""
        )
        + "; "
        + _("{size} new").format(size=human_size(report.bytes_stored)),
    )
    if report.rehandovers:
        out.print(
            ngettext(
                "{n} recording was handed over again after its clip was purged: recorded, not stored again.",
                "{n} recordings were handed over again after their clips were purged: recorded, not stored again.",
                report.rehandovers,
            ).format(n=report.rehandovers),
            style="yellow",
        )
    if report.findings:
        out.print(_("Timeline findings:"), style="bold yellow")
        for f in report.findings:
            out.print(f"  • {_('clip')} {f.clip_id}: {finding_text(f.kind, f.seconds, f.other_clip_id, f.detail)}")
    if report.aborted:
        err.print(report.aborted, style="bold red")


def audit_rows_table(rows: list[dict[str, Any]], tz: tzinfo) -> Table:
    table = Table()
    for header in ("#", _("time"), _("actor"), _("action"), _("subject"), _("details")):
        table.add_column(header)
    for row in rows:
        details = loads(row["details"]) or {}
        details.pop("rows", None)  # the rows the change wrote (the journal): audit log --json shows them
        table.add_row(
            str(row["seq"]),
            show(row["at"], tz) or "",
            row["actor"],
            row["action"],
            row["subject"],
            ", ".join(f"{k}={v}" for k, v in details.items())[:100],
        )
    return table


def identity_json(identity: Any) -> dict[str, Any]:
    """One attached USB storage device, as ``device scan`` and plug-in ingest report it."""
    d = identity.device
    return {
        "node": d.node,
        "vendor_id": d.vendor_id,
        "model_id": d.model_id,
        "vendor": d.vendor,
        "model": d.model,
        "serial": identity.serial,
        "serial_from": identity.how,
        "fs_type": d.fs_type,
        "fs_label": d.fs_label,
        "fs_uuid": d.fs_uuid,
        "mountpoint": d.mount.path if d.mount else None,
        "mounted_read_write": d.mount.read_write if d.mount else None,
        "registered": identity.registered is not None,
        "custodian": identity.custodian,
        "unit": identity.registered["unit"] if identity.registered else None,
    }


def log(message: str) -> None:
    """One timestamped line on stderr, for long-running modes (journald keeps it); nothing in ``message`` can
    start another line or act on the terminal."""
    from datetime import datetime

    sys.stderr.write(f"{datetime.now().astimezone().isoformat(timespec='seconds')} avlog: {visible(message)}\n")
    sys.stderr.flush()


def ingest_line(report: IngestReport, node: str) -> str:
    """An ingest in one line, for the watch log."""
    findings: dict[str, int] = {}
    for f in report.findings:
        findings[f.kind] = findings.get(f.kind, 0) + 1
    text = _(
        "{node}: ingest #{id} of {serial} {status}: {stored} stored, {dups} already in the store, {failed} failed"
    ).format(
        node=node,
        id=report.ingest_id,
        serial=report.device_serial,
        status=_(report.status),
        stored=report.stored,
        dups=report.duplicates,
        failed=report.failed,
    )
    if findings:
        text += "; " + _("findings: {list}").format(list=", ".join(f"{k} {n}" for k, n in sorted(findings.items())))
    failed = [f"{i.original_path}: {i.error}" for i in report.items if i.status == "failed"]
    if failed:
        text += "; " + "; ".join(failed)
    return text
