"""Plug-in ingest: which registered recorder an attached card belongs to, and reading it.

A recorder is known by its USB serial (``ID_SERIAL_SHORT``), or, for vendors
configured in ``avlog.toml`` (``[[ingest.profile]]``), by a serial written in a
file on its card. Unknown devices are never ingested without being asked (Art. 5, 16).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from avlog.context import Context
from avlog.errors import SourceError
from avlog.i18n import _
from avlog.ingest.clearing import ClearRefused, clear_card
from avlog.ingest.devices import AttachedDevice, still_attached
from avlog.ingest.pipeline import ingest
from avlog.ingest.report import IngestProgress, IngestReport
from avlog.ingest.sources import CardImageSource, FolderSource, Source
from avlog.settings import VendorProfile

SERIAL_FILE_LIMIT = 64 << 10


@dataclass(frozen=True)
class Identified:
    device: AttachedDevice
    serial: str | None  # None: no serial could be found at all
    how: str | None  # usb | card-file | given
    registered: dict[str, Any] | None  # the devices row, when registered

    @property
    def custodian(self) -> str | None:
        return self.registered["custodian"] if self.registered else None


def open_card(device: AttachedDevice, tz: tzinfo) -> Source:
    """Through the mount point when the card is mounted, else the raw device node, read-only."""
    if device.mount is not None:
        return FolderSource(Path(device.mount.path))
    return CardImageSource(Path(device.node), tz)


def _profile_for(device: AttachedDevice, profiles: tuple[VendorProfile, ...]) -> VendorProfile | None:
    for profile in profiles:
        if profile.vendor_id == (device.vendor_id or "").lower() and profile.model_id in (
            None,
            (device.model_id or "").lower(),
        ):
            return profile
    return None


def serial_from_card(source: Source, profile: VendorProfile) -> str | None:
    """The serial a recorder wrote into ``profile.serial_file`` on its card, if any."""
    wanted = profile.serial_file.strip("/").lower()
    for entry in source.entries():
        if entry.path.lower() == wanted and not entry.special and entry.error is None:
            try:
                with source.open(entry) as f:
                    text = f.read(SERIAL_FILE_LIMIT).decode("utf-8", "replace")
            except (OSError, EOFError) as exc:
                raise SourceError(
                    _("cannot read {file} on the card: {reason}").format(file=entry.path, reason=exc)
                ) from exc
            match = re.search(profile.serial_pattern, text)
            return match.group(1).strip() if match else None
    return None


def identify(ctx: Context, device: AttachedDevice, serial: str | None = None) -> Identified:
    """Which registered device this is: ``serial`` if given, by card file for profiled vendors, else by USB serial."""
    if serial:
        return Identified(device, serial, "given", ctx.catalog.device(serial))
    profile = _profile_for(device, ctx.settings.ingest.profiles)
    if profile is not None:
        source = open_card(device, ctx.settings.tz)
        try:
            serial = serial_from_card(source, profile)
        finally:
            source.close()
        if serial:
            return Identified(device, serial, "card-file", ctx.catalog.device(serial))
    if device.usb_serial:
        return Identified(device, device.usb_serial, "usb", ctx.catalog.device(device.usb_serial))
    return Identified(device, None, None, None)


@dataclass
class AttachedOutcome:
    report: IngestReport
    cleared: list[str]
    refused: ClearRefused | None
    left: list[str] = field(default_factory=list)  # files the run listed that are not in the store: kept on the card


def ingest_and_clear(
    ctx: Context,
    source: Source,
    serial: str,
    *,
    allow_unregistered: bool = False,
    clear: bool = False,
    confirmed: bool = False,
    progress: IngestProgress | None = None,
    plugged_at: datetime | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> AttachedOutcome:
    """Ingest an open card; then clear it when asked and when it is safe. The caller closes ``source``."""
    report = ingest(
        ctx,
        source,
        serial,
        allow_unregistered=allow_unregistered,
        progress=progress,
        plugged_at=plugged_at,
        should_stop=should_stop,
    )
    cleared: list[str] = []
    left: list[str] = []
    refused = None
    if clear and report.items:
        try:
            done = clear_card(ctx, source, report, confirmed=confirmed)
            cleared, left = done.deleted, done.left
        except ClearRefused as exc:
            refused = exc
    return AttachedOutcome(report, cleared, refused, left)


def ingest_attached(
    ctx: Context,
    identity: Identified,
    *,
    allow_unregistered: bool = False,
    clear: bool = False,
    confirmed: bool = False,
    progress: IngestProgress | None = None,
    plugged_at: datetime | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> AttachedOutcome:
    """Ingest one attached recorder's card; clear it afterwards when asked and when it is safe."""
    assert identity.serial is not None
    source = open_card(identity.device, ctx.settings.tz)
    try:
        if identity.device.seen_at is not None and not still_attached(identity.device):
            raise SourceError(
                _("{node} is no longer the device that was plugged in; it was left alone").format(
                    node=identity.device.node
                )
            )
        return ingest_and_clear(
            ctx,
            source,
            identity.serial,
            allow_unregistered=allow_unregistered,
            clear=clear,
            confirmed=confirmed,
            progress=progress,
            plugged_at=plugged_at,
            should_stop=should_stop,
        )
    finally:
        source.close()
