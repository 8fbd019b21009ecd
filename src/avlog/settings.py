"""``STORE/avlog.toml``: settings and policy, read into a validated :class:`Settings`."""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from avlog.errors import SettingsError
from avlog.i18n import _
from avlog.iso.media import MEDIA_NAMES
from avlog.textsafe import refused_character

#: Art. 19: footage is kept at least six months. 183 days covers any six calendar months.
RETENTION_FLOOR_DAYS = 183

#: ``[store] reserve_mb``: its default and the values allowed (MB of 1,048,576 bytes).
RESERVE_MB_DEFAULT = 256
RESERVE_MB_RANGE = (16, 1 << 20)


DEFAULT_TOML = """\
# avlog store settings. Every line is optional; the value shown is the default.
# A misspelt key, a value of the wrong type or out of its range is refused.

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
# A time in a clip's file name that differs from its container's by more than
# this is reported: a wrong clock or a renamed file (Art. 11).
name_time_tolerance_s = 120

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
    name_time_tolerance_s: float = 120.0
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


@dataclass(frozen=True)
class _Number:
    """A numeric key: its default and the range it must lie in (both ends included)."""

    default: float
    low: float
    high: float
    whole: bool = False  # days and copies are whole numbers


#: Every numeric key, its default and its range: a value outside it is refused, never clamped.
NUMBERS: dict[str, dict[str, _Number]] = {
    "store": {
        # Room kept free for the catalog: SQLite's WAL maps its index file, and a full disk there ends the process.
        "reserve_mb": _Number(RESERVE_MB_DEFAULT, RESERVE_MB_RANGE[0], RESERVE_MB_RANGE[1], whole=True),
    },
    "ingest": {
        "gap_tolerance_s": _Number(10, 0, 86400),
        "overlap_tolerance_s": _Number(2, 0, 86400),
        "future_tolerance_s": _Number(300, 0, 86400),
        "implausible_age_days": _Number(365, 1, 36500, whole=True),
        "handover_deadline_hours": _Number(24, 1, 8760),
        "name_time_tolerance_s": _Number(120, 0, 86400),
    },
    "retention": {
        # Art. 19: never under six months; a hundred years is the most anyone keeps ordinary footage.
        "min_days": _Number(RETENTION_FLOOR_DAYS, RETENTION_FLOOR_DAYS, 36500, whole=True),
        "grace_days": _Number(7, 0, 3650, whole=True),
        "disc_copies": _Number(2, 1, 10, whole=True),
    },
}
#: Every section and the keys it may hold; anything else is a misspelling, refused with a suggestion.
SECTIONS: dict[str, tuple[str, ...]] = {
    "store": ("timezone", "organisation", *NUMBERS["store"]),
    "ingest": (*NUMBERS["ingest"], "profile"),
    "retention": (*NUMBERS["retention"], "min_days_by_kind"),
    "discs": ("default_media", "read_back_drives"),
}
PROFILE_KEYS = ("vendor_id", "model_id", "serial_file", "serial_pattern")
RECORDING_KINDS = ("video", "audio", "photo")

#: A settings file is a few hundred bytes; anything this large is not one.
MAX_SETTINGS_BYTES = 1 << 20


def _shown(value: Any) -> str:
    """A value as it would be written in avlog.toml, cut short when long, for a message."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def _unknown(source: str, name: str, known: Sequence[str], where: str) -> SettingsError:
    """A misspelt or unknown key (``where`` is its section) or section (``where`` is empty)."""
    guess = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not where:
        home = [section for section, keys in SECTIONS.items() if name in keys]
        if home:
            return SettingsError(
                _("{source}: {key} belongs in the [{section}] section").format(source=source, key=name, section=home[0])
            )
        if guess:
            return SettingsError(
                _("{source}: unknown section [{name}]; did you mean [{guess}]?").format(
                    source=source, name=name, guess=guess[0]
                )
            )
        return SettingsError(
            _("{source}: unknown section [{name}]; the sections are {names}").format(
                source=source, name=name, names=", ".join(f"[{s}]" for s in known)
            )
        )
    if guess:
        return SettingsError(
            _("{source}: unknown key {key}; did you mean {guess}?").format(
                source=source, key=f"{where}.{name}", guess=f"{where}.{guess[0]}"
            )
        )
    return SettingsError(
        _("{source}: unknown key {key}; [{section}] holds {names}").format(
            source=source, key=f"{where}.{name}", section=where, names=", ".join(known)
        )
    )


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise SettingsError(
            _("{source}: {name} must be a section ([{name}]), not {value}").format(
                source=source, name=name, value=_shown(section)
            )
        )
    for key in section:
        if key not in SECTIONS[name]:
            raise _unknown(source, key, SECTIONS[name], name)
    return section


