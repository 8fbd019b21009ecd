"""``STORE/avlog.toml``: settings and policy, read into a validated :class:`Settings`."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from avlog.errors import SettingsError
from avlog.i18n import _
from avlog.iso.media import MEDIA_NAMES

#: Art. 19: footage is kept at least six months. 183 days covers any six calendar months.
RETENTION_FLOOR_DAYS = 183

#: ``[store] reserve_mb``: its default and the values allowed (MB of 1,048,576 bytes).
RESERVE_MB_DEFAULT = 256
RESERVE_MB_RANGE = (16, 1 << 20)


DEFAULT_TOML = """\
# avlog store settings. Every line is optional; the value shown is the default.

[store]
# Time zone for camera timestamps that carry none, and for "same day" rules.
timezone = "Asia/Shanghai"
# Organisation named in reports and on discs.
organisation = ""
# Room kept free on the store's disk for the catalog, in MB (16 to 1048576): an ingest or
# a burn-iso that would leave less free is refused; flags, cases and holds may still use it.
reserve_mb = 256

[ingest]
# A pause between two consecutive clips of one device longer than this is
# reported as a gap (Art. 14: no intermittent recording without reason).
gap_tolerance_s = 10
# Clips of one device that overlap by more than this are reported.
overlap_tolerance_s = 2
# A clip that starts more than this after the host's clock is "in the future".
future_tolerance_s = 300
# A clip recorded longer ago than this is "implausibly old" (a reset clock, Art. 11).
implausible_age_days = 365
# Art. 18: footage is handed over the same day; in remote or continuous work
# within this many hours of the end of the recording.
handover_deadline_hours = 24

# Recorders that expose no USB serial (or a shared one) name themselves in a file
# on their card. One [[ingest.profile]] per vendor (USB vendor id, optional model id):
# [[ingest.profile]]
# vendor_id = "1d6b"
# serial_file = "DEVICE.INI"
# serial_pattern = 'serial=(\\S+)'

[retention]
# Art. 19: ordinary footage is kept at least 183 days (six months) from the end
# of its recording. A smaller value is refused.
min_days = 183
# Days a clip stays "due" before a sweep purges it; it can still be rescued then.
grace_days = 7
# Verified discs a flagged clip must be on before its store copy may go (Art. 20).
disc_copies = 2

# Longer minimums for some kinds of recording (video, audio, photo); only upward:
# [retention.min_days_by_kind]
# audio = 365

