"""The command line: parse, call one core function, render. Errors become one line and an exit code here."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from avlog import __version__
from avlog.context import Context, default_store_path, init_store, open_context
from avlog.errors import AvlogError, DiskFull, IntegrityError, PartialFailure, StoreError, UsageError
from avlog.i18n import _

DEVICE_KINDS = ("bodycam", "camera", "audio", "terminal", "fixed")


class AvlogGroup(TyperGroup):
    """Turns every :class:`AvlogError` into one line on stderr and SPEC.md's exit code, in one place."""

    def invoke(self, ctx: Any) -> Any:
        from avlog import render

        try:
            return super().invoke(ctx)
        except AvlogError as exc:
            render.error_line(str(exc))
            raise SystemExit(exc.exit_code) from None
        except sqlite3.DatabaseError as exc:
            render.error_line(_("the catalog cannot be used: {reason}").format(reason=exc))
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            render.error_line(_("interrupted"))
            raise SystemExit(130) from None
        except OSError as exc:
            render.error_line(
                _("{reason}: {path}").format(reason=exc.strerror or type(exc).__name__, path=exc.filename or "")
            )
            raise SystemExit(1) from None
        except Exception as exc:
            # Typer's own usage errors and exits (click's, vendored or not) keep their meaning.
            if os.environ.get("AVLOG_DEBUG") or type(exc).__module__.startswith(("typer", "click")):
                raise
            render.error_line(
                _("internal error: {kind}: {reason} (run again with AVLOG_DEBUG=1 for details)").format(
                    kind=type(exc).__name__, reason=exc
                )
            )
            raise SystemExit(1) from None


def _examples(*lines: str) -> str:
    return _("Examples:") + "\n\n" + "\n\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    cls=AvlogGroup,
    help=_("avlog: verified ingest and long-term keeping of law-enforcement audio-video recordings."),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    epilog=_examples("avlog init", "avlog device register BC-0001 --custodian 张三 --unit 一中队", "avlog demo"),
)
device_app = typer.Typer(
    cls=AvlogGroup,
    help=_("Register and list recorders (Art. 6, 10)."),
    no_args_is_help=True,
    epilog=_examples("avlog device register BC-0001 --custodian 张三 --unit 一中队", "avlog device list"),
)
audit_app = typer.Typer(
    cls=AvlogGroup,
    help=_("Read and check the tamper-evident audit log."),
    no_args_is_help=True,
    epilog=_examples("avlog audit verify", "avlog audit log --subject clip:12"),
)
app.add_typer(device_app, name="device")
app.add_typer(audit_app, name="audit")

JsonOpt = Annotated[bool, typer.Option("--json", help=_("Print one JSON document on stdout instead of tables."))]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avlog {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            readable=False,  # an unreadable store is reported by avlog in one line, not by the parser
            help=_("The store folder (default: $AVLOG_STORE, else the user data folder)."),
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help=_("Show the version and exit."))
    ] = False,
) -> None:
    ctx.obj = {"store": store}


def _store_path(ctx: typer.Context) -> Path:
    root = ctx.find_root().obj or {}
    return (root.get("store") or default_store_path()).expanduser()


def _open(ctx: typer.Context) -> Context:
    return open_context(_store_path(ctx))


# -- init -------------------------------------------------------------------------------------------


@app.command(
    help=_("Create a store (folders, settings file, catalog); running it again changes nothing."),
    epilog=_examples("avlog init", "avlog --store /srv/avlog init"),
)
def init(ctx: typer.Context) -> None:
    from avlog import render

    root = _store_path(ctx).absolute()
    created = init_store(root)
    message = _("Created the store at {path}") if created else _("The store at {path} exists already")
    render.err.print(message.format(path=root))


# -- devices ----------------------------------------------------------------------------------------


@device_app.command(
    "register",
    help=_("Register a recorder with its custodian and unit (Art. 6, 10)."),
    epilog=_examples("avlog device register BC-0001 --custodian 张三 --unit 一中队 --kind bodycam --label 'DSJ-V8 #1'"),
)
def device_register(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help=_("The recorder's serial number."))],
    custodian: Annotated[str, typer.Option(help=_("The person responsible for the device (Art. 10)."))],
    unit: Annotated[str, typer.Option(help=_("The unit that equips the device (Art. 6)."))],
    kind: Annotated[str, typer.Option(help=_("bodycam, camera, audio, terminal or fixed."))] = "bodycam",
    label: Annotated[str | None, typer.Option(help=_("A free label, e.g. the model."))] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render

    if kind not in DEVICE_KINDS:
        raise UsageError(_("--kind must be one of {kinds}").format(kinds=", ".join(DEVICE_KINDS)))
    if not serial.strip() or not custodian.strip() or not unit.strip():
        raise UsageError(_("serial, custodian and unit may not be empty"))
    with _closing(_open(ctx)) as c:
        row = c.catalog.register_device(
            serial.strip(), custodian=custodian.strip(), unit=unit.strip(), kind=kind, label=label
        )
        if as_json:
            render.emit_json(_device_json(row, c))
        else:
            render.err.print(_("Registered {serial} ({kind}) for {custodian}, {unit}").format(**row))


