"""A file name's time that disagrees with the container's is a finding (Art. 11: a clock changed between the two,
or a renamed file): the pure rule, then real clips written with PyAV and ingested through the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avlog.ingest.timeline import ClipTimes, name_time_findings
from avlog.samples import write_audio, write_video
from conftest import TZ, Cli, register

T0 = datetime(2026, 11, 26, 9, 30, 15, tzinfo=TZ)


def clip(clip_id: int, start: datetime | None) -> ClipTimes:
    return ClipTimes(clip_id, f"{clip_id:064x}", "video", start, start + timedelta(seconds=30) if start else None)


def test_a_name_an_hour_from_the_container_is_a_finding_with_both_times() -> None:
    (finding,) = name_time_findings([clip(1, T0)], {1: T0 + timedelta(hours=1)}, tolerance_s=120, tz=TZ)
    assert (finding.kind, finding.clip_id, finding.seconds) == ("name_time_mismatch", 1, 3600)
    assert finding.detail == {"name_time": "2026-11-26T10:30:15+08:00", "container_time": "2026-11-26T09:30:15+08:00"}


def test_the_difference_counts_both_ways_and_the_tolerance_is_inclusive() -> None:
    clips = [clip(1, T0), clip(2, T0), clip(3, T0.astimezone(UTC)), clip(4, None), clip(5, T0)]
    names = {1: T0 - timedelta(seconds=121), 2: T0 + timedelta(seconds=120), 3: T0, 4: T0}  # 5: no time in its name
    found = name_time_findings(clips, names, tolerance_s=120, tz=TZ)
    assert [(f.clip_id, f.seconds) for f in found] == [(1, 121)]
    assert found[0].detail["container_time"] == "2026-11-26T09:30:15+08:00"
    assert name_time_findings(clips, names, tolerance_s=0, tz=TZ)[1].clip_id == 2


# -- real clips ------------------------------------------------------------------------------------------


def local_name(moment: datetime, n: int) -> str:
    """A camera's file name: its local time, to the second."""
    return f"{moment.astimezone(TZ).strftime('%Y%m%d_%H%M%S')}_{n:04d}.MP4"


@pytest.fixture
def odd_card(tmp_path: Path) -> tuple[Path, datetime]:
    """Three clips: one whose name is an hour after its container's time, one 60 s off (within the default
    tolerance of 120 s), and one whose name agrees; plus a voice recording with no container time."""
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    root = tmp_path / "card" / "DCIM" / "100MEDIA"
    write_video(root / local_name(start + timedelta(hours=1), 1), start=start, seconds=2)
    write_video(root / local_name(start + timedelta(seconds=62), 2), start=start + timedelta(seconds=2), seconds=2)
    write_video(root / local_name(start + timedelta(seconds=4), 3), start=start + timedelta(seconds=4), seconds=2)
    write_audio(tmp_path / "card" / f"录音_{(start + timedelta(hours=5)).astimezone(TZ):%Y%m%d_%H%M%S}.wav", seconds=1)
    return tmp_path / "card", start


def ingest(cli: Cli, card: Path, *extra: str) -> dict[str, object]:
    register(cli)
    result = cli("ingest", "--from", str(card), "--device-serial", "BC-0001", "--json", *extra)
    assert result.exit_code == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_a_real_clip_whose_name_is_an_hour_off_is_reported(cli: Cli, odd_card: tuple[Path, datetime]) -> None:
    card, start = odd_card
    document = ingest(cli, card)
    ids = {c["original_path"]: c["clip_id"] for c in document["clips"]}  # type: ignore[attr-defined]
    mismatches = [f for f in document["findings"] if f["kind"] == "name_time_mismatch"]  # type: ignore[attr-defined]
    assert len(mismatches) == 1, document["findings"]
    (finding,) = mismatches
    assert finding["clip_id"] == ids[f"DCIM/100MEDIA/{local_name(start + timedelta(hours=1), 1)}"]
    assert finding["seconds"] == 3600
    assert finding["detail"] == {
        "name_time": (start + timedelta(hours=1)).astimezone(TZ).isoformat(),
        "container_time": start.astimezone(TZ).isoformat(),
    }
    shown = cli("show", str(finding["clip_id"]))
    assert shown.exit_code == 0, shown.stderr
    local = (start + timedelta(hours=1)).astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")
    words = " ".join(shown.stdout.split())  # the console wraps long lines at 80 columns here
    assert f"its file name says {local}, its container " in words
    assert "1 h 00 min apart" in words and "(Art. 11)" in words
    as_json = json.loads(cli("show", str(finding["clip_id"]), "--json").stdout)
    assert [f["kind"] for f in as_json["findings"]] == ["name_time_mismatch"]


def test_the_report_prints_the_finding(cli: Cli, odd_card: tuple[Path, datetime]) -> None:
    card, _start = odd_card
    register(cli)
    result = cli("ingest", "--from", str(card), "--device-serial", "BC-0001")
    assert result.exit_code == 0, result.stderr
    words = " ".join(result.stdout.split())  # the console wraps long lines at 80 columns here
    assert words.count("its file name says") == 1 and "1 h 00 min apart" in words


def test_a_wider_tolerance_in_the_settings_takes_the_hour(
    cli: Cli, store: Path, odd_card: tuple[Path, datetime]
) -> None:
    settings = store / "avlog.toml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text.replace("name_time_tolerance_s = 120", "name_time_tolerance_s = 3600"), encoding="utf-8")
    document = ingest(cli, odd_card[0])
    assert not [f for f in document["findings"] if f["kind"] == "name_time_mismatch"]  # type: ignore[attr-defined]
