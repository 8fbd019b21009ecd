"""The retention decision for one clip: keep it (and why), let it become due, or purge it.

Pure, like ``ingest/timeline.py``: no I/O and no clock reads. The sweep gathers
the facts of each clip (its flags, cases, holds and verified discs) from the
catalog, passes the policy, the sweep's ``now`` and the store's time zone, and
acts on the :data:`Decision`.

Rules, first match wins:

1. a purged clip stays purged (``purged_already``);
2. a legal hold that is not released keeps the clip, whatever else says (``hold``);
3. a linked case that is still open keeps it indefinitely (``case_open``, Art. 19: evidence is kept
   as long as the case file);
4. linked closed cases keep it through the latest of their retention ends (``case_retention``);
   a closed case without ``retain_until`` keeps it indefinitely;
5. a flagged clip (Art. 20) that is on fewer verified discs than ``disc_copies`` is kept
   (``flagged_not_on_discs``), the way git-annex's ``numcopies`` refuses to drop the last copies;
   once on enough discs, a flagged clip follows the other rules and may leave the store;
6. ordinary footage is kept ``min_days`` (or its kind's longer period) from the end of its recording
   (``minimum_retention``, Art. 19: at least six months);
7. a clip no rule keeps is ``Due``; it is purged once it has been due for ``grace_days``, and until
   then a flag, case or hold can still rescue it.

Days are local days of the store's time zone. A retention period always ends at a local midnight:
the clip is kept through the whole local day on which its period runs out and released at the start
of the next day. For the minimum retention that last day is the later of the recording end's local
date plus N calendar days and the local date of the moment N × 24 hours after the end (across a
daylight-saving change N calendar days can be an hour short of N × 24 hours). So no clip is released
before N full days have passed, and all clips recorded on one local day are released at the same
moment, whatever the hour, which is what a nightly sweep and a person reading ``ls`` expect. A
closed case keeps its clips through the local day ``retain_until`` (inclusive), and never before
the end of the day it was closed on. The grace period is counted exactly (``grace_days`` × 24 hours
from ``due_since``).

Every time this module returns is an aware datetime in UTC; :func:`explain` shows it in a zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal

from avlog.i18n import _
from avlog.settings import RETENTION_FLOOR_DAYS

#: Art. 20: the reasons footage needs long-term keeping.
FLAG_REASONS: Final = ("dispute", "obstruction", "incident", "other")  # Art. 20 (1)-(4); texts in avlog.marks

#: The clip state that means the object is gone and only the tombstone is left.
PURGED: Final = "purged"

KeepReason = Literal[
    "hold", "case_open", "case_retention", "flagged_not_on_discs", "minimum_retention", "purged_already"
]

#: Every reason a clip is kept, in the order the rules are applied (``purged_already`` first).
KEEP_REASONS: Final[tuple[KeepReason, ...]] = (
    "purged_already",
    "hold",
    "case_open",
    "case_retention",
    "flagged_not_on_discs",
    "minimum_retention",
)

_ONE_DAY: Final = timedelta(days=1)


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {value!r}")


# -- facts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagFact:
    """An Art. 20 flag on the clip."""

    reason: str  # dispute | obstruction | incident | other

    def __post_init__(self) -> None:
        if self.reason not in FLAG_REASONS:
            raise ValueError(f"flag reason must be one of {', '.join(FLAG_REASONS)}, not {self.reason!r}")


@dataclass(frozen=True, slots=True)
class CaseFact:
    """A case the clip is linked to. ``closed_on`` None: the case is open."""

    case_id: str
    closed_on: date | None
    retain_until: date | None  # on a closed case, None keeps its clips indefinitely

    def __post_init__(self) -> None:
        # datetime is a subclass of date; a time of day here would be silently truncated or compared wrongly.
        for name in ("closed_on", "retain_until"):
            if isinstance(getattr(self, name), datetime):
                raise ValueError(f"CaseFact.{name} must be a date, not a datetime")


@dataclass(frozen=True, slots=True)
class HoldFact:
    """A legal hold that covers the clip (directly, through a case or a device and time window).

    The caller decides which holds cover the clip; here only ``released`` matters.
    """

    hold_id: int
    released: bool


@dataclass(frozen=True, slots=True)
class ClipFacts:
    """What the rules need to know about one clip.

    ``recorded_end`` is the end of the recording by the recorder's clock; None when unknown, and then
    the minimum retention runs from ``ingested_at``. A caller that knows the recorder's clock was
    wrong for this clip (an ``implausibly_old`` finding: a reset clock dates a fresh recording years
    back) should pass None too, or the clip would look older than it is.
    ``due_since`` is when a sweep first found the clip due; the sweep clears it when a rule keeps
    the clip again (a rescue), so the next release starts a fresh grace period.
    ``verified_discs`` counts the verified discs that hold this clip.
    """

    clip_id: int
    recorded_end: datetime | None
    ingested_at: datetime
    kind: str
    device_serial: str
    state: str
    due_since: datetime | None
    flags: tuple[FlagFact, ...] = ()
    cases: tuple[CaseFact, ...] = ()
    holds: tuple[HoldFact, ...] = ()
    verified_discs: int = 0

    def __post_init__(self) -> None:
        _require_aware("recorded_end", self.recorded_end)
        _require_aware("ingested_at", self.ingested_at)
        _require_aware("due_since", self.due_since)


def _days(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            _("{name} must be a whole number of at least {minimum}, not {value!r}").format(
                name=name, minimum=minimum, value=value
            )
        )
    return value


@dataclass(frozen=True)
class Policy:
    """The retention policy from ``avlog.toml``, validated when it is made.

    ``kind_min_days`` lengthens the minimum for a kind of recording (``video``, ``audio``,
    ``photo``); it may never shorten it.
    """

    min_days: int
    grace_days: int
    disc_copies: int
    kind_min_days: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Art. 19: footage is kept at least six months; a shorter policy is refused outright.
        _days("min_days", self.min_days, RETENTION_FLOOR_DAYS)
        _days("grace_days", self.grace_days, 0)
        # Art. 20: a flagged clip leaves the store only when it is on discs; zero discs would let it go unkept.
        _days("disc_copies", self.disc_copies, 1)
        for kind, days in self.kind_min_days.items():
            if isinstance(days, bool) or not isinstance(days, int) or days < self.min_days:
                raise ValueError(
                    _(
                        "the minimum retention for {kind} must be a whole number of days, "
                        "at least min_days = {min_days}, not {value!r}: overrides may only lengthen it"
                    ).format(kind=kind, min_days=self.min_days, value=days)
                )
        # A private copy: the validated policy cannot change behind its back.
        object.__setattr__(self, "kind_min_days", MappingProxyType(dict(self.kind_min_days)))

    def days_for(self, kind: str) -> int:
        """The minimum retention in days for a clip of this kind."""
        return self.kind_min_days.get(kind, self.min_days)


# -- decisions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keep:
    """A rule keeps the clip. ``until`` None: indefinitely, or until something changes (a hold released,
    a case closed, discs verified)."""

    reason: KeepReason
    until: datetime | None


@dataclass(frozen=True, slots=True)
class Due:
    """No rule keeps the clip, but it has been due for less than the grace period."""

    since: datetime
    purge_after: datetime


@dataclass(frozen=True, slots=True)
class Purge:
    """No rule keeps the clip and it has been due for at least the grace period."""


Decision = Keep | Due | Purge


@lru_cache(maxsize=8192)
def _start_of_day(day: date, tz: tzinfo) -> datetime:
    """The first instant of the local ``day`` in ``tz``, in UTC.

    Where a zone skips local midnight (daylight saving starting at 00:00), ``fold=0`` reads the
    missing 00:00 with the offset before the change, which is the moment the day begins.
    """
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _kept_through(day: date, tz: tzinfo) -> datetime:
    """The moment a clip kept through the whole local ``day`` is released: the next local midnight."""
    return _start_of_day(day + _ONE_DAY, tz)


def _minimum_end(clip: ClipFacts, policy: Policy, tz: tzinfo) -> datetime:
    """The end of the ordinary minimum retention (Art. 19), at a local midnight."""
    end = clip.recorded_end if clip.recorded_end is not None else clip.ingested_at
    span = timedelta(days=policy.days_for(clip.kind))
    by_calendar = end.astimezone(tz).date() + span
    by_elapsed = (end.astimezone(UTC) + span).astimezone(tz).date()  # UTC: add elapsed time, not wall time
    return _kept_through(max(by_calendar, by_elapsed), tz)


def _closed_cases_end(cases: tuple[CaseFact, ...], tz: tzinfo) -> datetime | None:
    """The latest retention end of closed ``cases``; None when one of them keeps its clips indefinitely."""
    latest: date | None = None
    for case in cases:
        if case.retain_until is None:
            return None
        last_day = case.retain_until
        if case.closed_on is not None and case.closed_on > last_day:
            last_day = case.closed_on  # the case file exists at least until it is closed
        if latest is None or last_day > latest:
            latest = last_day
    assert latest is not None, "called with no cases"
    return _kept_through(latest, tz)


def _needs_discs(clip: ClipFacts, policy: Policy) -> bool:
    # Art. 20: flagged footage is kept for the long term; the store copy may go only once enough
    # verified discs hold it.
    return bool(clip.flags) and clip.verified_discs < policy.disc_copies


def decide(clip: ClipFacts, policy: Policy, now: datetime, tz: tzinfo) -> Decision:
    """What the rules say about ``clip`` at ``now``, with the store's time zone ``tz``.

    The rules are applied in the order the module describes; the first that keeps the clip names the
    reason. A clip no rule keeps is :class:`Due` since ``clip.due_since`` (or since ``now`` when it was
    not due before), and :class:`Purge` once ``grace_days`` have passed since then.
    """
    _require_aware("now", now)
    if clip.state == PURGED:
        return Keep("purged_already", None)
    for hold in clip.holds:
        if not hold.released:
            return Keep("hold", None)
    if clip.cases:
        for case in clip.cases:
            if case.closed_on is None:
                return Keep("case_open", None)
        cases_end = _closed_cases_end(clip.cases, tz)
        if cases_end is None or now < cases_end:
            return Keep("case_retention", cases_end)
    if _needs_discs(clip, policy):
        return Keep("flagged_not_on_discs", None)
    minimum = _minimum_end(clip, policy, tz)
    if now < minimum:
        return Keep("minimum_retention", minimum)
    since = (clip.due_since if clip.due_since is not None else now).astimezone(UTC)
    purge_after = since + timedelta(days=policy.grace_days)
    if now >= purge_after:
        return Purge()
    return Due(since, purge_after)


def retention_end(clip: ClipFacts, policy: Policy, tz: tzinfo) -> datetime | None:
    """Until when the rules keep ``clip``; None: indefinitely, as things stand.

    "As things stand": an unreleased hold, an open case, a closed case without an end, or a flag
    without enough verified discs keep it until that changes. This looks at the rules only, not at
    ``state``: for a purged clip it says when the rules let it go. For a clip that is not purged,
    ``decide`` keeps it exactly while ``now`` is before this moment.
    """
    if any(not hold.released for hold in clip.holds):
        return None
    cases_end: datetime | None = None
    if clip.cases:
        if any(case.closed_on is None for case in clip.cases):
            return None
        cases_end = _closed_cases_end(clip.cases, tz)
        if cases_end is None:
            return None
    if _needs_discs(clip, policy):
        return None
    minimum = _minimum_end(clip, policy, tz)
    return minimum if cases_end is None else max(minimum, cases_end)


def explain(decision: Decision, tz: tzinfo | None = None) -> str:
    """One sentence for people saying what ``decision`` means; times are shown in ``tz`` when given."""

    def when(moment: datetime) -> str:
        return (moment.astimezone(tz) if tz is not None else moment).isoformat(timespec="seconds")

    if isinstance(decision, Purge):
        return _("to be purged: no rule keeps it and its grace period is over")
    if isinstance(decision, Due):
        return _(
            "due since {since}: purged by the first sweep from {purge_after} on, unless a flag, a case or a hold "
            "rescues it first"
        ).format(since=when(decision.since), purge_after=when(decision.purge_after))
    reason, until = decision.reason, decision.until
    if reason == "purged_already":
        return _("purged; its tombstone stays in the catalog")
    if reason == "hold":
        return _("kept: a legal hold covers it until the hold is released")
    if reason == "case_open":
        return _("kept: it is linked to an open case (Art. 19: evidence is kept as long as the case file)")
    if reason == "case_retention" and until is None:
        return _("kept indefinitely: it is linked to a closed case kept without an end date (Art. 19)")
    if reason == "case_retention" and until is not None:
        return _("kept until {until}: the retention of a closed case it is linked to (Art. 19)").format(
            until=when(until)
        )
    if reason == "flagged_not_on_discs":
        return _("kept: flagged for long-term keeping (Art. 20) and not yet on enough verified discs")
    if reason == "minimum_retention" and until is not None:
        return _("kept until {until}: the minimum retention of ordinary footage (Art. 19)").format(until=when(until))
    raise ValueError(f"no explanation for {decision!r}")