def _device_json(row: dict[str, Any], c: Context) -> dict[str, Any]:
    from avlog.timefmt import show

    return {
        "serial": row["serial"],
        "custodian": row["custodian"],
        "unit": row["unit"],
        "kind": row["kind"],
        "label": row["label"],
        "registered_at": show(row["registered_at"], c.settings.tz),
        "registered_by": row["registered_by"],
        "clips": row.get("clips", 0),
        "last_ingest": show(row.get("last_ingest"), c.settings.tz),
    }


@device_app.command(
    "list", help=_("List registered recorders."), epilog=_examples("avlog device list", "avlog device list --json")
)
def device_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    from rich.table import Table

    from avlog import render

    with _closing(_open(ctx)) as c:
        devices = [_device_json(row, c) for row in c.catalog.devices()]
    if as_json:
        render.emit_json({"devices": devices})
        return
    if not devices:
        render.err.print(_("No devices registered yet: avlog device register SERIAL --custodian NAME --unit UNIT"))
        return
    table = Table()
    for header in (_("serial"), _("kind"), _("custodian"), _("unit"), _("label"), _("clips"), _("last ingest")):
        table.add_column(header)
    for d in devices:
        table.add_row(
            d["serial"],
            d["kind"],
            d["custodian"],
            d["unit"],
            d["label"] or "",
            str(d["clips"]),
            d["last_ingest"] or "-",
        )
    render.out.print(table)


# -- ingest -----------------------------------------------------------------------------------------


@app.command(
    help=_(
        "Copy, hash (BLAKE3 + SHA-256) and prove every recording of a card into the store. "
        "Each file is copied to tmp/, read back from disk and re-hashed before it enters objects/. "
        "Without --from: every registered recorder attached over USB now (unknown devices are listed "
        "and left alone)."
    ),
    epilog=_examples(
        "avlog ingest",
        "avlog ingest --device /dev/sdb1 --clear-device",
        "avlog ingest --wait --timeout 600",
        "avlog ingest --from /media/card --device-serial BC-0001",
        "avlog ingest --from card.img --device-serial BC-0001 --json",
    ),
)
def ingest(
    ctx: typer.Context,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            readable=False,
            help=_("A folder, or a raw FAT32/exFAT card image or block device (read-only)."),
            show_default=False,
        ),
    ] = None,
    device_serial: Annotated[
        str | None,
        typer.Option(help=_("The registered device the card comes from (needed with --from)."), show_default=False),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help=_("Only this attached USB device node, e.g. /dev/sdb1."), show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help=_("Wait until a registered recorder is plugged in."))] = False,
    timeout: Annotated[
        float | None, typer.Option(help=_("With --wait: give up after this many seconds."), min=0, show_default=False)
    ] = None,
    clear_device: Annotated[
        bool,
        typer.Option(
            "--clear-device",
            help=_(
                "After every clip is verified in the store, delete exactly the ingested recordings from the "
                "card (Art. 18). Any doubt deletes nothing."
            ),
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help=_("Confirm clearing a card that is read raw rather than mounted."))
    ] = False,
    allow_unregistered: Annotated[
        bool, typer.Option(help=_("Store clips of an unregistered device, marked as such (Art. 5, 16)."))
    ] = False,
    as_json: JsonOpt = False,
) -> None:

    if source is not None:
        if device_serial is None:
            raise UsageError(_("give the card's device with --device-serial SERIAL"))
        if device is not None or wait:
            raise UsageError(_("--from reads a card you name; --device and --wait find attached ones"))
        with _closing(_open(ctx)) as c:
            report = _ingest_one(c, source.absolute(), device_serial, allow_unregistered, clear_device, yes, as_json)
        _ingest_exit(report)
        return
    if timeout is not None and not wait:
        raise UsageError(_("--timeout goes with --wait"))
    with _closing(_open(ctx)) as c:
        reports = _ingest_attached(
            c, device, device_serial, wait, timeout, allow_unregistered, clear_device, yes, as_json
        )
    for report in reports:
        _ingest_exit(report)