[discs]
# Default disc media for burn-iso: cd, dvd, dvd-dl, bd25, bd50 or bd100.
default_media = "bd25"
# A disc counts as a copy once read back from a drive without a difference. Only optical drives
# are taken as drives; "any" takes every block device (a disc duplicator that shows as a disk).
read_back_drives = "optical"
"""


@dataclass(frozen=True)
class VendorProfile:
    """Where a recorder of this vendor (and model) writes its serial number on its card."""

    vendor_id: str
    serial_file: str
    serial_pattern: str
    model_id: str | None = None


@dataclass(frozen=True)
class IngestSettings:
    gap_tolerance_s: float = 10.0
    overlap_tolerance_s: float = 2.0
    future_tolerance_s: float = 300.0
    implausible_age_days: int = 365
    handover_deadline_hours: float = 24.0
    profiles: tuple[VendorProfile, ...] = ()


@dataclass(frozen=True)
class RetentionSettings:
    min_days: int = RETENTION_FLOOR_DAYS
    grace_days: int = 7
    disc_copies: int = 2
    #: Longer minimums for some kinds of recording (video, audio, photo); never shorter than min_days.
    min_days_by_kind: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Settings:
    timezone: str = "Asia/Shanghai"
    organisation: str = ""
    #: Free space (MB) on the store's disk that new ingests and disc images leave for the catalog.
    reserve_mb: int = RESERVE_MB_DEFAULT
    ingest: IngestSettings = IngestSettings()
    retention: RetentionSettings = RetentionSettings()
    default_media: str = "bd25"
    read_back_drives: str = "optical"  # optical | any

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _number(section: dict[str, Any], key: str, default: float, where: str, *, minimum: float = 0) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise SettingsError(
            _("{where}.{key} must be a number of at least {minimum}, not {value!r}").format(
                where=where, key=key, minimum=minimum, value=value
            )
        )
    return value


RECORDING_KINDS = ("video", "audio", "photo")


def _kind_overrides(table: Any, min_days: int, source: str) -> tuple[tuple[str, int], ...]:
    """``[retention.min_days_by_kind]``: only upward (Art. 19 sets a floor, never a ceiling)."""
    if not isinstance(table, dict):
        raise SettingsError(_("{source}: retention.min_days_by_kind must be a table").format(source=source))
    overrides = []
    for kind, days in sorted(table.items()):
        if kind not in RECORDING_KINDS:
            raise SettingsError(
                _("{source}: retention.min_days_by_kind: {kind!r} is not one of {kinds}").format(
                    source=source, kind=kind, kinds=", ".join(RECORDING_KINDS)
                )
            )
        if isinstance(days, bool) or not isinstance(days, int) or days < min_days:
            raise SettingsError(
                _(
                    "{source}: retention.min_days_by_kind.{kind} = {days!r} is shorter than retention.min_days "
                    "({min}); overrides may only keep recordings longer"
                ).format(source=source, kind=kind, days=days, min=min_days)
            )
        overrides.append((kind, days))
    return tuple(overrides)


def _profiles(entries: Any, source: str) -> tuple[VendorProfile, ...]:
    if not isinstance(entries, list):
        raise SettingsError(_("{source}: ingest.profile must be a list of tables").format(source=source))
    profiles = []
    for entry in entries:
        try:
            profile = VendorProfile(
                vendor_id=str(entry["vendor_id"]).lower(),
                serial_file=str(entry["serial_file"]),
                serial_pattern=str(entry["serial_pattern"]),
                model_id=str(entry["model_id"]).lower() if "model_id" in entry else None,
            )
            if re.compile(profile.serial_pattern).groups < 1:
                raise ValueError("no group")
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise SettingsError(
                _(
                    "{source}: each ingest.profile needs vendor_id, serial_file and a serial_pattern "
                    "with one (group) for the serial"
                ).format(source=source)
            ) from exc
        profiles.append(profile)
    return tuple(profiles)


def parse_settings(data: dict[str, Any], source: str = "avlog.toml") -> Settings:
    """Validate the parsed TOML ``data``; raise :class:`SettingsError` naming the first bad value."""
    store = data.get("store", {})
    ingest = data.get("ingest", {})
    retention = data.get("retention", {})
    discs = data.get("discs", {})
    timezone = store.get("timezone", "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise SettingsError(_("{source}: unknown time zone {tz!r}").format(source=source, tz=timezone)) from exc
    min_days = int(_number(retention, "min_days", RETENTION_FLOOR_DAYS, "retention"))
    if min_days < RETENTION_FLOOR_DAYS:
        # Art. 19: a policy that would purge footage younger than six months is refused outright.
        raise SettingsError(
            _(
                "{source}: retention.min_days = {days} is below the legal minimum of {floor} days (six months, Art. 19)"
            ).format(source=source, days=min_days, floor=RETENTION_FLOOR_DAYS)
        )
    media = discs.get("default_media", "bd25")
    if media not in MEDIA_NAMES:
        raise SettingsError(
            _("{source}: discs.default_media must be one of {names}, not {value!r}").format(
                source=source, names=", ".join(MEDIA_NAMES), value=media
            )
        )
    return Settings(
        timezone=timezone,
        organisation=str(store.get("organisation", "")),
        reserve_mb=_reserve_mb(store.get("reserve_mb", RESERVE_MB_DEFAULT), source),
        ingest=IngestSettings(
            gap_tolerance_s=_number(ingest, "gap_tolerance_s", 10, "ingest"),
            overlap_tolerance_s=_number(ingest, "overlap_tolerance_s", 2, "ingest"),
            future_tolerance_s=_number(ingest, "future_tolerance_s", 300, "ingest"),
            implausible_age_days=int(_number(ingest, "implausible_age_days", 365, "ingest", minimum=1)),
            handover_deadline_hours=_number(ingest, "handover_deadline_hours", 24, "ingest", minimum=1),
            profiles=_profiles(ingest.get("profile", []), source),
        ),
        retention=RetentionSettings(
            min_days=min_days,
            grace_days=int(_number(retention, "grace_days", 7, "retention")),
            disc_copies=int(_number(retention, "disc_copies", 2, "retention", minimum=1)),
            min_days_by_kind=_kind_overrides(retention.get("min_days_by_kind", {}), min_days, source),
        ),
        default_media=media,
        read_back_drives=_drives(discs.get("read_back_drives", "optical"), source),
    )


def _reserve_mb(value: Any, source: str) -> int:
    """``[store] reserve_mb``: a whole number of MB; the floor keeps room for SQLite's WAL and its index."""
    low, high = RESERVE_MB_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(
            _("{source}: store.reserve_mb must be a whole number of MB from {low} to {high}, not {value}").format(
                source=source, low=low, high=high, value=value
            )
        )
    return value


def _drives(value: Any, source: str) -> str:
    if value not in ("optical", "any"):
        raise SettingsError(
            _('{source}: discs.read_back_drives must be "optical" or "any", not {value!r}').format(
                source=source, value=value
            )
        )
    return str(value)


def load_settings(path: Path) -> Settings:
    """Read and validate ``path``; a missing file means the defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise SettingsError(_("cannot read {path}: {reason}").format(path=path, reason=exc.strerror)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(_("{path} is not valid TOML: {reason}").format(path=path, reason=exc)) from exc
    return parse_settings(data, str(path))