def _number(section: dict[str, Any], name: str, key: str, source: str) -> float:
    """The value of a numeric key, or its default; anything that is not a finite number in range is refused."""
    spec = NUMBERS[name][key]
    value = section.get(key, spec.default)
    low, high = (int(spec.low), int(spec.high)) if spec.whole else (spec.low, spec.high)
    where = f"{name}.{key}"
    whole_message = _("{source}: {key} = {value} must be a whole number from {low} to {high}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        message = whole_message if spec.whole else _("{source}: {key} = {value} must be a number from {low} to {high}")
        raise SettingsError(message.format(source=source, key=where, value=_shown(value), low=low, high=high))
    if not math.isfinite(value):
        raise SettingsError(
            _("{source}: {key} = {value} is not a finite number; give one from {low} to {high}").format(
                source=source, key=where, value=_shown(value), low=low, high=high
            )
        )
    if spec.whole and not isinstance(value, int):
        raise SettingsError(whole_message.format(source=source, key=where, value=_shown(value), low=low, high=high))
    if where == "retention.min_days" and value < RETENTION_FLOOR_DAYS:
        # Art. 19: a policy that would purge footage younger than six months is refused outright.
        raise SettingsError(
            _(
                "{source}: retention.min_days = {days} is below the legal minimum of {floor} days (six months, Art. 19)"
            ).format(source=source, days=value, floor=RETENTION_FLOOR_DAYS)
        )
    if not low <= value <= high:
        raise SettingsError(
            _("{source}: {key} = {value} is out of range; it must be from {low} to {high}").format(
                source=source, key=where, value=_shown(value), low=low, high=high
            )
        )
    return value


def _text(section: dict[str, Any], name: str, key: str, default: str, source: str) -> str:
    """A text value: a string that shows as it was written (no control or invisible characters)."""
    value = section.get(key, default)
    if not isinstance(value, str):
        raise SettingsError(
            _("{source}: {key} = {value} must be a string in quotes").format(
                source=source, key=f"{name}.{key}", value=_shown(value)
            )
        )
    refused = refused_character(value)
    if refused is not None:
        raise SettingsError(
            _("{source}: {key} holds the control or invisible character {char} at character {position}").format(
                source=source, key=f"{name}.{key}", char=refused.shown, position=refused.position + 1
            )
        )
    return value


def _kind_overrides(table: Any, min_days: int, source: str) -> tuple[tuple[str, int], ...]:
    """``[retention.min_days_by_kind]``: only upward (Art. 19 sets a floor, never a ceiling)."""
    if not isinstance(table, dict):
        raise SettingsError(_("{source}: retention.min_days_by_kind must be a table").format(source=source))
    high = int(NUMBERS["retention"]["min_days"].high)
    overrides = []
    for kind, days in sorted(table.items()):
        if kind not in RECORDING_KINDS:
            raise _unknown(source, kind, RECORDING_KINDS, "retention.min_days_by_kind")
        if isinstance(days, bool) or not isinstance(days, int) or not days <= high:
            raise SettingsError(
                _("{source}: {key} = {value} must be a whole number from {low} to {high}").format(
                    source=source, key=f"retention.min_days_by_kind.{kind}", value=_shown(days), low=min_days, high=high
                )
            )
        if days < min_days:
            raise SettingsError(
                _(
                    "{source}: retention.min_days_by_kind.{kind} = {days} is shorter than retention.min_days "
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
        if isinstance(entry, dict):
            for key in entry:
                if key not in PROFILE_KEYS:
                    raise _unknown(source, key, PROFILE_KEYS, "ingest.profile")
        try:
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise TypeError("not a table of strings")
            profile = VendorProfile(
                vendor_id=entry["vendor_id"].lower(),
                serial_file=entry["serial_file"],
                serial_pattern=entry["serial_pattern"],
                model_id=entry["model_id"].lower() if "model_id" in entry else None,
            )
            if re.compile(profile.serial_pattern).groups < 1:
                raise ValueError("no group")
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise SettingsError(
                _(
                    "{source}: each ingest.profile needs vendor_id, serial_file and a serial_pattern "
                    "with one (group) for the serial, each a string in quotes"
                ).format(source=source)
            ) from exc
        profiles.append(profile)
    return tuple(profiles)


def parse_settings(data: dict[str, Any], source: str = "avlog.toml") -> Settings:
    """Validate the parsed TOML ``data``; raise :class:`SettingsError` naming the first bad value.

    Every section, key and value is checked: an unknown or misspelt one, a value of the wrong type, not a
    finite number or out of its range is refused in one line naming the file, the key and the value, so a
    setting can never be wrong quietly (a misspelt ``min_dayz`` would otherwise leave the default in force).
    """
    for name in data:
        if name not in SECTIONS:
            raise _unknown(source, name, tuple(SECTIONS), "")
    store = _section(data, "store", source)
    ingest = _section(data, "ingest", source)
    retention = _section(data, "retention", source)
    discs = _section(data, "discs", source)
    timezone = _text(store, "store", "timezone", "Asia/Shanghai", source)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            _("{source}: store.timezone = {value} is not a known time zone (example: Asia/Shanghai)").format(
                source=source, value=_shown(timezone)
            )
        ) from exc
    min_days = int(_number(retention, "retention", "min_days", source))
    media = _text(discs, "discs", "default_media", "bd25", source)
    if media not in MEDIA_NAMES:
        raise SettingsError(
            _("{source}: discs.default_media must be one of {names}, not {value}").format(
                source=source, names=", ".join(MEDIA_NAMES), value=_shown(media)
            )
        )
    drives = _text(discs, "discs", "read_back_drives", "optical", source)
    if drives not in ("optical", "any"):
        raise SettingsError(
            _('{source}: discs.read_back_drives must be "optical" or "any", not {value}').format(
                source=source, value=_shown(drives)
            )
        )
    return Settings(
        timezone=timezone,
        organisation=_text(store, "store", "organisation", "", source),
        reserve_mb=int(_number(store, "store", "reserve_mb", source)),
        ingest=IngestSettings(
            gap_tolerance_s=_number(ingest, "ingest", "gap_tolerance_s", source),
            overlap_tolerance_s=_number(ingest, "ingest", "overlap_tolerance_s", source),
            future_tolerance_s=_number(ingest, "ingest", "future_tolerance_s", source),
            implausible_age_days=int(_number(ingest, "ingest", "implausible_age_days", source)),
            handover_deadline_hours=_number(ingest, "ingest", "handover_deadline_hours", source),
            name_time_tolerance_s=_number(ingest, "ingest", "name_time_tolerance_s", source),
            profiles=_profiles(ingest.get("profile", []), source),
        ),
        retention=RetentionSettings(
            min_days=min_days,
            grace_days=int(_number(retention, "retention", "grace_days", source)),
            disc_copies=int(_number(retention, "retention", "disc_copies", source)),
            min_days_by_kind=_kind_overrides(retention.get("min_days_by_kind", {}), min_days, source),
        ),
        default_media=media,
        read_back_drives=drives,
    )


def load_settings(path: Path) -> Settings:
    """Read and validate ``path``. A missing file is an error, never the defaults: a store's retention
    policy (Art. 19, 20) is in it, and a lost policy must not turn silently into another."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        raise SettingsError(
            _(
                "no avlog.toml in {store}: its settings and retention policy are missing; restore it from a "
                "backup, or run `avlog --store {store} init` to write the defaults"
            ).format(store=path.parent)
        ) from None
    except OSError as exc:
        raise SettingsError(_("cannot read {path}: {reason}").format(path=path, reason=exc.strerror)) from exc
    if len(raw) > MAX_SETTINGS_BYTES:
        raise SettingsError(
            _("{path} is larger than {size} MB: not a settings file").format(path=path, size=MAX_SETTINGS_BYTES >> 20)
        )
    try:
        text = raw.decode("utf-8-sig")  # an editor's byte-order mark is no reason to refuse the file
    except UnicodeDecodeError as exc:
        raise SettingsError(
            _("{path} is not valid UTF-8: the byte 0x{byte:02x} at offset {offset}; save it as UTF-8").format(
                path=path, byte=raw[exc.start], offset=exc.start
            )
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(_("{path} is not valid TOML: {reason}").format(path=path, reason=exc)) from exc
    return parse_settings(data, str(path))
