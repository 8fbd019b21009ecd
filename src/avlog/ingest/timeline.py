"""Pure checks over a device's clips: gaps, overlaps, implausible times, late handover, file names whose
time disagrees with the container's.

No I/O and no clock reads: the caller passes the clips, the ingest time and
the settings, so the rules are tested on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from avlog.settings import IngestSettings

CONTINUOUS_KINDS = frozenset({"video", "audio"})


@dataclass(frozen=True)
class ClipTimes:
    id: int
    blake3: str
    kind: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Finding:
    kind: str  # gap | overlap | future | implausibly_old | late_handover | clock_* | name_time_mismatch
    clip_id: int
    other_clip_id: int | None = None
    seconds: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def continuity(clips: Sequence[ClipTimes], *, gap_tolerance_s: float, overlap_tolerance_s: float) -> list[Finding]:
    """Gaps and overlaps between consecutive recordings of one device (Art. 14), per kind.

    Photos are instants, not recordings of a stretch of time, and two names for
    the same content are one recording; neither takes part.
    """
    findings: list[Finding] = []
    first_of_content: dict[str, ClipTimes] = {}
    for c in sorted(clips, key=lambda c: c.id):
        first_of_content.setdefault(c.blake3, c)
    distinct = list(first_of_content.values())
    for kind in sorted(CONTINUOUS_KINDS):  # a camera's video and a recorder's audio are separate streams
        timed = sorted(
            (c for c in distinct if c.kind == kind and c.start is not None and c.end is not None),
            key=lambda c: (c.start, c.id),
        )
        findings.extend(_continuity_of(timed, gap_tolerance_s, overlap_tolerance_s))
    return findings


def _continuity_of(timed: list[ClipTimes], gap_tolerance_s: float, overlap_tolerance_s: float) -> list[Finding]:
    findings: list[Finding] = []
    reach: ClipTimes | None = None  # the clip that recorded furthest so far
    for clip in timed:
        assert clip.start is not None and clip.end is not None
        if reach is not None and reach.end is not None:
            pause = (clip.start - reach.end).total_seconds()
            if pause > gap_tolerance_s:
                findings.append(Finding("gap", clip.id, reach.id, pause))
            elif -pause > overlap_tolerance_s:
                findings.append(Finding("overlap", clip.id, reach.id, -pause))
        if reach is None or reach.end is None or clip.end > reach.end:
            reach = clip
    return findings


def plausibility(
    clips: Sequence[ClipTimes], *, ingested_at: datetime, settings: IngestSettings, tz: tzinfo
) -> list[Finding]:
    """Clips dated in the future or implausibly long ago (a wrong clock, Art. 11), and late handover (Art. 18)."""
    findings: list[Finding] = []
    oldest_plausible = ingested_at - timedelta(days=settings.implausible_age_days)
    latest_plausible = ingested_at + timedelta(seconds=settings.future_tolerance_s)
    for clip in clips:
        if clip.start is None:
            continue
        if clip.start > latest_plausible:
            findings.append(Finding("future", clip.id, seconds=(clip.start - ingested_at).total_seconds()))
            continue
        if clip.start < oldest_plausible:
            findings.append(Finding("implausibly_old", clip.id, seconds=(ingested_at - clip.start).total_seconds()))
            continue
        end = clip.end or clip.start
        # Art. 18: handed over on the day of recording; within the deadline when work ran remote or late.
        if end.astimezone(tz).date() < ingested_at.astimezone(tz).date():
            hours = (ingested_at - end).total_seconds() / 3600
            findings.append(
                Finding(
                    "late_handover",
                    clip.id,
                    seconds=hours * 3600,
                    detail={
                        "recording_day": end.astimezone(tz).date().isoformat(),
                        "hours_after_end": round(hours, 1),
                        "over_deadline": hours > settings.handover_deadline_hours,
                    },
                )
            )
    return findings


def name_time_findings(
    clips: Sequence[ClipTimes], name_times: Mapping[int, datetime], *, tolerance_s: float, tz: tzinfo
) -> list[Finding]:
    """Clips whose file name holds a time more than ``tolerance_s`` away from their start (Art. 11).

    ``name_times`` maps a clip id to the time its file name holds, for the clips whose start came from
    their container. A camera writes both from one clock at one moment, so a difference means its clock
    was changed between the two (or the time zone it names files in is not the store's), or the file
    was renamed: either way the times of the recording need checking. ``seconds`` is the difference;
    the detail gives both times in the store's zone ``tz``.
    """
    findings: list[Finding] = []
    for clip in clips:
        named = name_times.get(clip.id)
        if named is None or clip.start is None:
            continue
        apart = abs((named - clip.start).total_seconds())
        if apart > tolerance_s:
            findings.append(
                Finding(
                    "name_time_mismatch",
                    clip.id,
                    seconds=apart,
                    detail={
                        "name_time": named.astimezone(tz).isoformat(),
                        "container_time": clip.start.astimezone(tz).isoformat(),
                    },
                )
            )
    return findings


def check(
    clips: Sequence[ClipTimes],
    *,
    ingested_at: datetime,
    settings: IngestSettings,
    tz: tzinfo,
    neighbours: Sequence[ClipTimes] = (),
) -> list[Finding]:
    """All timeline findings for one device's newly ingested ``clips``.

    ``neighbours`` are the device's clips already in the store that lie within
    the new clips' time span: they take part in the continuity check (a file
    ingested late fills its gap), but findings are reported only where a new
    clip is involved. Clips whose time is implausible (a wrong clock) take no
    part in continuity: their "gaps" would measure the clock, not the recording.
    """
    plausible = plausibility(clips, ingested_at=ingested_at, settings=settings, tz=tz)
    wrong_clock = {f.clip_id for f in plausible if f.kind in ("future", "implausibly_old")}
    new_ids = {c.id for c in clips}
    together = [c for c in list(clips) + [n for n in neighbours if n.id not in new_ids] if c.id not in wrong_clock]
    gaps = continuity(
        together, gap_tolerance_s=settings.gap_tolerance_s, overlap_tolerance_s=settings.overlap_tolerance_s
    )
    return [f for f in gaps if f.clip_id in new_ids or f.other_clip_id in new_ids] + plausible


@dataclass(frozen=True)
class ClockCheck:
    """Art. 11: is the recorder's clock right? Judged from its newest new clip at plug-in."""

    plugged_at: datetime
    newest_end: datetime | None
    previous_handover: datetime | None
    finding: Finding | None