def _ingest_one(
    c: Context,
    path: Path,
    serial: str,
    allow_unregistered: bool,
    clear: bool,
    confirmed: bool,
    as_json: bool,
) -> Any:
    from avlog import render
    from avlog.ingest.clearing import ClearRefused, clear_card
    from avlog.ingest.pipeline import ingest as run_ingest
    from avlog.ingest.sources import open_source

    src = open_source(path, c.settings.tz)
    refused = None
    cleared = None
    try:
        report = run_ingest(
            c,
            src,
            serial,
            allow_unregistered=allow_unregistered,
            progress=None if as_json else render.RichIngestProgress(),
        )
        if clear and report.items:
            try:
                cleared = clear_card(c, src, report, confirmed=confirmed).deleted
            except ClearRefused as exc:
                refused = exc
    finally:
        src.close()
    _show_ingest(c, report, cleared, as_json)
    if refused is not None:
        raise refused
    return report


def _show_ingest(c: Context, report: Any, cleared: list[str] | None, as_json: bool) -> None:
    from avlog import render

    if as_json:
        doc = render.ingest_json(report, c.settings.tz)
        doc["cleared"] = cleared or []
        render.emit_json(doc)
        return
    render.print_ingest(report, c.catalog, c.settings.tz)
    if cleared:
        render.err.print(_("Cleared {n} recordings from the card (Art. 18).").format(n=len(cleared)))


def _ingest_attached(
    c: Context,
    node: str | None,
    serial_override: str | None,
    wait: bool,
    timeout: float | None,
    allow_unregistered: bool,
    clear: bool,
    confirmed: bool,
    as_json: bool,
) -> list[Any]:
    """Every registered recorder attached now (or the one plugged in next, with --wait), one after another."""
    from avlog import render
    from avlog.ingest.attached import identify, ingest_attached
    from avlog.ingest.devices import list_attached, watch_plugged

    def wanted(identity: Any) -> bool:
        return identity.serial is not None and (identity.registered is not None or allow_unregistered)

    if wait:
        plugged = watch_plugged(timeout=timeout)
        chosen = []
        for attached in plugged:
            if node is not None and attached.node != node:
                continue
            identity = identify(c, attached, serial_override)
            if wanted(identity):
                chosen = [identity]
                break
            render.err.print(
                _("Ignoring {node} ({what}): not a registered recorder").format(
                    node=attached.node, what=attached.description
                )
            )
        if not chosen:
            raise AvlogError(_("no registered recorder was plugged in within {s} s").format(s=timeout))
        unknown: list[Any] = []
    else:
        attached_now = list_attached()
        if node is not None:
            attached_now = [d for d in attached_now if d.node == node]
            if not attached_now:
                raise AvlogError(_("no USB storage with a filesystem at {node}").format(node=node))
        identities = [identify(c, d, serial_override if node else None) for d in attached_now]
        chosen = [i for i in identities if wanted(i)]
        unknown = [i for i in identities if not wanted(i)]
        for i in unknown:
            render.err.print(
                _("Left alone: {node} ({what}, serial {serial}): not a registered recorder (Art. 5, 16)").format(
                    node=i.device.node, what=i.device.description, serial=i.serial or "?"
                ),
                style="yellow",
            )
        if not chosen:
            raise AvlogError(
                _("no registered recorder is attached; see avlog device scan")
                if attached_now
                else _("no USB storage is attached")
            )
    reports = []
    documents = []
    refusals = []
    for identity in chosen:
        outcome = ingest_attached(
            c,
            identity,
            allow_unregistered=allow_unregistered,
            clear=clear,
            confirmed=confirmed,
            progress=None if as_json else render.RichIngestProgress(),
        )
        reports.append(outcome.report)
        if outcome.refused is not None:
            refusals.append(outcome.refused)
        if as_json:
            doc = render.ingest_json(outcome.report, c.settings.tz)
            doc["device_node"] = identity.device.node
            doc["cleared"] = outcome.cleared
            documents.append(doc)
        else:
            _show_ingest(c, outcome.report, outcome.cleared, False)
    if as_json:
        render.emit_json({"ingests": documents, "unknown": [render.identity_json(i) for i in unknown]})
    if refusals:
        raise refusals[0]
    return reports


def _ingest_exit(report: Any) -> None:
    from avlog import render

    if report.aborted and report.failed == 0:
        # The files went in, but the run's closing record could not be written (the disk filled up).
        raise DiskFull(report.aborted)
    if not report.items and not report.aborted:
        render.err.print(_("No recordings found in {source}").format(source=report.source), style="yellow")
        return
    if report.failed == 0:
        return
    names = "; ".join(f"{i.original_path}: {i.error}" for i in report.items if i.status == "failed")
    if report.stored + report.duplicates == 0:
        raise StoreError(_("no clip could be ingested: {names}").format(names=names))
    raise PartialFailure(
        _("{failed} of {total} files failed: {names}").format(
            failed=report.failed, total=len(report.items), names=names
        )
    )


