"""Device registry commands (Art. 6, 10): register, list, scan."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from avlog.cli.app import (
    DEVICE_KINDS,
    JsonOpt,
    _closing,
    _examples,
    _open,
    device_app,
)
from avlog.cli.params import key_text, stored_text
from avlog.context import Context
from avlog.errors import (
    AvlogError,
    UsageError,
)
from avlog.i18n import _

# -- devices ----------------------------------------------------------------------------------------


@device_app.command(
    "register",
    help=_("Register a recorder with its custodian and unit (Art. 6, 10)."),
    short_help=_("Register a recorder with its custodian and unit."),
    epilog=_examples("avlog device register BC-0001 --custodian 张三 --unit 一中队 --kind bodycam --label 'DSJ-V8 #1'"),
)
def device_register(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help=_("The recorder's serial number."), callback=stored_text)],
    custodian: Annotated[
        str, typer.Option(help=_("The person responsible for the device (Art. 10)."), callback=stored_text)
    ],
    unit: Annotated[str, typer.Option(help=_("The unit that equips the device (Art. 6)."), callback=stored_text)],
    kind: Annotated[
        str, typer.Option(help=_("bodycam, camera, audio, terminal or fixed."), callback=key_text)
    ] = "bodycam",
    label: Annotated[str | None, typer.Option(help=_("A free label, e.g. the model."), callback=stored_text)] = None,
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
        for attached in list_attached(clock=c.clock):
            try:
                identities.append(identify(c, attached))
            except AvlogError:  # the card cannot be read: still show what its USB serial says
                serial = attached.usb_serial
                registered = c.catalog.device(serial) if serial else None
                identities.append(Identified(attached, serial, "usb" if serial else None, registered))
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
        status = Text(_("registered"), style="green") if d["registered"] else Text(_("unknown"), style="yellow")
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
