"""What a file on a card is and when it was recorded: classification, skip rules, file-name times, PyAV probe."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avlog.context import Context
from avlog.ingest.media import SNIFF_BYTES, kind_by_extension, kind_by_magic, probe, skip_reason, time_from_name
from avlog.ingest.pipeline import ingest
from avlog.ingest.sources import FolderSource
from avlog.samples import truncate, write_audio, write_photo, write_video
from conftest import TZ


def head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    return {
        "video": write_video(tmp_path / "DCIM" / "CLIP0001.MP4", start=None, seconds=1),
        "audio": write_audio(tmp_path / "REC" / "VOICE001.WAV", seconds=1),
        "photo": write_photo(tmp_path / "DCIM" / "IMG_0001.JPG"),
    }


@pytest.mark.parametrize("kind", ["video", "audio", "photo"])
def test_real_files_are_recognised_by_extension_and_by_magic(media: dict[str, Path], kind: str) -> None:
    path = media[kind]
    assert kind_by_extension(path.name) == kind
    assert kind_by_extension(f"DCIM/100MEDIA/{path.name.lower()}") == kind
    assert kind_by_magic(head(path)) == kind


def test_files_that_are_not_recordings_are_recognised_by_neither(tmp_path: Path) -> None:
    ini = tmp_path / "DEVICE.INI"
    ini.write_text("[device]\nmodel=DSJ-V8\nserial=DEMO-0001\n", encoding="ascii")
    assert kind_by_extension("DEVICE.INI") is None
    assert kind_by_extension("README") is None
    assert kind_by_extension("MP4/README") is None  # a folder named like an extension is not one
    assert kind_by_magic(head(ini)) is None
    assert kind_by_magic(b"") is None


def test_mp4_renamed_to_dat_is_taken_by_its_magic(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "x.mp4", start=None, seconds=1)
    renamed = clip.rename(tmp_path / "REC00001.DAT")
    assert kind_by_extension(renamed.name) is None
    assert kind_by_magic(head(renamed)) == "video"


def test_ingest_takes_a_renamed_mp4_as_video_and_skips_a_text_file(tmp_path: Path, ctx: Context) -> None:
    card = tmp_path / "card"
    write_video(card / "REC00001.DAT", start=datetime(2026, 11, 26, 9, 30, 15, tzinfo=TZ), seconds=1)
    (card / "NOTES.DAT").write_text("not a recording\n", encoding="ascii")
    report = ingest(ctx, FolderSource(card), "BC-0001", allow_unregistered=True)
    assert [(i.original_path, i.media_kind, i.status) for i in report.items] == [("REC00001.DAT", "video", "stored")]
    assert report.skipped == {"not_media": 1}


@pytest.mark.parametrize(
    "path",
    [
        "System Volume Information/x",
        "system volume information/IndexerVolumeGuid",
        ".Trashes/x",
        "DCIM/.Trashes/501/old.MP4",
        "._foo.MP4",
        "DCIM/100MEDIA/._foo.MP4",
        "Thumbs.db",
        "DCIM/THUMBS.DB",
    ],
)
def test_system_files_are_skipped(path: str) -> None:
    assert skip_reason(path) == "system"


@pytest.mark.parametrize(
    "path", ["DCIM/100MEDIA/A.MP4", "A.MP4", "录音/巡查记录_20261126_093015.wav", "DCIM/Thumbs.db.MP4"]
)
def test_recordings_are_not_skipped(path: str) -> None:
    assert skip_reason(path) is None


@pytest.mark.parametrize(
    "name",
    [
        "20261126_093015.MP4",
        "20261126_093015_0001.MP4",
        "2026-11-26_09-30-15.mp4",
        "2026_1126_093015.MOV",
        "VID_20261126_093015.mp4",
        "IMG20261126093015.jpg",
        "录音/巡查记录_20261126_093015.wav",
    ],
)
def test_time_from_name_reads_camera_naming_styles(name: str) -> None:
    moment = time_from_name(name, TZ)
    assert moment == datetime(2026, 11, 26, 9, 30, 15, tzinfo=TZ)
    assert moment is not None and moment.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    "name",
    [
        "COPY0001.MP4",
        "MOV_0001.MP4",
        "DEVICE.INI",
        "20261345_250000.MP4",  # month 13, day 45, hour 25
        "2026-02-30_10-00-00.MP4",  # shaped right, but no such day
        "120261126_093015.MP4",  # a longer run of digits is a counter, not a date
    ],
)
def test_time_from_name_is_none_without_a_real_timestamp(name: str) -> None:
    assert time_from_name(name, TZ) is None


def test_probe_reads_the_container_time_duration_and_codec(tmp_path: Path) -> None:
    start = datetime(2026, 11, 26, 9, 30, 15, tzinfo=TZ)
    clip = write_video(tmp_path / "CLIP.MP4", start=start, seconds=2.5)
    mtime = datetime(2030, 1, 1, tzinfo=UTC)  # must lose against the container's own time
    info = probe(clip, "20250101_000000_0001.MP4", mtime, TZ)  # and so must the file name
    assert info.error is None
    assert info.time_source == "container"
    assert info.start == start
    assert info.duration_s == pytest.approx(2.5, abs=0.15)
    assert info.end == start + timedelta(seconds=info.duration_s)
    assert info.codec == "mpeg4"


def test_probe_of_audio_reads_its_duration(tmp_path: Path) -> None:
    rec = write_audio(tmp_path / "VOICE.WAV", seconds=2)
    info = probe(rec, "巡查记录_20261126_093015.wav", None, TZ)
    assert info.error is None
    assert info.duration_s == pytest.approx(2.0, abs=0.15)
    assert info.codec == "pcm_s16le"
    assert info.time_source == "filename"
    assert info.start == datetime(2026, 11, 26, 9, 30, 15, tzinfo=TZ)


def test_probe_of_a_truncated_clip_reports_an_error_and_uses_the_file_name(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "CLIP.MP4", start=datetime(2026, 11, 26, 12, 0, tzinfo=TZ), seconds=3)
    truncate(clip)
    name = "20261126_093015_0006.MP4"
    info = probe(clip, name, datetime(2030, 1, 1, tzinfo=UTC), TZ)
    assert info.error
    assert str(tmp_path) not in info.error  # the store's path is no business of the report
    assert info.time_source == "filename"
    assert info.start == time_from_name(name, TZ) == datetime(2026, 11, 26, 9, 30, 15, tzinfo=TZ)


def test_probe_without_container_time_or_name_time_uses_mtime_as_the_end(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "CLIP.MP4", start=None, seconds=2)
    stamp = datetime(2026, 11, 26, 1, 45, 10, tzinfo=UTC).timestamp()
    os.utime(clip, (stamp, stamp))
    mtime = datetime.fromtimestamp(clip.stat().st_mtime, UTC)
    info = probe(clip, "CLIP.MP4", mtime, TZ)
    assert info.error is None
    assert info.time_source == "mtime"
    assert info.duration_s == pytest.approx(2.0, abs=0.15)
    assert info.end == mtime
    assert info.start == mtime - timedelta(seconds=info.duration_s)
    assert info.start < info.end


def test_probe_of_a_truncated_clip_without_any_time_falls_back_to_mtime(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "CLIP.MP4", start=None, seconds=2)
    shutil.copyfile(clip, tmp_path / "CUT.MP4")
    truncate(tmp_path / "CUT.MP4", keep=0.3)
    mtime = datetime(2026, 11, 26, 1, 45, 10, tzinfo=UTC)
    info = probe(tmp_path / "CUT.MP4", "CUT.MP4", mtime, TZ)
    assert info.error
    assert info.time_source == "mtime"
    assert info.start == info.end == mtime
