"""Timeline rules on their own: gaps, overlaps, implausible times and late handover (Art. 11, 14, 18)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avlog.ingest.timeline import ClipTimes, Finding, check, continuity, plausibility
from avlog.settings import IngestSettings
from conftest import TZ

BASE = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
DEFAULTS = IngestSettings()


def clip(
    id: int, start_s: float | None, length_s: float | None = 10, *, kind: str = "video", blake3: str | None = None
) -> ClipTimes:
    """A clip ``length_s`` long starting ``start_s`` seconds after BASE."""
    start = None if start_s is None else BASE + timedelta(seconds=start_s)
    end = None if start is None or length_s is None else start + timedelta(seconds=length_s)
    return ClipTimes(id=id, blake3=blake3 or f"{id:064x}", kind=kind, start=start, end=end)


def kinds(findings: list[Finding]) -> list[tuple[str, int, int | None]]:
    return [(f.kind, f.clip_id, f.other_clip_id) for f in findings]


# -- continuity -------------------------------------------------------------------------------------


def test_gap_above_tolerance_is_reported_with_its_length() -> None:
    clips = [clip(1, 0), clip(2, 10), clip(3, 20 + 10.5)]  # 10.5 s pause before clip 3
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert kinds(findings) == [("gap", 3, 2)]
    assert findings[0].seconds == pytest.approx(10.5)


def test_pause_at_or_below_tolerance_is_no_gap() -> None:
    clips = [clip(1, 0), clip(2, 10 + 9.5), clip(3, 29.5 + 10)]  # 9.5 s, then exactly 10 s
    assert continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2) == []


def test_gap_tolerance_is_the_callers() -> None:
    clips = [clip(1, 0), clip(2, 15)]  # 5 s pause
    assert continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2) == []
    assert kinds(continuity(clips, gap_tolerance_s=4, overlap_tolerance_s=2)) == [("gap", 2, 1)]


def test_clips_are_ordered_by_time_not_by_id() -> None:
    clips = [clip(3, 10), clip(1, 20 + 60), clip(2, 0)]  # 60 s pause before clip 1
    assert kinds(continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)) == [("gap", 1, 3)]


def test_overlap_beyond_tolerance_is_reported() -> None:
    clips = [clip(1, 0), clip(2, 10 - 5)]  # clip 2 starts 5 s before clip 1 ends
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert kinds(findings) == [("overlap", 2, 1)]
    assert findings[0].seconds == pytest.approx(5)


def test_overlap_within_tolerance_is_not_reported() -> None:
    clips = [clip(1, 0), clip(2, 10 - 1.5)]
    assert continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2) == []


def test_a_clip_inside_a_long_one_overlaps_it_and_the_next_is_measured_from_the_long_ones_end() -> None:
    clips = [clip(1, 0, 100), clip(2, 20, 10), clip(3, 100 + 30)]
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert kinds(findings) == [("overlap", 2, 1), ("gap", 3, 1)]
    assert findings[1].seconds == pytest.approx(30)


def test_duplicates_are_never_reported_as_overlap() -> None:
    same = "ab" * 32
    clips = [clip(1, 0, blake3=same), clip(2, 10), clip(7, 0, blake3=same)]  # 7: the same content, a second name
    assert continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2) == []


def test_a_duplicate_of_an_overlapping_clip_adds_no_second_overlap() -> None:
    # Clip 1 really overlaps the long clip 5; clip 8 is clip 1's content under a second name.
    same = "ef" * 32
    clips = [clip(5, -5, 30), clip(1, 0, blake3=same), clip(8, 0, blake3=same)]
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert [(f.kind, f.other_clip_id) for f in findings] == [("overlap", 5)]
    assert findings[0].clip_id in (1, 8)


def test_a_duplicate_does_not_hide_a_gap() -> None:
    same = "cd" * 32
    clips = [clip(1, 0, blake3=same), clip(9, 0, blake3=same), clip(2, 10 + 60)]
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert [(f.kind, f.clip_id) for f in findings] == [("gap", 2)]
    assert findings[0].seconds == pytest.approx(60)


def test_photos_never_take_part_in_continuity() -> None:
    clips = [
        clip(1, 0),
        clip(2, 3, 0, kind="photo"),  # taken during clip 1
        clip(3, 500, 0, kind="photo"),  # alone in what is a gap for video
        clip(4, 10 + 600),
    ]
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert kinds(findings) == [("gap", 4, 1)]
    only_photos = [clip(1, 0, 0, kind="photo"), clip(2, 3600, 0, kind="photo"), clip(3, 3600, 0, kind="photo")]
    assert continuity(only_photos, gap_tolerance_s=10, overlap_tolerance_s=2) == []


def test_video_and_audio_are_checked_separately() -> None:
    clips = [
        clip(1, 0, kind="video"),
        clip(2, 0, 30, kind="audio"),  # recorded alongside video: not an overlap
        clip(3, 40, kind="video"),  # 30 s video gap, although audio covers part of it
        clip(4, 30, kind="audio"),  # audio is continuous
    ]
    findings = continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2)
    assert kinds(findings) == [("gap", 3, 1)]
    assert findings[0].seconds == pytest.approx(30)


def test_clips_without_times_are_left_out_of_continuity() -> None:
    clips = [clip(1, 0), clip(2, None), clip(3, 10)]
    assert continuity(clips, gap_tolerance_s=10, overlap_tolerance_s=2) == []


# When the property fails, hypothesis imports libcst to print a patch, and libcst warns on import.
@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(
        st.tuples(st.integers(min_value=1, max_value=600), st.integers(min_value=0, max_value=120)),
        min_size=1,
        max_size=25,
    ),
    tolerance=st.integers(min_value=0, max_value=60),
    shuffle_seed=st.randoms(use_true_random=False),
)
def test_property_gaps_are_exactly_the_pauses_above_tolerance(
    segments: list[tuple[int, int]], tolerance: int, shuffle_seed: object
) -> None:
    """Back-to-back clips with random pauses in between: each gap is one pause over the tolerance."""
    clips: list[ClipTimes] = []
    expected: list[tuple[int, float]] = []
    at = 0
    for n, (length, pause) in enumerate(segments, start=1):
        if n > 1:
            at += pause
            if pause > tolerance:
                expected.append((n, float(pause)))
        clips.append(clip(n, at, length))
        at += length
    shuffle_seed.shuffle(clips)  # type: ignore[attr-defined]  # input order must not matter
    findings = continuity(clips, gap_tolerance_s=tolerance, overlap_tolerance_s=2)
    assert all(f.kind == "gap" for f in findings)
    assert sorted((f.clip_id, f.seconds) for f in findings) == expected
    assert all(f.other_clip_id == f.clip_id - 1 for f in findings)


# -- plausibility -----------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def moment_clip(id: int, start: datetime, length_s: float = 60, kind: str = "video") -> ClipTimes:
    return ClipTimes(id, f"{id:064x}", kind, start, start + timedelta(seconds=length_s))


def test_future_clip_is_reported_beyond_the_tolerance_only() -> None:
    now = at("2026-11-26T10:00:00+08:00")
    clips = [moment_clip(1, now + timedelta(seconds=301)), moment_clip(2, now + timedelta(seconds=299))]
    findings = plausibility(clips, ingested_at=now, settings=DEFAULTS, tz=TZ)
    assert kinds(findings) == [("future", 1, None)]
    assert findings[0].seconds == pytest.approx(301)


def test_implausibly_old_clip_is_reported() -> None:
    now = at("2026-11-26T10:00:00+08:00")
    old = moment_clip(1, now - timedelta(days=400))
    recent = moment_clip(2, now - timedelta(days=300))
    findings = plausibility([old, recent], ingested_at=now, settings=DEFAULTS, tz=TZ)
    assert ("implausibly_old", 1, None) in kinds(findings)
    assert all(f.clip_id != 2 or f.kind == "late_handover" for f in findings)
    tight = IngestSettings(implausible_age_days=200)
    assert ("implausibly_old", 2, None) in kinds(plausibility([recent], ingested_at=now, settings=tight, tz=TZ))


def test_clip_of_the_same_day_is_not_late() -> None:
    now = at("2026-11-26T22:00:00+08:00")
    clips = [moment_clip(1, at("2026-11-26T00:05:00+08:00")), moment_clip(2, at("2026-11-26T21:00:00+08:00"))]
    assert plausibility(clips, ingested_at=now, settings=DEFAULTS, tz=TZ) == []


def test_late_handover_uses_the_store_zone_not_utc() -> None:
    # Ends 23:30 in Shanghai (15:30 UTC), handed over 00:30 the next day in Shanghai: still 2026-11-26 in UTC.
    end = at("2026-11-26T15:30:00+00:00")
    ingested = at("2026-11-26T16:30:00+00:00")
    c = ClipTimes(1, "1" * 64, "video", end - timedelta(minutes=5), end)
    findings = plausibility([c], ingested_at=ingested, settings=DEFAULTS, tz=TZ)
    assert kinds(findings) == [("late_handover", 1, None)]
    detail = findings[0].detail
    assert detail["recording_day"] == "2026-11-26"
    assert detail["hours_after_end"] == pytest.approx(1.0)
    assert detail["over_deadline"] is False
    # Read in UTC the same two moments are on one day: the zone is what makes it late.
    assert plausibility([c], ingested_at=ingested, settings=DEFAULTS, tz=UTC) == []


def test_no_late_handover_on_the_same_local_day_across_utc_midnight() -> None:
    # Ends 07:30 in Shanghai (23:30 UTC the day before), handed over 08:30 in Shanghai (00:30 UTC).
    end = at("2026-11-25T23:30:00+00:00")
    ingested = at("2026-11-26T00:30:00+00:00")
    c = ClipTimes(1, "1" * 64, "video", end - timedelta(minutes=5), end)
    assert plausibility([c], ingested_at=ingested, settings=DEFAULTS, tz=TZ) == []
    assert kinds(plausibility([c], ingested_at=ingested, settings=DEFAULTS, tz=UTC)) == [("late_handover", 1, None)]


def test_late_handover_over_the_deadline() -> None:
    end = at("2026-11-25T10:00:00+08:00")
    within = plausibility(
        [moment_clip(1, end - timedelta(seconds=60))],
        ingested_at=at("2026-11-26T09:00:00+08:00"),
        settings=DEFAULTS,
        tz=TZ,
    )
    beyond = plausibility(
        [moment_clip(1, end - timedelta(seconds=60))],
        ingested_at=at("2026-11-26T11:00:00+08:00"),
        settings=DEFAULTS,
        tz=TZ,
    )
    assert kinds(within) == kinds(beyond) == [("late_handover", 1, None)]
    assert within[0].detail["over_deadline"] is False
    assert within[0].detail["hours_after_end"] == pytest.approx(23.0)
    assert beyond[0].detail["over_deadline"] is True
    assert beyond[0].detail["hours_after_end"] == pytest.approx(25.0)
    assert beyond[0].seconds == pytest.approx(25 * 3600)
    strict = IngestSettings(handover_deadline_hours=12)
    again = plausibility(
        [moment_clip(1, end - timedelta(seconds=60))],
        ingested_at=at("2026-11-26T09:00:00+08:00"),
        settings=strict,
        tz=TZ,
    )
    assert again[0].detail["over_deadline"] is True


def test_late_handover_counts_from_the_end_of_a_clip_that_runs_past_midnight() -> None:
    # Started 23:50 on the 25th, ended 00:10 on the 26th (Shanghai); handed over the morning of the 26th: on time.
    start = at("2026-11-25T23:50:00+08:00")
    c = moment_clip(1, start, 20 * 60)
    assert plausibility([c], ingested_at=at("2026-11-26T08:00:00+08:00"), settings=DEFAULTS, tz=TZ) == []


def test_check_combines_continuity_and_plausibility() -> None:
    now = at("2026-11-27T10:00:00+08:00")
    first = moment_clip(1, at("2026-11-26T09:00:00+08:00"), 60)
    second = moment_clip(2, at("2026-11-26T09:05:00+08:00"), 60)  # 4 min after the first ended
    findings = check([first, second], ingested_at=now, settings=DEFAULTS, tz=TZ)
    assert sorted(kinds(findings)) == [("gap", 2, 1), ("late_handover", 1, None), ("late_handover", 2, None)]


def test_a_clip_ingested_later_fills_its_gap_and_only_new_clips_are_reported() -> None:
    # Clips 1 and 3 were ingested earlier with a hole between them; clip 2 now arrives and fills it.
    earlier = [clip(1, 0), clip(3, 20)]
    now = BASE + timedelta(hours=1)
    findings = check([clip(2, 10)], ingested_at=now, settings=DEFAULTS, tz=TZ, neighbours=earlier)
    assert kinds(findings) == []
    # Without the neighbours, nothing links clip 2 to anything: still no finding.
    assert kinds(check([clip(2, 10)], ingested_at=now, settings=DEFAULTS, tz=TZ)) == []
    # A new clip after a gap from an earlier one is reported against it.
    late = check([clip(4, 100)], ingested_at=now, settings=DEFAULTS, tz=TZ, neighbours=earlier)
    assert kinds(late) == [("gap", 4, 3)]
    # A gap between two old clips is not reported again by a later ingest.
    old_gap = [clip(5, 200), clip(6, 400)]
    assert kinds(check([clip(7, 410)], ingested_at=now, settings=DEFAULTS, tz=TZ, neighbours=old_gap)) == []


def test_clips_with_a_wrong_clock_take_no_part_in_continuity() -> None:
    now = BASE + timedelta(hours=1)
    # Clip 2 claims a start three years ago (a reset clock): no gap of three years is reported.
    clips = [clip(1, 0), clip(2, -3 * 365 * 86400), clip(3, 10)]
    findings = check(clips, ingested_at=now, settings=DEFAULTS, tz=TZ)
    assert kinds(findings) == [("implausibly_old", 2, None)]
