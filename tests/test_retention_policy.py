"""The retention decision on its own: every reason a clip is kept, their precedence, and properties
over random clips, flags, cases, holds, discs, policies and times (Art. 19, 20)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avlog.retention.policy import (
    FLAG_REASONS,
    CaseFact,
    ClipFacts,
    Decision,
    Due,
    FlagFact,
    HoldFact,
    Keep,
    Policy,
    Purge,
    decide,
    explain,
    retention_end,
)
from avlog.settings import RETENTION_FLOOR_DAYS
from conftest import TZ

US = timedelta(microseconds=1)
POLICY = Policy(min_days=183, grace_days=7, disc_copies=2, kind_min_days={})
# A recording that ended on 10 January 2026, 14:00 in the store's zone (Asia/Shanghai, UTC+8, no DST).
END = datetime(2026, 1, 10, 14, 0, tzinfo=TZ)
# 10 Jan + 183 days, counted by hand: 21 days to 31 Jan, +28 (Feb) = 49, +31 (Mar) = 80, +30 (Apr) = 110,
# +31 (May) = 141, +30 (Jun) = 171, +12 = 183 → 12 July. Kept through that whole day, released at midnight.
RELEASE = datetime(2026, 7, 13, 0, 0, tzinfo=TZ)
BASE = ClipFacts(
    clip_id=1,
    recorded_end=END,
    ingested_at=END + timedelta(hours=3),
    kind="video",
    device_serial="BC-0001",
    state="stored",
    due_since=None,
    flags=(),
    cases=(),
    holds=(),
    verified_discs=0,
)
LONG_AFTER = RELEASE + timedelta(days=400)  # every time-limited rule of BASE is long over


def clip(**changes: object) -> ClipFacts:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def closed(case_id: str, closed_on: date, retain_until: date | None) -> CaseFact:
    return CaseFact(case_id, closed_on, retain_until)


OPEN = CaseFact("2026-007", None, None)
HOLD = HoldFact(1, released=False)
RELEASED_HOLD = HoldFact(2, released=True)
DISPUTE = FlagFact("dispute")


# -- minimum retention (Art. 19) -------------------------------------------------------------------


def test_release_day_is_counted_by_hand() -> None:
    assert END.date() + timedelta(days=183) == date(2026, 7, 12)
    assert RELEASE.isoformat() == "2026-07-13T00:00:00+08:00"


def test_ordinary_clip_is_kept_through_the_last_day_of_the_minimum() -> None:
    assert decide(BASE, POLICY, END, TZ) == Keep("minimum_retention", RELEASE)
    assert decide(BASE, POLICY, RELEASE - US, TZ) == Keep("minimum_retention", RELEASE)
    # 183 × 24 h after the end (12 July, 14:00) the clip is still kept: the whole day counts.
    assert decide(BASE, POLICY, END + timedelta(days=183), TZ) == Keep("minimum_retention", RELEASE)
    assert retention_end(BASE, POLICY, TZ) == RELEASE


def test_released_clip_becomes_due_then_purged_after_the_grace_period() -> None:
    assert decide(BASE, POLICY, RELEASE, TZ) == Due(since=RELEASE, purge_after=RELEASE + timedelta(days=7))
    due = clip(state="due", due_since=RELEASE)
    assert decide(due, POLICY, RELEASE + timedelta(days=7) - US, TZ) == Due(RELEASE, RELEASE + timedelta(days=7))
    assert decide(due, POLICY, RELEASE + timedelta(days=7), TZ) == Purge()
    assert decide(due, POLICY, LONG_AFTER, TZ) == Purge()


def test_due_since_is_now_when_the_clip_was_not_due_before() -> None:
    now = RELEASE + timedelta(days=30)
    assert decide(BASE, POLICY, now, TZ) == Due(now, now + timedelta(days=7))


def test_zero_grace_purges_at_the_first_sweep_that_releases_the_clip() -> None:
    no_grace = Policy(min_days=183, grace_days=0, disc_copies=2, kind_min_days={})
    assert decide(BASE, no_grace, RELEASE - US, TZ) == Keep("minimum_retention", RELEASE)
    assert decide(BASE, no_grace, RELEASE, TZ) == Purge()


def test_every_clip_of_one_local_day_is_released_at_the_same_moment() -> None:
    early = clip(recorded_end=datetime(2026, 1, 10, 0, 1, tzinfo=TZ))
    late = clip(recorded_end=datetime(2026, 1, 10, 23, 59, tzinfo=TZ))
    next_day = clip(recorded_end=datetime(2026, 1, 11, 0, 0, tzinfo=TZ))
    assert retention_end(early, POLICY, TZ) == RELEASE
    assert retention_end(late, POLICY, TZ) == RELEASE
    assert retention_end(next_day, POLICY, TZ) == RELEASE + timedelta(days=1)


def test_days_are_local_days_of_the_store_zone() -> None:
    # 20:00 UTC on 9 January is 04:00 on 10 January in Shanghai: the Shanghai day counts.
    utc_evening = clip(recorded_end=datetime(2026, 1, 9, 20, 0, tzinfo=UTC))
    assert retention_end(utc_evening, POLICY, TZ) == RELEASE
    assert retention_end(utc_evening, POLICY, UTC) == datetime(2026, 7, 12, 0, 0, tzinfo=UTC)


def test_across_daylight_saving_the_clip_is_kept_full_days_of_24_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Ends 31 Dec 2025 23:30 CET (22:30 UTC). 31 Dec + 183 calendar days = 2 July (31+28+31+30+31+30 = 181
    # days to 30 June, +2). But 183 × 24 h later is 2 July 22:30 UTC = 3 July 00:30 CEST: a release at the
    # start of 3 July would come 30 minutes short of 183 days. It is kept through 3 July.
    winter = clip(recorded_end=datetime(2025, 12, 31, 23, 30, tzinfo=berlin))
    release = datetime(2026, 7, 4, 0, 0, tzinfo=berlin)
    assert decide(winter, POLICY, datetime(2026, 7, 3, 0, 0, tzinfo=berlin), berlin) == Keep(
        "minimum_retention", release
    )
    assert decide(winter, POLICY, release - US, berlin) == Keep("minimum_retention", release)
    assert isinstance(decide(winter, POLICY, release, berlin), Due)


def test_across_daylight_saving_the_clip_is_kept_the_full_calendar_days_too() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Ends 1 Jul 2026 00:30 CEST (30 Jun 22:30 UTC). 183 × 24 h later is 30 Dec 22:30 UTC = 30 Dec 23:30 CET,
    # but 1 Jul + 183 calendar days = 31 Dec (30 + 31 + 30 + 31 + 30 + 31): kept through 31 December.
    summer = clip(recorded_end=datetime(2026, 7, 1, 0, 30, tzinfo=berlin))
    release = datetime(2027, 1, 1, 0, 0, tzinfo=berlin)
    assert decide(summer, POLICY, datetime(2026, 12, 31, 0, 0, tzinfo=berlin), berlin) == Keep(
        "minimum_retention", release
    )
    assert retention_end(summer, POLICY, berlin) == release


def test_a_day_whose_midnight_is_skipped_begins_at_the_clock_change() -> None:
    havana = ZoneInfo("America/Havana")
    # 5 Sep 2025 + 183 days = 7 Mar 2026 (by hand: 25 + 31 + 30 + 31 + 31 + 28 + 7). On 8 March 2026 Cuba's
    # clocks jump from 00:00 CST (UTC-5) to 01:00 CDT: the day, and the release, begins at 05:00 UTC.
    recorded = clip(recorded_end=datetime(2025, 9, 5, 12, 0, tzinfo=havana))
    release = retention_end(recorded, POLICY, havana)
    assert release == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert release is not None and release.astimezone(havana).isoformat() == "2026-03-08T01:00:00-04:00"
    assert decide(recorded, POLICY, release - US, havana) == Keep("minimum_retention", release)


def test_minimum_runs_from_ingest_when_the_recording_end_is_unknown() -> None:
    unknown = clip(recorded_end=None, ingested_at=datetime(2026, 1, 11, 9, 0, tzinfo=TZ))
    assert decide(unknown, POLICY, RELEASE, TZ) == Keep("minimum_retention", RELEASE + timedelta(days=1))
    assert retention_end(unknown, POLICY, TZ) == RELEASE + timedelta(days=1)


def test_kind_override_lengthens_the_minimum_for_that_kind_only() -> None:
    policy = Policy(min_days=183, grace_days=7, disc_copies=2, kind_min_days={"audio": 365})
    audio = clip(kind="audio")
    # 10 Jan 2026 + 365 days = 10 Jan 2027 (2026 is no leap year); released at the following midnight.
    audio_release = datetime(2027, 1, 11, 0, 0, tzinfo=TZ)
    assert decide(audio, policy, RELEASE, TZ) == Keep("minimum_retention", audio_release)
    assert isinstance(decide(audio, policy, audio_release, TZ), Due)
    assert isinstance(decide(clip(kind="video"), policy, RELEASE, TZ), Due)


def test_returned_times_are_utc() -> None:
    decision = decide(BASE, POLICY, END, TZ)
    assert isinstance(decision, Keep) and decision.until is not None
    assert decision.until.utcoffset() == timedelta(0) and decision.until.tzinfo is UTC


# -- holds, cases, flags ---------------------------------------------------------------------------


def test_unreleased_hold_keeps_the_clip_indefinitely() -> None:
    held = clip(holds=(RELEASED_HOLD, HOLD), state="due", due_since=RELEASE)
    assert decide(held, POLICY, LONG_AFTER, TZ) == Keep("hold", None)
    assert retention_end(held, POLICY, TZ) is None


def test_released_hold_keeps_nothing() -> None:
    assert decide(clip(holds=(RELEASED_HOLD,)), POLICY, LONG_AFTER, TZ) == Due(LONG_AFTER, LONG_AFTER + timedelta(7))


def test_open_case_keeps_its_clips_indefinitely() -> None:
    linked = clip(cases=(closed("2025-001", date(2026, 1, 1), date(2026, 2, 1)), OPEN))
    assert decide(linked, POLICY, LONG_AFTER, TZ) == Keep("case_open", None)
    assert retention_end(linked, POLICY, TZ) is None


def test_closed_case_keeps_its_clips_through_the_latest_retention_end() -> None:
    cases = (
        closed("2026-001", date(2026, 3, 1), date(2028, 6, 30)),
        closed("2026-002", date(2026, 4, 1), date(2030, 12, 31)),
    )
    linked = clip(cases=cases)
    end = datetime(2031, 1, 1, 0, 0, tzinfo=TZ)  # kept through 31 Dec 2030, the later of the two
    assert decide(linked, POLICY, datetime(2029, 1, 1, tzinfo=TZ), TZ) == Keep("case_retention", end)
    assert decide(linked, POLICY, end - US, TZ) == Keep("case_retention", end)
    assert decide(linked, POLICY, end, TZ) == Due(end, end + timedelta(days=7))
    assert retention_end(linked, POLICY, TZ) == end


def test_closed_case_without_an_end_keeps_its_clips_indefinitely() -> None:
    linked = clip(
        cases=(closed("2026-001", date(2026, 3, 1), date(2027, 1, 1)), closed("2026-9", date(2026, 3, 2), None))
    )
    assert decide(linked, POLICY, LONG_AFTER + timedelta(days=3650), TZ) == Keep("case_retention", None)
    assert retention_end(linked, POLICY, TZ) is None


def test_case_retention_never_ends_before_the_case_closed() -> None:
    # Retention end before the closing date: the case file existed until it closed, so its clips did too.
    linked = clip(cases=(closed("2026-001", date(2027, 5, 4), date(2026, 2, 1)),))
    end = datetime(2027, 5, 5, 0, 0, tzinfo=TZ)
    assert decide(linked, POLICY, end - US, TZ) == Keep("case_retention", end)
    assert isinstance(decide(linked, POLICY, end, TZ), Due)


def test_short_case_retention_does_not_shorten_the_minimum() -> None:
    linked = clip(cases=(closed("2026-001", date(2026, 1, 20), date(2026, 2, 1)),))
    assert decide(linked, POLICY, datetime(2026, 3, 1, tzinfo=TZ), TZ) == Keep("minimum_retention", RELEASE)
    assert retention_end(linked, POLICY, TZ) == RELEASE


def test_flagged_clip_is_kept_until_it_is_on_enough_verified_discs() -> None:
    flagged = clip(flags=(DISPUTE,), verified_discs=1)
    assert decide(flagged, POLICY, LONG_AFTER, TZ) == Keep("flagged_not_on_discs", None)
    assert retention_end(flagged, POLICY, TZ) is None
    on_discs = clip(flags=(DISPUTE,), verified_discs=2)
    assert decide(on_discs, POLICY, LONG_AFTER, TZ) == Due(LONG_AFTER, LONG_AFTER + timedelta(days=7))
    assert decide(
        clip(flags=(DISPUTE,), verified_discs=2, due_since=LONG_AFTER), POLICY, LONG_AFTER + timedelta(7), TZ
    ) == (Purge())
    assert retention_end(on_discs, POLICY, TZ) == RELEASE


def test_flagged_clip_on_enough_discs_still_keeps_the_minimum() -> None:
    on_discs = clip(flags=(FlagFact("incident"),), verified_discs=3)
    assert decide(on_discs, POLICY, END, TZ) == Keep("minimum_retention", RELEASE)


def test_purged_clip_stays_purged() -> None:
    gone = clip(state="purged")
    assert decide(gone, POLICY, LONG_AFTER, TZ) == Keep("purged_already", None)
    assert decide(gone, POLICY, END, TZ) == Keep("purged_already", None)


# -- precedence ------------------------------------------------------------------------------------


def test_precedence_of_the_rules() -> None:
    case_2030 = closed("2026-001", date(2026, 3, 1), date(2030, 12, 31))
    now = datetime(2026, 2, 1, tzinfo=TZ)  # within the minimum and the case's retention
    everything = clip(state="purged", holds=(HOLD,), cases=(OPEN, case_2030), flags=(DISPUTE,))
    assert decide(everything, POLICY, now, TZ).reason == "purged_already"  # type: ignore[union-attr]
    steps = [
        ({"state": "stored"}, "hold"),
        ({"holds": (RELEASED_HOLD,)}, "case_open"),
        ({"cases": (case_2030,)}, "case_retention"),
        ({"cases": ()}, "flagged_not_on_discs"),
        ({"verified_discs": 2}, "minimum_retention"),
    ]
    for changes, reason in steps:
        everything = dataclasses.replace(everything, **changes)  # type: ignore[arg-type]
        decision = decide(everything, POLICY, now, TZ)
        assert isinstance(decision, Keep) and decision.reason == reason, (changes, decision)
    assert isinstance(decide(everything, POLICY, LONG_AFTER, TZ), Due)


def test_rescued_due_clip_is_kept_again() -> None:
    # Due for a week already, then a flag, a case or a hold arrives before the sweep: it is kept.
    due = clip(state="due", due_since=RELEASE)
    now = RELEASE + timedelta(days=30)
    assert decide(due, POLICY, now, TZ) == Purge()
    assert decide(dataclasses.replace(due, flags=(DISPUTE,)), POLICY, now, TZ) == Keep("flagged_not_on_discs", None)
    assert decide(dataclasses.replace(due, cases=(OPEN,)), POLICY, now, TZ) == Keep("case_open", None)
    assert decide(dataclasses.replace(due, holds=(HOLD,)), POLICY, now, TZ) == Keep("hold", None)


# -- validation ------------------------------------------------------------------------------------


def test_policy_below_six_months_is_refused() -> None:
    with pytest.raises(ValueError, match="min_days"):
        Policy(min_days=182, grace_days=7, disc_copies=2, kind_min_days={})
    assert Policy(min_days=183, grace_days=0, disc_copies=1, kind_min_days={}).min_days == 183


def test_kind_override_may_only_lengthen() -> None:
    with pytest.raises(ValueError, match="photo"):
        Policy(min_days=200, grace_days=7, disc_copies=2, kind_min_days={"photo": 199})
    assert Policy(min_days=200, grace_days=7, disc_copies=2, kind_min_days={"photo": 200}).days_for("photo") == 200


@pytest.mark.parametrize(
    "changes",
    [{"grace_days": -1}, {"disc_copies": 0}, {"min_days": 200.5}, {"min_days": True}, {"kind_min_days": {"x": "400"}}],
)
def test_other_bad_policies_are_refused(changes: dict[str, object]) -> None:
    values: dict[str, object] = {"min_days": 183, "grace_days": 7, "disc_copies": 2, "kind_min_days": {}}
    values.update(changes)
    with pytest.raises(ValueError):
        Policy(**values)  # type: ignore[arg-type]


def test_policy_keeps_its_own_copy_of_the_overrides() -> None:
    overrides = {"audio": 365}
    policy = Policy(min_days=183, grace_days=7, disc_copies=2, kind_min_days=overrides)
    overrides["audio"] = 1
    assert policy.days_for("audio") == 365


def test_bad_facts_are_refused() -> None:
    with pytest.raises(ValueError, match="flag reason"):
        FlagFact("boredom")
    assert {FlagFact(r).reason for r in FLAG_REASONS} == {"dispute", "obstruction", "incident", "other"}
    with pytest.raises(ValueError, match="aware"):
        clip(recorded_end=datetime(2026, 1, 10, 14, 0))
    with pytest.raises(ValueError, match="date"):
        CaseFact("2026-001", datetime(2026, 1, 1, tzinfo=TZ), None)
    with pytest.raises(ValueError, match="aware"):
        decide(BASE, POLICY, datetime(2026, 1, 1), TZ)


# -- explanations ----------------------------------------------------------------------------------


def test_every_decision_is_explained_with_times_in_the_store_zone() -> None:
    keep = decide(BASE, POLICY, END, TZ)
    assert "2026-07-13T00:00:00+08:00" in explain(keep, TZ)
    assert "Art. 19" in explain(keep, TZ)
    due = decide(BASE, POLICY, RELEASE, TZ)
    assert "2026-07-13T00:00:00+08:00" in explain(due, TZ) and "2026-07-20T00:00:00+08:00" in explain(due, TZ)
    assert "2026-07-12T16:00:00+00:00" in explain(due)  # without a zone: UTC, as returned
    texts = {
        explain(Keep("hold", None)),
        explain(Keep("case_open", None)),
        explain(Keep("case_retention", None)),
        explain(Keep("case_retention", RELEASE)),
        explain(Keep("flagged_not_on_discs", None)),
        explain(Keep("minimum_retention", RELEASE)),
        explain(Keep("purged_already", None)),
        explain(due),
        explain(Purge()),
    }
    assert len(texts) == 9 and all(texts)
    assert "Art. 20" in explain(Keep("flagged_not_on_discs", None))


# -- properties ------------------------------------------------------------------------------------

TIMES = st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2033, 1, 1), timezones=st.just(UTC))
DATES = st.dates(min_value=date(2019, 1, 1), max_value=date(2033, 1, 1))
KINDS = ("video", "audio", "photo")
# Zones with no DST, DST at 02:00, DST at midnight (Havana, Santiago), half-hour DST, far from UTC.
ZONES = st.sampled_from(
    [
        TZ,
        ZoneInfo("UTC"),
        ZoneInfo("Europe/Berlin"),
        ZoneInfo("America/Havana"),
        ZoneInfo("America/Santiago"),
        ZoneInfo("Australia/Lord_Howe"),
        ZoneInfo("Pacific/Kiritimati"),
        ZoneInfo("Pacific/Pago_Pago"),
    ]
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    min_days = draw(st.integers(min_value=RETENTION_FLOOR_DAYS, max_value=800))
    overrides = draw(
        st.dictionaries(st.sampled_from(KINDS), st.integers(min_value=0, max_value=500).map(lambda d: min_days + d))
    )
    return Policy(
        min_days=min_days,
        grace_days=draw(st.integers(min_value=0, max_value=30)),
        disc_copies=draw(st.integers(min_value=1, max_value=3)),
        kind_min_days=overrides,
    )


cases = st.builds(CaseFact, st.text("0123456789-", min_size=1, max_size=8), st.none() | DATES, st.none() | DATES)
holds = st.builds(HoldFact, st.integers(min_value=1, max_value=99), st.booleans())
flags = st.builds(FlagFact, st.sampled_from(FLAG_REASONS))


@st.composite
def any_clips(draw: st.DrawFn) -> ClipFacts:
    ingested_at = draw(TIMES)
    return ClipFacts(
        clip_id=draw(st.integers(min_value=1, max_value=10**6)),
        recorded_end=draw(st.none() | TIMES),
        ingested_at=ingested_at,
        kind=draw(st.sampled_from(KINDS)),
        device_serial="BC-0001",
        state=draw(st.sampled_from(("stored", "stored", "due", "purged"))),
        due_since=draw(st.none() | TIMES),
        flags=tuple(draw(st.lists(flags, max_size=2))),
        cases=tuple(draw(st.lists(cases, max_size=3))),
        holds=tuple(draw(st.lists(holds, max_size=2))),
        verified_discs=draw(st.integers(min_value=0, max_value=4)),
    )


Scenario = tuple[ClipFacts, Policy, datetime, tzinfo]


@st.composite
def any_scenarios(draw: st.DrawFn) -> Scenario:
    return draw(any_clips()), draw(policies()), draw(TIMES), draw(ZONES)


@st.composite
def released_scenarios(draw: st.DrawFn) -> Scenario:
    """A clip every rule lets go at ``now``: old enough, only released holds, cases closed and over,
    flagged only when on enough discs; due for a random while or not yet."""
    policy, tz, now = draw(policies()), draw(ZONES), draw(TIMES)
    today = now.astimezone(tz).date()
    kind = draw(st.sampled_from(KINDS))
    age = timedelta(days=policy.days_for(kind) + 2) + draw(st.timedeltas(timedelta(0), timedelta(days=900)))
    end = now - age
    past = st.integers(min_value=1, max_value=3000).map(lambda d: today - timedelta(days=d))
    flagged = tuple(draw(st.lists(flags, max_size=2)))
    return (
        ClipFacts(
            clip_id=1,
            recorded_end=draw(st.just(end) | st.none()),
            ingested_at=end + draw(st.timedeltas(timedelta(0), timedelta(days=1))),
            kind=kind,
            device_serial="BC-0001",
            state=draw(st.sampled_from(("stored", "due"))),
            due_since=draw(st.none() | st.timedeltas(timedelta(0), timedelta(days=60)).map(lambda ago: now - ago)),
            flags=flagged,
            cases=tuple(draw(st.lists(st.builds(CaseFact, st.just("c"), past, past), max_size=3))),
            holds=tuple(HoldFact(n, released=True) for n in range(draw(st.integers(0, 2)))),
            verified_discs=policy.disc_copies + draw(st.integers(0, 2)) if flagged else draw(st.integers(0, 2)),
        ),
        policy,
        now,
        tz,
    )


def local_day(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def expected_keep(clip: ClipFacts, policy: Policy, now: datetime, tz: tzinfo) -> str | None:
    """Which rule keeps the clip at ``now``, re-derived from the rules as written (first match), or None."""
    today = local_day(now, tz)
    if clip.state == "purged":
        return "purged_already"
    if any(not hold.released for hold in clip.holds):
        return "hold"
    if any(case.closed_on is None for case in clip.cases):
        return "case_open"
    for case in clip.cases:
        # A closed case keeps its clips through its retention end (inclusive) and through its closing day.
        assert case.closed_on is not None
        if case.retain_until is None or today <= case.retain_until or today <= case.closed_on:
            return "case_retention"
    if clip.flags and clip.verified_discs < policy.disc_copies:
        return "flagged_not_on_discs"
    end = clip.recorded_end or clip.ingested_at
    days = max([policy.min_days] + [d for kind, d in policy.kind_min_days.items() if kind == clip.kind])
    if now - end < timedelta(days=days):  # Art. 19: not yet `days` full days of 24 hours
        return "minimum_retention"
    if today <= local_day(end, tz) + timedelta(days=days):  # not past the calendar day the period ends
        return "minimum_retention"
    if today <= local_day(end + timedelta(days=days), tz):  # not past the day `days` × 24 h end on
        return "minimum_retention"
    return None


def rank(decision: Decision) -> int:
    return {Keep: 0, Due: 1, Purge: 2}[type(decision)]


@settings(max_examples=200, deadline=None)
@given(any_scenarios())
def test_property_a_no_clip_is_purged_while_a_rule_keeps_it(scenario: Scenario) -> None:
    clip, policy, now, tz = scenario
    decision = decide(clip, policy, now, tz)
    reason = expected_keep(clip, policy, now, tz)
    if reason is not None:
        assert not isinstance(decision, Purge)
        assert isinstance(decision, Keep) and decision.reason == reason, (reason, decision)
    else:
        assert not isinstance(decision, Keep), decision


@settings(max_examples=200, deadline=None)
@given(st.one_of(released_scenarios(), any_scenarios()))
def test_property_b_every_released_clip_is_purged_after_the_grace_period(scenario: Scenario) -> None:
    clip, policy, now, tz = scenario
    if expected_keep(clip, policy, now, tz) is not None:
        return  # kept: covered by property (a)
    grace = timedelta(days=policy.grace_days)
    decision = decide(clip, policy, now, tz)
    since = clip.due_since if clip.due_since is not None else now
    if now - since >= grace:
        assert decision == Purge()
    else:
        assert decision == Due(since, since + grace)


@settings(max_examples=200, deadline=None)
@given(released_scenarios())
def test_property_b_released_scenarios_are_released(scenario: Scenario) -> None:
    """The generator of released clips really produces clips no rule keeps (so (b) is not vacuous)."""
    clip, policy, now, tz = scenario
    assert expected_keep(clip, policy, now, tz) is None
    assert not isinstance(decide(clip, policy, now, tz), Keep)


@settings(max_examples=200, deadline=None)
@given(st.one_of(released_scenarios(), any_scenarios()), st.timedeltas(timedelta(0), timedelta(days=1200)))
def test_property_c_decisions_only_move_towards_purge_as_time_passes(scenario: Scenario, later: timedelta) -> None:
    clip, policy, now, tz = scenario
    before, after = decide(clip, policy, now, tz), decide(clip, policy, now + later, tz)
    if before == Purge():
        assert after == Purge()
    assert rank(after) >= rank(before), (before, after)


@settings(max_examples=200, deadline=None)
@given(any_scenarios())
def test_property_retention_end_is_where_keeping_stops(scenario: Scenario) -> None:
    clip, policy, now, tz = scenario
    clip = dataclasses.replace(clip, state="stored")
    end = retention_end(clip, policy, tz)
    kept = isinstance(decide(clip, policy, now, tz), Keep)
    if end is None:
        assert kept
        return
    assert kept == (now < end)
    assert isinstance(decide(clip, policy, end - US, tz), Keep)
    assert not isinstance(decide(clip, policy, end, tz), Keep)
    assert local_day(end - US, tz) < local_day(end, tz)  # a retention end is the first instant of a local day
    start = clip.recorded_end or clip.ingested_at
    assert end - start >= timedelta(days=policy.days_for(clip.kind))  # Art. 19: never short of the minimum


@settings(max_examples=200, deadline=None)
@given(any_scenarios())
def test_property_keep_until_is_when_that_reason_stops(scenario: Scenario) -> None:
    clip, policy, now, tz = scenario
    decision = decide(clip, policy, now, tz)
    if not isinstance(decision, Keep) or decision.until is None:
        return
    assert decision.until > now
    assert expected_keep(clip, policy, decision.until - US, tz) == decision.reason
    assert expected_keep(clip, policy, decision.until, tz) != decision.reason


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-10_000, max_value=RETENTION_FLOOR_DAYS - 1), st.integers(0, 30), st.integers(1, 3))
def test_property_d_policy_below_the_floor_is_refused(min_days: int, grace: int, copies: int) -> None:
    with pytest.raises(ValueError):
        Policy(min_days=min_days, grace_days=grace, disc_copies=copies, kind_min_days={})


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=RETENTION_FLOOR_DAYS, max_value=2000),
    st.sampled_from(KINDS),
    st.integers(min_value=1, max_value=3000),
    st.dictionaries(st.sampled_from(KINDS), st.integers(0, 100)),
)
def test_property_d_downward_kind_override_is_refused(
    min_days: int, kind: str, shortfall: int, others: dict[str, int]
) -> None:
    overrides = {k: min_days + extra for k, extra in others.items()}
    overrides[kind] = min_days - shortfall
    with pytest.raises(ValueError):
        Policy(min_days=min_days, grace_days=7, disc_copies=2, kind_min_days=overrides)
    overrides[kind] = min_days + shortfall
    assert Policy(min_days=min_days, grace_days=7, disc_copies=2, kind_min_days=overrides).days_for(kind) == (
        min_days + shortfall
    )