# -- plug-in: scan and watch ------------------------------------------------------------------------


@device_app.command(
    "scan",
    help=_("List USB storage attached now: node, vendor/model, serial, filesystem, mount point, registered or not."),
    epilog=_examples("avlog device scan", "avlog device scan --json"),
)
def device_scan(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    from rich.table import Table

    from avlog import render
    from avlog.ingest.attached import Identified, identify
    from avlog.ingest.devices import list_attached

    with _closing(_open(ctx)) as c:
        identities = []
        for attached in list_attached():
            try:
                identities.append(identify(c, attached))
            except AvlogError:
                identities.append(Identified(attached, None, None, None))
    docs = [render.identity_json(i) for i in identities]
    if as_json:
        render.emit_json({"devices": docs})
        return
    if not docs:
        render.err.print(_("No USB storage is attached."))
        return
    table = Table()
    for header in (_("node"), _("device"), _("serial"), _("filesystem"), _("mounted at"), _("status"), _("custodian")):
        table.add_column(header)
    for d in docs:
        status = f"[green]{_('registered')}[/]" if d["registered"] else f"[yellow]{_('unknown')}[/]"
        table.add_row(
            d["node"],
            f"{d['vendor'] or ''} {d['model'] or ''}".strip() or f"{d['vendor_id']}:{d['model_id']}",
            d["serial"] or "-",
            f"{d['fs_type']} {d['fs_label'] or ''}".strip(),
            (d["mountpoint"] + (" (rw)" if d["mounted_read_write"] else " (ro)")) if d["mountpoint"] else "-",
            status,
            d["custodian"] or "-",
        )
    render.out.print(table)


@app.command(
    help=_(
        "Docking-station mode: ingest each registered recorder as it is plugged in (and those attached at "
        "start), one at a time, until stopped. SIGTERM or Ctrl-C finishes the clip in progress, then exits 0."
    ),
    epilog=_examples("avlog watch", "avlog watch --clear-device"),
)
def watch(
    ctx: typer.Context,
    clear_device: Annotated[
        bool, typer.Option("--clear-device", help=_("Clear each card once every clip is verified (Art. 18)."))
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help=_("Confirm clearing cards read raw."))] = False,
) -> None:
    import signal
    import threading

    from avlog import render
    from avlog.ingest.attached import identify, ingest_attached
    from avlog.ingest.devices import PlugWatcher, list_attached

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            render.log(_("stopping: finishing the clip in progress"))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with _closing(_open(ctx)) as c:
        watcher = PlugWatcher()  # listening before the attached ones are handled: nothing plugged is missed
        render.log(_("watching for recorders; stop with Ctrl-C or SIGTERM"))
        queue = list_attached()
        while not stop.is_set():
            attached = queue.pop(0) if queue else watcher.next_plugged(should_stop=stop.is_set)
            if attached is None:
                break
            plugged_at = c.clock()
            try:
                identity = identify(c, attached)
            except AvlogError as exc:
                render.log(_("{node}: cannot be read: {reason}").format(node=attached.node, reason=exc))
                continue
            if identity.registered is None:
                render.log(
                    _("{node}: {what} (serial {serial}) is not a registered recorder; left alone").format(
                        node=attached.node, what=attached.description, serial=identity.serial or "?"
                    )
                )
                continue
            render.log(
                _("{node}: recorder {serial} of {custodian} plugged in; ingesting").format(
                    node=attached.node, serial=identity.serial, custodian=identity.custodian
                )
            )
            try:
                outcome = ingest_attached(
                    c, identity, clear=clear_device, confirmed=yes, plugged_at=plugged_at, should_stop=stop.is_set
                )
            except AvlogError as exc:
                render.log(_("{node}: ingest failed: {reason}").format(node=attached.node, reason=exc))
                continue
            render.log(render.ingest_line(outcome.report, attached.node))
            if outcome.cleared:
                render.log(_("{node}: cleared {n} recordings").format(node=attached.node, n=len(outcome.cleared)))
            if outcome.refused is not None:
                render.log(f"{attached.node}: {outcome.refused}")
    render.log(_("stopped"))


# -- ls / show --------------------------------------------------------------------------------------