def clock_check(
    clips: Sequence[ClipTimes],
    *,
    plugged_at: datetime,
    previous_handover: datetime | None,
    settings: IngestSettings,
) -> ClockCheck:
    """Compare the newest new clip with the host's clock at plug-in and with the last handover.

    A clip new to the store was recorded after the device's previous handover,
    so one dated before it shows a clock running behind; a newest clip that
    ends after the plug-in shows a clock running ahead.
    """
    timed = [c for c in clips if c.end is not None]
    if not timed:
        return ClockCheck(plugged_at, None, previous_handover, None)
    newest = max(timed, key=lambda c: (c.end, c.id))
    assert newest.end is not None
    finding = None
    ahead = (newest.end - plugged_at).total_seconds()
    if ahead > settings.future_tolerance_s:
        finding = Finding("clock_ahead", newest.id, seconds=ahead, detail={"plugged_at": plugged_at.isoformat()})
    elif previous_handover is not None and newest.end < previous_handover:
        behind = (previous_handover - newest.end).total_seconds()
        if behind > settings.future_tolerance_s:
            finding = Finding(
                "clock_behind",
                newest.id,
                seconds=behind,
                detail={"previous_handover": previous_handover.isoformat()},
            )
    return ClockCheck(plugged_at, newest.end, previous_handover, finding)
