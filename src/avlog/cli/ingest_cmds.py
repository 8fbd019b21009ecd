"""Ingest commands: ingest (a named card or attached recorders) and watch (docking-station mode)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from avlog.cli.app import (
    JsonOpt,
    _closing,
    _examples,
    _open,
    app,
)
from avlog.cli.params import stored_text
from avlog.context import Context
from avlog.errors import (
    AvlogError,
    DiskFull,
    PartialFailure,
    StoreError,
    UsageError,
)
from avlog.i18n import _, ngettext

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
        typer.Option(
            help=_("The registered device the card comes from (needed with --from)."),
            show_default=False,
            callback=stored_text,  # stored as the clips' device when --allow-unregistered admits it
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help=_("Only this attached USB device node, e.g. /dev/sdb1."), show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help=_("Wait until a registered recorder is plugged in."))] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            help=_("With --wait: give up after this many seconds (at most a year)."),
            min=0,
            max=366 * 86400,
            show_default=False,
        ),
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
    if (device_serial is not None or allow_unregistered) and device is None:
        # Naming a serial or admitting unregistered devices is for one device you point at, never for all.
        raise UsageError(_("--device-serial and --allow-unregistered need --device NODE (or --from PATH)"))
    with _closing(_open(ctx)) as c:
        reports, problems = _ingest_attached(
            c, device, device_serial, wait, timeout, allow_unregistered, clear_device, yes, as_json
        )
    _attached_exit(reports, problems)


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
    from avlog.ingest.attached import ingest_and_clear
    from avlog.ingest.sources import open_source

    src = open_source(path, c.settings.tz)
    try:
        outcome = ingest_and_clear(
            c,
            src,
            serial,
            allow_unregistered=allow_unregistered,
            clear=clear,
            confirmed=confirmed,
            progress=None if as_json else render.RichIngestProgress(),
        )
    finally:
        src.close()
    _show_ingest(c, outcome, as_json)
    if outcome.refused is not None:
        raise outcome.refused
    return outcome.report


def _ingest_document(c: Context, outcome: Any) -> dict[str, Any]:
    from avlog import render

    doc = render.ingest_json(outcome.report, c.settings.tz)
    doc["cleared"] = outcome.cleared
    doc["left_on_card"] = outcome.left
    return doc


def _show_ingest(c: Context, outcome: Any, as_json: bool) -> None:
    from avlog import render

    if as_json:
        render.emit_json(_ingest_document(c, outcome))
        return
    render.print_ingest(outcome.report, c.catalog, c.settings.tz)
    if outcome.cleared:
        n = len(outcome.cleared)
        render.err.print(
            ngettext(
                "Cleared {n} recording from the card (Art. 18).", "Cleared {n} recordings from the card (Art. 18).", n
            ).format(n=n)
        )
    if outcome.left:
        n = len(outcome.left)
        render.err.print(
            ngettext(
                "{n} file was left on the card: it is not in the store ({files}).",
                "{n} files were left on the card: they are not in the store ({files}).",
                n,
            ).format(n=n, files=", ".join(outcome.left))
        )


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
) -> tuple[list[Any], list[str]]:
    """Every registered recorder attached now (or the next one plugged in, with --wait), one after another.

    Returns the ingest reports and the problems that stopped a recorder from being ingested or
    cleared (an unreadable card, a refused clearing); one recorder's trouble never stops the others.
    """
    from avlog import render
    from avlog.ingest.attached import ingest_attached

    problems: list[str] = []
    chosen, unknown = _choose(c, node, serial_override, wait, timeout, allow_unregistered, problems)
    reports = []
    documents = []
    for identity in chosen:
        try:
            outcome = ingest_attached(
                c,
                identity,
                allow_unregistered=allow_unregistered,
                clear=clear,
                confirmed=confirmed,
                plugged_at=identity.device.seen_at,
                progress=None if as_json else render.RichIngestProgress(),
            )
        except (AvlogError, OSError) as exc:  # one recorder's trouble never stops the others
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{identity.device.node}: {reason}")
            if not as_json:
                render.error_line(f"{identity.device.node}: {reason}")
            continue
        reports.append(outcome.report)
        if outcome.refused is not None:
            problems.append(f"{identity.device.node}: {outcome.refused}")
        if as_json:
            doc = _ingest_document(c, outcome)
            doc["device_node"] = identity.device.node
            doc["clear_refused"] = str(outcome.refused) if outcome.refused else None
            documents.append(doc)
        else:
            _show_ingest(c, outcome, False)
    if as_json:
        render.emit_json(
            {"ingests": documents, "unknown": [render.identity_json(i) for i in unknown], "problems": problems}
        )
    return reports, problems


def _choose(
    c: Context,
    node: str | None,
    serial_override: str | None,
    wait: bool,
    timeout: float | None,
    allow_unregistered: bool,
    problems: list[str],
) -> tuple[list[Any], list[Any]]:
    """The recorders to ingest, and the attached devices left alone (Art. 5, 16)."""
    from avlog import render
    from avlog.ingest.attached import Identified, identify
    from avlog.ingest.devices import PlugWatcher, list_attached

    def wanted(identity: Identified) -> bool:
        return identity.serial is not None and (identity.registered is not None or allow_unregistered)

    def safe_identify(attached: Any) -> Identified | None:
        try:
            return identify(c, attached, serial_override if node else None)
        except AvlogError as exc:
            problems.append(f"{attached.node}: {exc}")
            render.err.print(
                _("{node} cannot be read: {reason}").format(node=attached.node, reason=exc), style="yellow"
            )
            return None

    if wait:
        # Listening starts before looking at what is attached already, so nothing plugged in between is
        # missed; a registered recorder that is attached already needs no waiting.
        watcher = PlugWatcher(clock=c.clock)
        deadline = None if timeout is None else time.monotonic() + timeout
        candidates: list[Any] = list_attached(clock=c.clock)
        while True:
            if not candidates:
                left = None if deadline is None else deadline - time.monotonic()
                plugged = watcher.next_plugged(timeout=left) if left is None or left > 0 else None
                if plugged is None:
                    raise AvlogError(_("no registered recorder was plugged in within {s:g} s").format(s=timeout))
                candidates = [plugged]
            attached = candidates.pop(0)
            if node is not None and attached.node != node:
                continue
            identity = safe_identify(attached)
            if identity is not None and wanted(identity):
                return [identity], []
            render.err.print(
                _("Ignoring {node} ({what}): not a registered recorder").format(
                    node=attached.node, what=attached.description
                )
            )
    attached_now = list_attached(clock=c.clock)
    if node is not None:
        attached_now = [d for d in attached_now if d.node == node]
        if not attached_now:
            raise AvlogError(_("no USB storage with a filesystem at {node}").format(node=node))
    identities = [i for i in (safe_identify(d) for d in attached_now) if i is not None]
    chosen = [i for i in identities if wanted(i)]
    unknown = [i for i in identities if not wanted(i)]
    for i in unknown:
        render.err.print(
            _("Left alone: {node} ({what}, serial {serial}): not a registered recorder (Art. 5, 16)").format(
                node=i.device.node, what=i.device.description, serial=i.serial or "?"
            ),
            style="yellow",
        )
    if not chosen and not problems:
        raise AvlogError(
            _("no registered recorder is attached; see avlog device scan")
            if attached_now
            else _("no USB storage is attached")
        )
    return chosen, unknown


def _attached_exit(reports: list[Any], problems: list[str]) -> None:
    """One exit code for several recorders: 0 all went in, 4 some did, 1 none did; every failure named."""
    failures = list(problems)
    succeeded = 0
    for report in reports:
        if report.aborted and report.failed == 0:
            failures.append(f"{report.device_serial}: {report.aborted}")
        failures.extend(
            f"{report.device_serial} {i.original_path}: {i.error}" for i in report.items if i.status == "failed"
        )
        succeeded += report.stored + report.duplicates + report.rehandovers
    if not failures:
        return
    message = "; ".join(failures)
    if succeeded == 0:
        raise StoreError(_("nothing could be ingested: {failures}").format(failures=message))
    raise PartialFailure(_("{n} problem(s): {failures}").format(n=len(failures), failures=message))


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
    if report.stored + report.duplicates + report.rehandovers == 0:
        raise StoreError(_("no clip could be ingested: {names}").format(names=names))
    raise PartialFailure(
        _("{failed} of {total} files failed: {names}").format(
            failed=report.failed, total=len(report.items), names=names
        )
    )


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
        stop.set()  # only this: writing from a signal handler could interrupt another write to stderr

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with _closing(_open(ctx)) as c:
        # Listening starts before the attached ones are handled: nothing plugged in between is missed.
        watcher = PlugWatcher(clock=c.clock)
        render.log(_("watching for recorders; stop with Ctrl-C or SIGTERM"))
        queue = list_attached(clock=c.clock)
        while not stop.is_set():
            attached = queue.pop(0) if queue else watcher.next_plugged(should_stop=stop.is_set)
            if attached is None:
                break
            plugged_at = attached.seen_at or c.clock()
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
            except (AvlogError, OSError) as exc:  # one recorder's trouble never ends the docking station
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                render.log(_("{node}: ingest failed: {reason}").format(node=attached.node, reason=reason))
                continue
            render.log(render.ingest_line(outcome.report, attached.node))
            if outcome.report.stopped:
                render.log(_("stopping: the clip in progress was finished; the rest waits for the next plug-in"))
            if outcome.cleared:
                n = len(outcome.cleared)
                render.log(
                    ngettext("{node}: cleared {n} recording", "{node}: cleared {n} recordings", n).format(
                        node=attached.node, n=n
                    )
                )
            if outcome.left:
                render.log(
                    _("{node}: left on the card, not in the store: {files}").format(
                        node=attached.node, files=", ".join(outcome.left)
                    )
                )
            if outcome.refused is not None:
                render.log(f"{attached.node}: {outcome.refused}")
    render.log(_("stopped"))
