"""The disc registry: which discs exist, which clips each holds, where they are, and how they last read.

A disc's life: ``image`` (an image written and verified, not yet burned) → ``burned`` (written to a
disc; ``--burn`` or ``disc mark --burned``, or found burned by reading it back) → possibly ``lost`` or
``unreadable``. Every change is one transaction with its audit entry.

Two counts matter. A disc *counts* towards a clip's required copies (Art. 20, ``retention.disc_copies``)
only once it is burned and its last read-back of the physical disc found no difference
(:data:`COUNTED_DISC`). A disc *stands* — so ``burn-iso`` does not make the same copy again — while it
is a verified image waiting to be burned or a burned disc whose last read-back found nothing wrong
(:data:`STANDING_DISC`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from avlog.context import Context
from avlog.errors import AvlogError, NotFound, UsageError
from avlog.i18n import _
from avlog.store import anchor
from avlog.store.catalog import MAX_ROW_ID

Row = dict[str, Any]

#: SQL over ``discs d``: the disc counts towards the copies a flagged clip needs before it may leave the store.
#: Evidence discs (Art. 21) are handed over with the case file: they are never the archive's copies.
COUNTED_DISC = "d.purpose = 'archive' AND d.state = 'burned' AND d.disc_verify_result = 'ok'"
#: SQL over ``discs d``: the disc is a copy that exists or is on its way (burn-iso does not make it again).
STANDING_DISC = (
    "d.purpose = 'archive' AND ((d.state = 'image' AND d.image_verify_result = 'ok') "
    "OR (d.state = 'burned' AND COALESCE(d.disc_verify_result, 'ok') = 'ok'))"
)

#: Every disc row comes with ``counts`` (0 or 1): the rule above, evaluated where it is defined.
_SELECT = f"SELECT d.*, ({COUNTED_DISC}) AS counts FROM discs d"

STATES = ("image", "burned", "lost", "unreadable")
_VOLUME_ID = re.compile(r"^AVLOG_(\d{4})_(\d{4,})$")


def volume_id(year: int, seq: int) -> str:
    return f"AVLOG_{year:04d}_{seq:04d}"


def store_id(ctx: Context) -> str:
    """This store's identity on its discs (:func:`avlog.store.anchor.store_id`).

    Two stores number their discs alike (``AVLOG_2026_0001``); this tells their discs apart.
    """
    return anchor.store_id(ctx.catalog.db)


def volume_set_id(ctx: Context) -> str:
    return f"AVLOG_{store_id(ctx)}"


def next_seq(ctx: Context, year: int) -> int:
    row = ctx.catalog.one("SELECT MAX(seq) AS seq FROM discs WHERE year = ?", [year])
    return int(row["seq"] or 0) + 1 if row else 1


def resolve(ctx: Context, ref: str) -> Row:
    """A disc by its catalog id or its volume id (``AVLOG_2026_0001``, any case)."""
    text = ref.strip()
    if text.isascii() and text.isdigit():  # ASCII only: int() reads "٣" as 3 and refuses "²"
        if not 1 <= int(text) <= MAX_ROW_ID:
            raise UsageError(
                _("disc numbers run from 1 to {max}, not {ref}; or give its volume id").format(max=MAX_ROW_ID, ref=ref)
            )
        row = ctx.catalog.one(f"{_SELECT} WHERE d.id = ?", [int(text)])
    else:
        row = ctx.catalog.one(f"{_SELECT} WHERE d.volume_id = ?", [text.upper()])
    if row is None:
        raise NotFound(_("no disc {ref} in the registry; see: avlog disc list").format(ref=ref))
    return row


def by_volume_id(ctx: Context, vol: str) -> Row | None:
    return ctx.catalog.one(f"{_SELECT} WHERE d.volume_id = ?", [vol.strip().upper()])


def discs(ctx: Context) -> list[Row]:
    return ctx.catalog.query(f"{_SELECT} ORDER BY d.year, d.seq")


def disc_clips(ctx: Context, disc_id: int) -> list[Row]:
    return ctx.catalog.query(
        "SELECT l.*, c.device_serial, c.original_path, c.state AS clip_state FROM disc_clips l "
        "JOIN clips c ON c.id = l.clip_id WHERE l.disc_id = ? ORDER BY l.path",
        [disc_id],
    )


def locate(ctx: Context, clip_id: int) -> list[Row]:
    """The discs holding a clip, with whether each counts towards its copies."""
    return ctx.catalog.query(
        f"SELECT d.*, l.path, ({COUNTED_DISC}) AS counts FROM disc_clips l JOIN discs d ON d.id = l.disc_id "
        "WHERE l.clip_id = ? ORDER BY d.year, d.seq",
        [clip_id],
    )


def standing_copies(ctx: Context) -> dict[int, int]:
    """Per clip, the discs that stand (see the module's docstring)."""
    return {
        r["clip_id"]: r["n"]
        for r in ctx.catalog.query(
            "SELECT l.clip_id, COUNT(DISTINCT l.disc_id) AS n FROM disc_clips l JOIN discs d ON d.id = l.disc_id "
            f"WHERE {STANDING_DISC} GROUP BY l.clip_id"
        )
    }


def add_disc(ctx: Context, disc: Row, clips: list[Row]) -> int:
    """Record a verified image and its clips; call inside ``ctx.catalog.change()``."""
    disc_id = ctx.catalog.insert("discs", disc)
    assert isinstance(disc_id, int)
    for c in clips:
        ctx.catalog.insert("disc_clips", {**c, "disc_id": disc_id})
    ctx.catalog.audit(
        "disc.add",
        f"disc:{disc['volume_id']}",
        {
            "media": disc["media"],
            "purpose": disc["purpose"],
            "image_sha256": disc["image_sha256"],
            "image_blake3": disc["image_blake3"],
            "image_bytes": disc["image_bytes"],
            "clips": sorted(c["clip_id"] for c in clips),
        },
    )
    return disc_id


def mark(
    ctx: Context,
    ref: str,
    *,
    burned: bool = False,
    location: str | None = None,
    lost: bool = False,
    unreadable: bool = False,
    note: str | None = None,
) -> Row:
    """Record what happened to a disc: burned (and where it is kept), moved, lost or unreadable."""
    if sum((burned, lost, unreadable)) > 1:
        raise UsageError(_("give one of --burned, --lost and --unreadable"))
    if not (burned or lost or unreadable or location is not None):
        raise UsageError(_("say what happened: --burned, --location, --lost or --unreadable"))
    if (lost or unreadable) and not note:
        raise UsageError(_("--note is required for --lost and --unreadable: say what happened"))
    with ctx.catalog.change():
        disc = resolve(ctx, ref)
        changes: dict[str, Any] = {}
        if burned:
            if disc["state"] in ("lost", "unreadable"):
                raise AvlogError(
                    _(
                        "disc {vol} is recorded as {state}; if it has turned up, read it back with "
                        "avlog disc verify DEVICE (a disc that reads well is burned again)"
                    ).format(vol=disc["volume_id"], state=disc["state"])
                )
            if disc["state"] == "image":
                changes.update(state="burned", burned_at=ctx.catalog.now(), burned_by=ctx.actor)
        if lost:
            changes["state"] = "lost"
        if unreadable:
            changes["state"] = "unreadable"
        if location is not None:
            if not location.strip():
                raise UsageError(_("--location must say where the disc is kept"))
            changes["location"] = location.strip()
        if changes:
            ctx.catalog.update("discs", disc["id"], changes)
        ctx.catalog.audit(
            "disc.mark",
            f"disc:{disc['volume_id']}",
            {"before": disc["state"], **{k: v for k, v in changes.items() if k != "burned_by"}, "note": note},
        )
    return resolve(ctx, str(disc["id"]))


def record_verification(ctx: Context, disc: Row, *, medium: str, source: str, result: str, bad: list[Row]) -> Row:
    """Record a read-back: ``medium`` is ``image`` (an image file) or ``disc`` (a physical disc or drive).

    A physical disc that reads back without a difference is burned, whatever the registry said (a disc
    marked lost or unreadable that turns up and reads well is burned again): its state follows.
    """
    at = ctx.catalog.now()
    with ctx.catalog.change():
        fresh = resolve(ctx, str(disc["id"]))
        changes: dict[str, Any] = {f"{medium}_verified_at": at, f"{medium}_verify_result": result}
        if medium == "disc" and result == "ok" and fresh["state"] != "burned":
            changes["state"] = "burned"
            if not fresh["burned_at"]:
                changes.update(burned_at=at, burned_by=ctx.actor)
        ctx.catalog.update("discs", fresh["id"], changes)
        ctx.catalog.audit(
            "disc.verify",
            f"disc:{fresh['volume_id']}",
            {"medium": medium, "source": source, "result": result, "bad": bad, "state": changes.get("state")},
            at=at,
        )
    return resolve(ctx, str(disc["id"]))


def reasons(disc: Row) -> dict[str, Any]:
    return json.loads(disc["reasons"]) if disc.get("reasons") else {}


def parse_volume_id(text: str) -> tuple[int, int] | None:
    match = _VOLUME_ID.match(text.strip().upper())
    return (int(match.group(1)), int(match.group(2))) if match else None
