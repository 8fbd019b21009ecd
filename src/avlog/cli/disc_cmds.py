"""burn-iso and the disc registry (Art. 20, 21): images, verification, burning, where each disc is."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from avlog.cli.app import AvlogGroup, JsonOpt, _closing, _examples, _open, app
from avlog.cli.params import key_text, stored_text
from avlog.errors import AvlogError, IntegrityError, PartialFailure, UsageError
from avlog.i18n import _
from avlog.iso.media import MEDIA
from avlog.textsafe import visible

disc_app = typer.Typer(
    cls=AvlogGroup,
    help=_(
        "The disc registry: which discs exist, which clips each holds, where each is kept, and whether it "
        "still reads back without a difference. A disc counts towards a clip's required copies only once "
        "it is burned and its read-back found no difference."
    ),
    no_args_is_help=True,
    epilog=_examples("avlog disc list", "avlog disc verify /dev/sr0", "avlog disc locate 42"),
)
app.add_typer(disc_app, name="disc", short_help=_("List, show, verify, locate, mark and burn archive discs."))

_MEDIA_HELP = ", ".join(f"{m.name} ({_(m.label)})" for m in MEDIA.values())


def _disc_json(disc: dict[str, Any], tz: Any, clips: list[int] | None = None) -> dict[str, Any]:
    from avlog.iso import registry
    from avlog.timefmt import show

    doc = {
        "id": disc["id"],
        "volume_id": disc["volume_id"],
        "media": disc["media"],
        "purpose": disc["purpose"],
        "state": disc["state"],
        "counts_as_copy": bool(disc["counts"]),
        "location": disc["location"],
        "path": disc["image_path"],
        "bytes": disc["image_bytes"],
        "sha256": disc["image_sha256"],
        "blake3": disc["image_blake3"],
        "payload_bytes": disc["payload_bytes"],
        "clip_count": disc["clip_count"],
        "created_at": show(disc["created_at"], tz),
        "created_by": disc["created_by"],
        "burned_at": show(disc["burned_at"], tz),
        "image_verified_at": show(disc["image_verified_at"], tz),
        "image_verify_result": disc["image_verify_result"],
        "disc_verified_at": show(disc["disc_verified_at"], tz),
        "disc_verify_result": disc["disc_verify_result"],
        **registry.reasons(disc),
    }
    if clips is not None:
        doc["clips"] = clips
    return doc


@app.command(
    "burn-iso",
    help=_(
        "Pack the clips that need long-term keeping onto disc images: clips flagged under Art. 20 or linked "
        "to a case, on fewer discs than retention.disc_copies (default 2; one more copy per run, so run it "
        "again for the copy kept in another place; a disc counts as a copy once burned and read back from a "
        "drive without a difference). A case's clips, or else one recorder's flagged clips of "
        "one day, stay on one disc where they fit. Each image is a BagIt bag readable with stock tools "
        "(ISO 9660, Joliet, Rock Ridge, UDF); it is read back and compared with the catalog before it gets "
        "its name and a row in the disc registry. With --evidence-for CASE: an evidence disc (Art. 21) of "
        "that case's clips with a printable explanation of who extracted them, when and from where. "
        "Media: {media}."
    ).format(media=_MEDIA_HELP),
    short_help=_("Write verified disc images of clips that need long-term keeping (Art. 20, 21)."),
    epilog=_examples(
        "avlog burn-iso --dry-run",
        "avlog burn-iso --media bd25",
        "avlog burn-iso --case C-2026-017 --burn /dev/sr0",
        "avlog burn-iso --evidence-for C-2026-017 --media dvd --out /media/export",
    ),
)
def burn_iso(
    ctx: typer.Context,
    media: Annotated[
        str | None,
        typer.Option(
            "--media",
            metavar="MEDIA",
            help=_("Disc size to pack for (default: discs.default_media)."),
            show_default=False,
            callback=key_text,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help=_("Where to write images (default: STORE/discs)."), show_default=False
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=_("Print the plan (discs, clips, bytes, free space); change nothing."))
    ] = False,
    burn: Annotated[
        str | None,
        typer.Option(
            "--burn",
            metavar="DEVICE",
            help=_(
                "Burn each verified image to this drive (/dev/sr0) with xorriso, then read the disc back; "
                "stdio:PATH writes to another device or a file instead (xorriso's notation)."
            ),
            show_default=False,
        ),
    ] = None,
    case: Annotated[
        str | None,
        typer.Option(
            "--case", metavar="CASE", help=_("Only clips linked to this case."), show_default=False, callback=key_text
        ),
    ] = None,
    flag_reason: Annotated[
        str | None,
        typer.Option(
            "--flag-reason",
            metavar="REASON",
            help=_("Only clips flagged for this reason (dispute, obstruction, incident, other)."),
            show_default=False,
            callback=key_text,
        ),
    ] = None,
    clip: Annotated[
        list[str] | None,
        typer.Option(
            "--clip", metavar="CLIP", help=_("Only this clip (repeatable)."), show_default=False, callback=key_text
        ),
    ] = None,
    evidence_for: Annotated[
        str | None,
        typer.Option(
            "--evidence-for",
            metavar="CASE",
            help=_("An evidence disc of this case's clips, with the Art. 21 explanation."),
            show_default=False,
            callback=key_text,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.iso import archive
    from avlog.retention.policy import FLAG_REASONS

    if flag_reason is not None and flag_reason not in FLAG_REASONS:
        raise UsageError(_("--flag-reason must be one of {reasons}").format(reasons=", ".join(FLAG_REASONS)))
    if burn is not None:
        if dry_run:
            raise UsageError(_("--burn cannot go with --dry-run"))
        from avlog.iso.burn import check_burner

        check_burner(burn)
    progress = None if as_json else render.RichPhaseProgress()
    with _closing(_open(ctx)) as c:
        try:
            report = archive.burn_iso(
                c,
                media=media,
                out=out,
                dry_run=dry_run,
                case=case,
                flag_reason=flag_reason,
                clips=clip,
                evidence_for=evidence_for,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.end()
        burned: dict[str, Any] = {}
        burn_error: AvlogError | None = None
        if burn is not None and report.discs:
            burned, burn_error = _burn_all(c, report, burn, as_json)
        tz = c.settings.tz
    if as_json:
        render.emit_json(
            {
                "dry_run": report.dry_run,
                "media": report.medium.name,
                "capacity_bytes": report.medium.bytes,
                "selected": len(report.selected),
                "evidence_for": report.evidence_case,
                "discs": [
                    {
                        "path": str(d.path) if d.path else None,
                        "volume_id": d.volume_id,
                        "media": d.media,
                        "bytes": d.image_bytes,
                        "sha256": d.sha256,
                        "blake3": d.blake3,
                        "clips": d.clip_ids,
                        "payload_bytes": d.payload_bytes,
                        "free_bytes": d.free_bytes,
                        "verified": d.verified,
                        "burned": burned.get(d.volume_id),
                    }
                    for d in report.discs
                ],
                "still_needing_copies": report.still_needing,
                "failure": report.failure,
                "interrupted": report.interrupted,
            }
        )
    else:
        _print_report(report, burned, tz)
    if report.interrupted:
        raise KeyboardInterrupt  # after the report of the discs made: exit 130, "interrupted"
    if burn_error is not None:
        # The images stand, recorded and verified; the burn (or its read-back) is what failed.
        kind = IntegrityError if isinstance(burn_error, IntegrityError) else PartialFailure
        raise kind(_("images made, but burning stopped: {reason}").format(reason=burn_error))
    if report.failure:
        raise PartialFailure(
            _("stopped after {n} disc(s): {reason}").format(n=len(report.discs), reason=report.failure)
        )


def _burn_all(c: Any, report: Any, device: str, as_json: bool) -> tuple[dict[str, Any], AvlogError | None]:
    """Burn the run's discs one after the other; between two, ask for a blank disc when someone is there.
    The first failure stops the burning and is returned, so the report of the images made is still shown."""
    from avlog import render

    results: dict[str, Any] = {}
    for n, disc in enumerate(report.discs):
        if n and not (sys.stdin.isatty() and not as_json):
            render.log(
                _("{n} more disc(s) to burn ({vols}); burn each with: avlog disc burn VOLUME_ID DEVICE").format(
                    n=len(report.discs) - n, vols=", ".join(d.volume_id for d in report.discs[n:])
                )
            )
            break
        if n:
            typer.prompt(
                visible(
                    _("Put a blank disc for {vol} in {device} and press Enter").format(
                        vol=disc.volume_id, device=device
                    )
                ),
                default="",
                show_default=False,
            )
        try:
            results[disc.volume_id] = _burn_one(c, disc.volume_id, device, as_json)
        except AvlogError as exc:
            results[disc.volume_id] = {"device": device, "verified": False, "error": str(exc)}
            return results, exc
    return results, None


def _burn_one(c: Any, ref: str, device: str, as_json: bool) -> Any:
    from avlog import render
    from avlog.iso import registry
    from avlog.iso.burn import burn, check_device, read_path
    from avlog.iso.check import verify_disc

    check_device(device)
    disc = registry.resolve(c, ref)
    image = Path(disc["image_path"])
    if not image.exists():
        raise UsageError(_("the image of {vol} is no longer at {path}").format(vol=disc["volume_id"], path=image))
    if not as_json:
        render.log(_("burning {vol} to {device} …").format(vol=disc["volume_id"], device=device))
    burn(image, device)
    progress = None if as_json else render.RichPhaseProgress()
    try:
        check = verify_disc(c, str(read_path(device)), progress=progress)
    finally:
        if progress is not None:
            progress.end()
    if check.volume_id != disc["volume_id"]:
        raise IntegrityError(
            _("the disc in {device} reads as {found}, not {vol}").format(
                device=device, found=check.volume_id, vol=disc["volume_id"]
            )
        )
    if not check.ok:
        raise IntegrityError(
            _("the burned disc {vol} differs: {details}").format(
                vol=disc["volume_id"], details="; ".join(b["problem_text"] for b in check.bad[:3])
            )
        )
    on_drive = check.medium == "disc"
    if not on_drive:
        # Written to a file (stdio:PATH): a copy of the image, not a disc; it proves the write, nothing more.
        registry.mark(c, str(disc["id"]), burned=True, note=_("written to {device}").format(device=device))
    if not as_json:
        if on_drive:
            message = _("{vol}: burned to {device} and read back without a difference; it counts as a copy")
        else:
            message = _("{vol}: written to the file {device} and read back; a file is not a disc and does not count")
        render.log(message.format(vol=disc["volume_id"], device=device))
    return {"device": device, "verified": True}


def _print_report(report: Any, burned: dict[str, Any], tz: Any) -> None:
    from rich.table import Table

    from avlog import render

    if not report.discs:
        render.out.print(_("No clip needs a disc now."))
        return
    title = _("Plan for {media} discs (nothing written)") if report.dry_run else _("Disc images written ({media})")
    table = Table(title=title.format(media=report.medium.name))
    table.add_column(_("disc"), no_wrap=True)
    table.add_column(_("clips"), justify="right")
    table.add_column(_("payload"), justify="right")
    table.add_column(_("image"), justify="right")
    table.add_column(_("free"), justify="right")
    table.add_column(_("path") if not report.dry_run else _("clip ids"), overflow="fold")  # whole, to burn
    for d in report.discs:
        table.add_row(
            d.volume_id,
            str(len(d.clip_ids)),
            render.human_size(d.payload_bytes),
            render.human_size(d.image_bytes),
            render.human_size(d.free_bytes),
            str(d.path) if d.path else _ids(d.clip_ids),
        )
    render.out.print(table)
    if report.dry_run:
        render.log(
            _("dry run: {n} clip(s) on {d} disc(s); nothing written").format(
                n=len(report.selected), d=len(report.discs)
            )
        )
        return
    if len(burned) == len(report.discs) and all(b.get("verified") for b in burned.values()):
        render.log(_("{d} image(s) written, verified, burned and read back").format(d=len(report.discs)))
    else:
        render.log(
            _("{d} image(s) written and verified; burn each, then: avlog disc verify DEVICE").format(
                d=len(report.discs)
            )
        )
    if report.still_needing:
        render.log(
            _(
                "{n} clip(s) need another copy (retention.disc_copies); run avlog burn-iso again for the "
                "copy kept in another place"
            ).format(n=len(report.still_needing))
        )


def _ids(ids: list[int]) -> str:
    text = ", ".join(str(i) for i in ids[:12])
    return text + (f" … (+{len(ids) - 12})" if len(ids) > 12 else "")


@disc_app.command(
    "list",
    help=_("Every disc: its state, where it is kept, and its last read-back."),
    epilog=_examples("avlog disc list", "avlog disc list --json"),
)
def disc_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    from rich.table import Table

    from avlog import render
    from avlog.iso import registry

    with _closing(_open(ctx)) as c:
        rows = registry.discs(c)
        tz = c.settings.tz
    if as_json:
        render.emit_json({"discs": [_disc_json(r, tz) for r in rows]})
        return
    if not rows:
        render.out.print(_("No discs yet. Make some with: avlog burn-iso"))
        return
    table = Table(title=_("Discs"))
    table.add_column(_("volume"), no_wrap=True)
    for col in (_("media"), _("clips"), _("state"), _("counts")):
        table.add_column(col, no_wrap=True)
    table.add_column(_("location"), overflow="fold")
    table.add_column(_("last read-back"))
    for r in rows:
        counts = r["counts"]
        checked = r["disc_verified_at"] or r["image_verified_at"]
        result = r["disc_verify_result"] if r["disc_verified_at"] else r["image_verify_result"]
        table.add_row(
            r["volume_id"] + (" ★" if r["purpose"] == "evidence" else ""),
            r["media"],
            str(r["clip_count"]),
            r["state"],
            _("yes") if counts else _("no"),
            r["location"] or "-",
            f"{render.table_time(checked, tz)[:10]} {result or ''}".strip(),
        )
    if any(r["purpose"] == "evidence" for r in rows):
        table.caption = _("★ evidence disc (Art. 21)")
    render.out.print(table)


@disc_app.command(
    "show",
    help=_("One disc with its clips, hashes, state, location and read-backs."),
    epilog=_examples("avlog disc show AVLOG_2026_0001", "avlog disc show 3 --json"),
)
def disc_show(
    ctx: typer.Context,
    disc: Annotated[
        str,
        typer.Argument(
            metavar="ID", help=_("The disc: its volume id (AVLOG_2026_0001) or row number."), callback=key_text
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    from rich.table import Table

    from avlog import render
    from avlog.iso import registry

    with _closing(_open(ctx)) as c:
        row = registry.resolve(c, disc)
        clips = registry.disc_clips(c, row["id"])
        tz = c.settings.tz
    doc = _disc_json(row, tz, [r["clip_id"] for r in clips])
    if as_json:
        doc["clips"] = [
            {
                "id": r["clip_id"],
                "path": r["path"],
                "size": r["size"],
                "blake3": r["blake3"],
                "sha256": r["sha256"],
                "device_serial": r["device_serial"],
                "original_path": r["original_path"],
                "state": r["clip_state"],
            }
            for r in clips
        ]
        render.emit_json(doc)
        return
    info = Table(show_header=False, title=row["volume_id"])
    info.add_column(style="bold", no_wrap=True)
    info.add_column(overflow="fold")  # hashes and paths whole: they are compared and copied
    for key in (
        "media",
        "purpose",
        "state",
        "counts_as_copy",
        "location",
        "path",
        "bytes",
        "sha256",
        "blake3",
        "created_at",
        "created_by",
        "burned_at",
        "image_verified_at",
        "image_verify_result",
        "disc_verified_at",
        "disc_verify_result",
        "reasons",
        "cases",
    ):
        value = doc.get(key)
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, bool):
            value = _("yes") if value else _("no")
        info.add_row(_(key), "-" if value in (None, "") else str(value))
    render.out.print(info)
    table = Table(title=_("Clips on {vol}").format(vol=row["volume_id"]))
    table.add_column(_("clip"), no_wrap=True)
    table.add_column(_("path on disc"), overflow="fold")
    for col in (_("size"), _("BLAKE3"), _("in store")):
        table.add_column(col, no_wrap=True)
    for r in clips:
        table.add_row(str(r["clip_id"]), r["path"], render.human_size(r["size"]), r["blake3"][:16], r["clip_state"])
    render.out.print(table)


@disc_app.command(
    "verify",
    help=_(
        "Read an image or a disc back and compare every clip with the catalog, the image's own hash with the "
        "one recorded when it was made, and the bag's files with its manifests. ID|IMAGE|DEVICE is a disc of the "
        "registry (its id or volume id: its image file), an image file, or a drive (/dev/sr0). A disc read "
        "back without a difference from a drive counts as a verified copy. A disc this store did not make "
        "is compared with its own catalog.json. Exit 3 on any difference."
    ),
    short_help=_("Read an image or a disc back and compare every clip (exit 3 on a difference)."),
    epilog=_examples(
        "avlog disc verify /dev/sr0",
        "avlog disc verify AVLOG_2026_0001",
        "avlog disc verify /mnt/images/AVLOG_2026_0001.iso --json",
    ),
)
def disc_verify(
    ctx: typer.Context, target: Annotated[str, typer.Argument(metavar="ID|IMAGE|DEVICE")], as_json: JsonOpt = False
) -> None:
    from avlog import render
    from avlog.iso.check import verify_disc

    progress = None if as_json else render.RichPhaseProgress()
    with _closing(_open(ctx)) as c:
        try:
            check = verify_disc(c, target, progress=progress)
        finally:
            if progress is not None:
                progress.end()
    bad = [{k: v for k, v in b.items() if k != "problem_text"} | {"detail": b["problem_text"]} for b in check.bad]
    if as_json:
        render.emit_json(
            {
                "source": check.source,
                "medium": check.medium,
                "volume_id": check.volume_id,
                "known": check.disc is not None,
                "recorded": check.recorded,
                "ok": check.ok,
                "files": check.checked_files,
                "bytes": check.reading.image_bytes if check.reading else None,
                "sha256": check.reading.sha256 if check.reading else None,
                "blake3": check.reading.blake3 if check.reading else None,
                "bad": bad,
            }
        )
    else:
        for b in check.bad:
            render.error_line(b["problem_text"])
        if check.disc is None:
            render.log(
                _("{vol} is not a disc of this store; compared with its own catalog.json and manifests").format(
                    vol=check.volume_id
                )
            )
        elif check.reading is not None and check.reading.is_device and check.medium != "disc":
            render.log(
                _(
                    "{source} is not an optical drive: read as a copy of the image, which does not count "
                    '(discs.read_back_drives = "any" takes every block device as a drive)'
                ).format(source=check.source)
            )
        elif not check.recorded:
            render.log(
                _("{source} is a copy of {vol}'s image, not the registry's; the registry is unchanged").format(
                    source=check.source, vol=check.volume_id
                )
            )
    if not check.ok:
        clips = sorted({str(b["clip_id"]) for b in check.bad if b.get("clip_id") is not None})
        raise IntegrityError(
            _("{vol} ({source}): {n} difference(s){clips}").format(
                vol=check.volume_id,
                source=check.source,
                n=len(check.bad),
                clips=_("; clips {ids}").format(ids=", ".join(clips)) if clips else "",
            )
        )
    if not as_json:
        render.log(
            _("{vol} ({source}, {medium}): {n} files read back, no difference").format(
                vol=check.volume_id, source=check.source, medium=check.medium, n=check.checked_files
            )
        )


@disc_app.command(
    "locate",
    help=_("Which discs hold a clip, where they are kept, and whether each counts as a verified copy."),
    epilog=_examples("avlog disc locate 42", "avlog disc locate 3f9a1c2b --json"),
)
def disc_locate(
    ctx: typer.Context,
    clip: Annotated[str, typer.Argument(metavar="CLIP", callback=key_text)],
    as_json: JsonOpt = False,
) -> None:
    from rich.table import Table

    from avlog import render
    from avlog.iso import registry

    with _closing(_open(ctx)) as c:
        row = c.catalog.resolve_clip(clip)
        rows = registry.locate(c, row["id"])
        tz = c.settings.tz
        need = c.settings.retention.disc_copies
    counted = sum(1 for r in rows if r["counts"])
    if as_json:
        render.emit_json(
            {
                "clip": row["id"],
                "blake3": row["blake3"],
                "copies_counted": counted,
                "copies_required": need,
                "discs": [{**_disc_json(r, tz), "path_on_disc": r["path"]} for r in rows],
            }
        )
        return
    if not rows:
        render.out.print(_("Clip {id} is on no disc.").format(id=row["id"]))
        return
    table = Table(title=_("Discs holding clip {id}").format(id=row["id"]))
    table.add_column(_("volume"), no_wrap=True)
    for col in (_("state"), _("counts")):
        table.add_column(col, no_wrap=True)
    for col in (_("location"), _("path on disc")):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["volume_id"], r["state"], _("yes") if r["counts"] else _("no"), r["location"] or "-", r["path"])
    render.out.print(table)
    render.log(_("clip {id}: {n} of {need} required verified disc copies").format(id=row["id"], n=counted, need=need))


@disc_app.command(
    "mark",
    help=_(
        "Record what happened to a disc: --burned (with --location: where it is kept), a new --location, "
        "--lost or --unreadable (with --note). A lost or unreadable disc no longer counts as a copy, and "
        "burn-iso makes its clips again."
    ),
    epilog=_examples(
        'avlog disc mark AVLOG_2026_0001 --burned --location "archive room B, cabinet 3"',
        'avlog disc mark AVLOG_2026_0001 --location "off-site: district records office"',
        'avlog disc mark AVLOG_2026_0002 --unreadable --note "read errors at 61% in the yearly check"',
    ),
)
def disc_mark(
    ctx: typer.Context,
    disc: Annotated[
        str,
        typer.Argument(
            metavar="ID", help=_("The disc: its volume id (AVLOG_2026_0001) or row number."), callback=key_text
        ),
    ],
    burned: Annotated[bool, typer.Option("--burned", help=_("It has been burned."))] = False,
    location: Annotated[
        str | None,
        typer.Option(
            "--location", metavar="TEXT", help=_("Where it is kept."), show_default=False, callback=stored_text
        ),
    ] = None,
    lost: Annotated[bool, typer.Option("--lost", help=_("It is lost."))] = False,
    unreadable: Annotated[bool, typer.Option("--unreadable", help=_("It no longer reads."))] = False,
    note: Annotated[
        str | None,
        typer.Option("--note", metavar="TEXT", help=_("What happened."), show_default=False, callback=stored_text),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    from avlog import render
    from avlog.iso import registry

    with _closing(_open(ctx)) as c:
        row = registry.mark(c, disc, burned=burned, location=location, lost=lost, unreadable=unreadable, note=note)
        tz = c.settings.tz
    if as_json:
        render.emit_json(_disc_json(row, tz))
        return
    render.log(
        _("{vol}: {state}{where}").format(
            vol=row["volume_id"],
            state=row["state"],
            where=_(", kept at {location}").format(location=row["location"]) if row["location"] else "",
        )
    )
    if row["state"] == "burned" and row["disc_verify_result"] != "ok":
        render.log(_("read the disc back so it counts as a copy: avlog disc verify DEVICE"))


@disc_app.command(
    "burn",
    help=_("Burn a disc's image (again) to a drive with xorriso and read the disc back."),
    epilog=_examples("avlog disc burn AVLOG_2026_0001 /dev/sr0"),
)
def disc_burn(
    ctx: typer.Context,
    disc: Annotated[
        str,
        typer.Argument(
            metavar="ID", help=_("The disc: its volume id (AVLOG_2026_0001) or row number."), callback=key_text
        ),
    ],
    device: Annotated[str, typer.Argument(metavar="DEVICE")],
    as_json: JsonOpt = False,
) -> None:
    from avlog import render

    with _closing(_open(ctx)) as c:
        result = _burn_one(c, disc, device, as_json)
    if as_json:
        render.emit_json(result)