@app.command(
    "ls",
    help=_("List clips in recording order."),
    epilog=_examples("avlog ls --device BC-0001 --since 2026-11-26 --until 2026-11-27", "avlog ls --json"),
)
def ls(
    ctx: typer.Context,
    device: Annotated[str | None, typer.Option(help=_("Only this device's clips."), show_default=False)] = None,
    since: Annotated[
        str | None, typer.Option(help=_("Recorded at or after this time (ISO 8601)."), show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help=_("Recorded before this time (ISO 8601)."), show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.timefmt import parse_user_time, to_db

    with _closing(_open(ctx)) as c:
        tz = c.settings.tz
        rows = c.catalog.clips(
            device=device,
            since=to_db(parse_user_time(since, tz)) if since else None,
            until=to_db(parse_user_time(until, tz)) if until else None,
        )
        custodians = {d["serial"]: d["custodian"] for d in c.catalog.devices()}
        if as_json:
            render.emit_json({"clips": [render.clip_json(r, tz, custodians.get(r["device_serial"])) for r in rows]})
        elif rows:
            render.out.print(render.clips_table(rows, tz))
        else:
            render.err.print(_("No clips match."))


@app.command(
    help=_("Show one clip: where it came from, its hashes, its times, findings and its audit trail."),
    epilog=_examples("avlog show 12", "avlog show 3f9a01c2 --json"),
)
def show(
    ctx: typer.Context,
    clip: Annotated[str, typer.Argument(help=_("A clip id, or a BLAKE3 prefix of at least 8 hex digits."))],
    as_json: JsonOpt = False,
) -> None:
    from rich.table import Table

    from avlog import render
    from avlog.store.catalog import loads
    from avlog.timefmt import show as show_time

    with _closing(_open(ctx)) as c:
        tz = c.settings.tz
        row = c.catalog.resolve_clip(clip)
        device = c.catalog.device(row["device_serial"])
        data = render.clip_json(row, tz, device["custodian"] if device else None)
        data["object_path"] = str(c.objects.path(row["blake3"]))
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
        int | None, typer.Option(help=_("Check a random sample of N objects."), min=1, show_default=False)
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
            }
        )
    else:
        for b in report.bad:
            render.out.print(
                f"[bold red]{_(b.problem)}[/] {b.blake3} "
                + _("(clips {ids})").format(ids=", ".join(map(str, b.clip_ids)))
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
    if report.bad:
        raise IntegrityError(
            _("{n} object(s) missing or altered: {list}").format(
                n=len(report.bad), list=", ".join(f"{b.blake3[:16]} ({_(b.problem)})" for b in report.bad)
            )
        )


# -- audit ------------------------------------------------------------------------------------------


@audit_app.command(
    "verify",
    help=_("Walk the audit log's hash chain; exit 3 naming the first entry that does not fit."),
    epilog=_examples("avlog audit verify", "avlog audit verify --json"),
)
def audit_verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    from avlog import render
    from avlog.store.audit import verify_chain

    with _closing(_open(ctx)) as c:
        report = verify_chain(c.catalog.db)
    brk = report.first_break
    if as_json:
        render.emit_json(
            {
                "entries": report.entries,
                "head": report.head,
                "ok": brk is None,
                "first_break": {"seq": brk.seq, "reason": brk.reason} if brk else None,
            }
        )
    elif brk is None:
        render.err.print(_("Audit chain intact: {n} entries, head {head}").format(n=report.entries, head=report.head))
    if brk is not None:
        raise IntegrityError(_("audit entry {seq} is broken: {reason}").format(seq=brk.seq, reason=brk.reason))


@audit_app.command(
    "log",
    help=_("Show audit entries, newest last."),
    epilog=_examples("avlog audit log --limit 20", "avlog audit log --subject clip:12 --json"),
)
def audit_log(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Option(help=_("Only entries about this subject, e.g. clip:12."), show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(help=_("At most this many of the newest entries."), min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.store.catalog import loads
    from avlog.timefmt import show as show_time

    with _closing(_open(ctx)) as c:
        where, params = ("WHERE subject = ?", [subject]) if subject else ("", [])
        rows = c.catalog.query(f"SELECT * FROM audit {where} ORDER BY seq DESC LIMIT {int(limit)}", params)[::-1]
        if as_json:
            render.emit_json(
                {
                    "entries": [
                        {
                            **{k: r[k] for k in ("seq", "actor", "action", "subject", "prev_hash", "hash")},
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


# -- helpers ----------------------------------------------------------------------------------------


class _closing:
    def __init__(self, context: Context):
        self.context = context

    def __enter__(self) -> Context:
        return self.context

    def __exit__(self, *exc: object) -> None:
        self.context.close()


def main() -> None:
    """The ``avlog`` console script."""
    app()
