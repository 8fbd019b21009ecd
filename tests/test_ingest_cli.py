"""Ingest end to end through the command line: what is stored, what is reported, what is refused."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest

from avlog.samples import SampleCard, write_video
from conftest import TZ, Cli, Result, register, run_avlog


def digests(path: Path) -> tuple[str, str, int]:
    """BLAKE3, SHA-256 and size of a file, computed here and not by avlog."""
    data = path.read_bytes()
    return blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data)


def ingest(cli: Cli, source: Path, serial: str = "BC-0001", *extra: str) -> tuple[Result, dict[str, Any]]:
    result = cli("ingest", "--from", str(source), "--device-serial", serial, "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return result, json.loads(result.stdout)


def ls(cli: Cli, *args: str) -> list[dict[str, Any]]:
    result = cli("ls", "--json", *args)
    assert result.exit_code == 0, result.stderr
    clips: list[dict[str, Any]] = json.loads(result.stdout)["clips"]
    return clips


def object_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "objects").rglob("*") if p.is_file())


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def local_name(moment: datetime, n: int) -> str:
    """How a camera names a clip: its local start time and a counter."""
    return f"{moment.astimezone(TZ).strftime('%Y%m%d_%H%M%S')}_{n:04d}.MP4"


def timed_card(root: Path, starts: list[datetime], seconds: float = 2) -> list[str]:
    """A card with one clip per start time, each named after its start, as a camera writes them."""
    paths = []
    for n, start in enumerate(starts, start=1):
        rel = f"DCIM/100MEDIA/{local_name(start, n)}"
        write_video(root / rel, start=start, seconds=seconds)
        paths.append(rel)
    return paths


# -- what is stored ---------------------------------------------------------------------------------


def test_every_recording_is_stored_with_independently_computed_digests(
    cli: Cli, store: Path, demo_card: SampleCard
) -> None:
    register(cli)
    ingest(cli, demo_card.root)
    clips = ls(cli)
    assert len(clips) == len(demo_card.recordings)
    by_path = {c["original_path"]: c for c in clips}
    assert set(by_path) == set(demo_card.recordings)
    for rel in demo_card.recordings:
        source = demo_card.root / rel
        b3, sha, size = digests(source)
        clip = by_path[rel]
        assert (clip["blake3"], clip["sha256"], clip["size"]) == (b3, sha, size), rel
        assert clip["device_serial"] == "BC-0001"
        assert clip["state"] == "stored"
        obj = store / "objects" / b3[:2] / b3
        assert obj.read_bytes() == source.read_bytes(), rel
        assert obj.stat().st_mode & 0o222 == 0, f"{obj} is writable"


def test_duplicate_content_is_one_object_and_two_clips(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    _, doc = ingest(cli, demo_card.root)
    ((copy, original),) = demo_card.duplicate_of.items()
    b3, _sha, _size = digests(demo_card.root / original)
    assert digests(demo_card.root / copy)[0] == b3
    rows = [c for c in ls(cli) if c["blake3"] == b3]
    assert sorted(c["original_path"] for c in rows) == sorted([copy, original])
    assert len({c["id"] for c in rows}) == 2
    assert [p.name for p in object_files(store)].count(b3) == 1
    distinct = {digests(demo_card.root / rel)[0] for rel in demo_card.recordings}
    assert sorted(p.name for p in object_files(store)) == sorted(distinct)
    status = {c["original_path"]: c["status"] for c in doc["clips"]}
    assert status[copy] == "duplicate"
    assert status[original] == "stored"


def test_skipped_files_are_counted_by_reason(cli: Cli, demo_card: SampleCard) -> None:
    register(cli)
    _, doc = ingest(cli, demo_card.root)
    assert doc["skipped"] == {"system": len(demo_card.system_files), "not_media": len(demo_card.other_files)}
    paths = {c["original_path"] for c in doc["clips"]}
    assert not paths & {*demo_card.system_files, *demo_card.other_files}


def test_every_skipped_file_is_counted(cli: Cli, store: Path, tmp_path: Path) -> None:
    card = tmp_path / "card"
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    (kept,) = timed_card(card, [start])
    for rel in ("System Volume Information/old.MP4", ".Trashes/501/x.MP4", "DCIM/100MEDIA/._x.MP4"):
        write_video(card / rel, start=start, seconds=1)  # real videos, but where only the system keeps files
    (card / "DCIM" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (card / "DEVICE.INI").write_text("[device]\n", encoding="ascii")
    (card / "LOG0001.DAT").write_text("power on\n", encoding="ascii")
    register(cli)
    _, doc = ingest(cli, card)
    assert doc["skipped"] == {"system": 4, "not_media": 2}
    assert [c["original_path"] for c in doc["clips"]] == [kept]
    assert len(object_files(store)) == 1


def test_non_ascii_names_keep_their_exact_original_path(cli: Cli, demo_card: SampleCard) -> None:
    register(cli)
    ingest(cli, demo_card.root)
    voice = next(r for r in demo_card.recordings if r.startswith("录音/"))
    assert voice.startswith("录音/巡查记录_")
    (clip,) = [c for c in ls(cli) if c["original_path"] == voice]
    assert clip["blake3"] == digests(demo_card.root / voice)[0]
    shown = cli("show", str(clip["id"]), "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["original_path"] == voice


# -- what is reported -------------------------------------------------------------------------------


def test_planted_gap_is_reported_on_the_clip_after_it(cli: Cli, demo_card: SampleCard) -> None:
    register(cli)
    _, doc = ingest(cli, demo_card.root)
    ids = {c["original_path"]: c["clip_id"] for c in doc["clips"]}
    assert demo_card.gap_after is not None
    after = demo_card.recordings[demo_card.recordings.index(demo_card.gap_after) + 1]
    gaps = [f for f in doc["findings"] if f["kind"] == "gap"]
    assert [(f["clip_id"], f["other_clip_id"]) for f in gaps] == [(ids[after], ids[demo_card.gap_after])]
    assert gaps[0]["seconds"] == pytest.approx(600, abs=1)  # build_demo_card pauses ten minutes
    assert not [f for f in doc["findings"] if f["kind"] == "overlap"]
    shown = json.loads(cli("show", str(ids[after]), "--json").stdout)
    # Near midnight in Asia/Shanghai the demo shift may have ended "yesterday": late_handover may join in.
    assert [f["kind"] for f in shown["findings"] if f["kind"] != "late_handover"] == ["gap"]


def test_truncated_clip_is_stored_with_its_probe_error(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    _, doc = ingest(cli, demo_card.root)
    assert demo_card.truncated is not None
    (item,) = [c for c in doc["clips"] if c["original_path"] == demo_card.truncated]
    b3, sha, size = digests(demo_card.root / demo_card.truncated)
    assert (item["status"], item["blake3"], item["sha256"], item["size"]) == ("stored", b3, sha, size)
    assert item["probe_error"]
    assert item["time_source"] != "container"
    assert (store / "objects" / b3[:2] / b3).read_bytes() == (demo_card.root / demo_card.truncated).read_bytes()
    shown = cli("show", str(item["clip_id"]), "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["probe_error"] == item["probe_error"]
    assert data["time_source"] == "filename"
    assert data["audit"], "the clip has no audit trail"
    adds = [a for a in data["audit"] if a["action"] == "clip.add"]
    assert len(adds) == 1
    assert adds[0]["details"]["blake3"] == b3
    assert adds[0]["details"]["sha256"] == sha
    assert adds[0]["actor"] == "tester"


def test_late_handover_of_clips_recorded_two_days_ago(cli: Cli, tmp_path: Path) -> None:
    register(cli)
    start = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    paths = timed_card(tmp_path / "card", [start, start + timedelta(seconds=2)])
    assert paths[0].split("/")[-1].startswith(start.astimezone(TZ).strftime("%Y%m%d"))
    _, doc = ingest(cli, tmp_path / "card")
    ids = {c["original_path"]: c["clip_id"] for c in doc["clips"]}
    late = [f for f in doc["findings"] if f["kind"] == "late_handover"]
    assert sorted(f["clip_id"] for f in late) == sorted(ids.values())
    for f in late:
        assert f["detail"]["over_deadline"] is True
        assert f["detail"]["recording_day"] == start.astimezone(TZ).date().isoformat()
        assert f["detail"]["hours_after_end"] > 24
    assert not [f for f in doc["findings"] if f["kind"] in ("gap", "overlap", "future", "implausibly_old")]


def test_ingest_json_is_one_document_with_specs_fields(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    register(cli)
    proc = run_avlog(store, "ingest", "--from", str(demo_card.root), "--device-serial", "BC-0001", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout, nothing before or after
    assert "Traceback" not in proc.stderr
    for key in ("ingest_id", "device_serial", "clips", "stored", "duplicates", "failed"):
        assert key in doc, key
    assert isinstance(doc["ingest_id"], int)
    assert doc["device_serial"] == "BC-0001"
    assert sorted(c["original_path"] for c in doc["clips"]) == sorted(demo_card.recordings)
    for item in doc["clips"]:
        assert set(item) >= {"original_path", "blake3", "sha256", "size", "status", "error"}, item
        b3, sha, size = digests(demo_card.root / item["original_path"])
        assert (item["blake3"], item["sha256"], item["size"]) == (b3, sha, size)
        assert item["status"] in ("stored", "duplicate")
        assert item["error"] is None
    statuses = [c["status"] for c in doc["clips"]]
    assert doc["stored"] == statuses.count("stored") == len(demo_card.recordings) - len(demo_card.duplicate_of)
    assert doc["duplicates"] == statuses.count("duplicate") == len(demo_card.duplicate_of)
    assert doc["failed"] == 0


# -- what is refused --------------------------------------------------------------------------------


def test_unregistered_device_is_refused_and_nothing_is_stored(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    result = cli("ingest", "--from", str(demo_card.root), "--device-serial", "BC-9999")
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert "avlog device register" in line
    assert "BC-9999" in line
    assert "Traceback" not in result.stderr
    assert ls(cli) == []
    assert object_files(store) == []
    assert [p for p in (store / "tmp").rglob("*") if p.is_file()] == []


def test_allow_unregistered_stores_the_clips_marked(cli: Cli, store: Path, demo_card: SampleCard) -> None:
    _, doc = ingest(cli, demo_card.root, "BC-9999", "--allow-unregistered")
    assert doc["failed"] == 0
    clips = ls(cli)
    assert sorted(c["original_path"] for c in clips) == sorted(demo_card.recordings)
    assert all(c["unregistered_device"] is True for c in clips)
    assert all(c["device_serial"] == "BC-9999" for c in clips)
    assert len(object_files(store)) == len({digests(demo_card.root / r)[0] for r in demo_card.recordings})
    register(cli, "BC-0002")
    _, doc2 = ingest(cli, demo_card.root, "BC-0002")
    assert all(c["unregistered_device"] is False for c in ls(cli, "--device", "BC-0002"))


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "/tmp"],  # a named card needs its device
        ["--from", "/tmp", "--device-serial", "BC-0001", "--wait"],  # a named card is not waited for
        ["--from", "/tmp", "--device-serial", "BC-0001", "--device", "/dev/sdb1"],
        ["--timeout", "5"],  # --timeout belongs to --wait
    ],
)
def test_contradictory_ingest_options_are_usage_errors(cli: Cli, args: list[str]) -> None:
    register(cli)
    result = cli("ingest", *args)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("avlog: ")


def test_ingest_from_a_missing_path_fails_in_one_line(cli: Cli, store: Path) -> None:
    register(cli)
    result = cli("ingest", "--from", "/nonexistent", "--device-serial", "BC-0001")
    assert result.exit_code == 1
    assert "/nonexistent" in one_line(result.stderr)
    proc = run_avlog(store, "ingest", "--from", "/nonexistent", "--device-serial", "BC-0001")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "/nonexistent" in one_line(proc.stderr)
    assert proc.stdout == ""


def original_of(card: SampleCard) -> str:
    ((_copy, original),) = card.duplicate_of.items()
    return original


# -- ls and show ------------------------------------------------------------------------------------


def test_ls_filters_by_device_and_time(cli: Cli, tmp_path: Path) -> None:
    register(cli, "BC-0001")
    register(cli, "BC-0002")
    base = (datetime.now(UTC) - timedelta(hours=4)).replace(microsecond=0)
    t0, t1, t2 = base, base + timedelta(hours=1), base + timedelta(hours=2)
    two = timed_card(tmp_path / "two", [t0, t1, t2])
    one = timed_card(tmp_path / "one", [t1 + timedelta(minutes=1)], seconds=3)
    ingest(cli, tmp_path / "two", "BC-0002")
    ingest(cli, tmp_path / "one", "BC-0001")

    assert sorted(c["original_path"] for c in ls(cli, "--device", "BC-0002")) == sorted(two)
    assert [c["original_path"] for c in ls(cli, "--device", "BC-0001")] == one
    assert ls(cli, "--device", "BC-0003") == []

    since = t1.astimezone(TZ).replace(tzinfo=None).isoformat()  # a local time without a zone: the store's zone
    until = t2.isoformat()  # with a zone (UTC)
    window = ls(cli, "--since", since, "--until", until)
    assert sorted(c["original_path"] for c in window) == sorted([two[1], one[0]])
    assert [c["original_path"] for c in ls(cli, "--device", "BC-0002", "--since", since, "--until", until)] == [two[1]]
    assert [c["original_path"] for c in ls(cli, "--device", "BC-0002", "--until", t1.isoformat())] == [two[0]]
    assert sorted(c["original_path"] for c in ls(cli, "--device", "BC-0002", "--since", t0.isoformat())) == sorted(two)
    for c in window:
        assert datetime.fromisoformat(c["recorded_start"]) >= t1
        assert datetime.fromisoformat(c["recorded_start"]) < t2

    bad = cli("ls", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "Traceback" not in bad.stderr


def test_show_by_id_and_by_blake3_prefix(cli: Cli, demo_card: SampleCard) -> None:
    register(cli)
    ingest(cli, demo_card.root)
    first = demo_card.recordings[1]  # content that exists once
    b3, sha, size = digests(demo_card.root / first)
    (clip,) = [c for c in ls(cli) if c["original_path"] == first]

    by_id = cli("show", str(clip["id"]), "--json")
    assert by_id.exit_code == 0, by_id.stderr
    for prefix in (b3[:8], b3[:12].upper(), b3):
        by_prefix = cli("show", prefix, "--json")
        assert by_prefix.exit_code == 0, (prefix, by_prefix.stderr)
        assert json.loads(by_prefix.stdout) == json.loads(by_id.stdout)
    shown = json.loads(by_id.stdout)
    assert (shown["id"], shown["blake3"], shown["sha256"], shown["size"]) == (clip["id"], b3, sha, size)
    assert shown["original_path"] == first

    table = cli("show", b3[:8])
    assert table.exit_code == 0, table.stderr
    assert first in table.stdout

    unique = [r for r in demo_card.recordings if r not in demo_card.duplicate_of and r != original_of(demo_card)]
    seven = next(p for p in (digests(demo_card.root / r)[0][:7] for r in unique) if not p.isdigit())
    short = cli("show", seven)  # too short to name content (all-digit strings are ids)
    assert short.exit_code == 2
    one_line(short.stderr)

    ((copy, original),) = demo_card.duplicate_of.items()
    shared = cli("show", digests(demo_card.root / original)[0][:8])
    assert shared.exit_code == 2  # the same content under two names: the id must say which
    one_line(shared.stderr)

    missing = cli("show", "9999")
    assert missing.exit_code == 1
    one_line(missing.stderr)


def test_names_are_shown_as_they_are_not_as_markup(cli: Cli, tmp_path: Path) -> None:
    card = tmp_path / "card"
    write_video(card / "[red]clip.mp4", start=datetime.now(UTC) - timedelta(minutes=5), seconds=1)
    result = cli("device", "register", "[blue]X", "--custodian", "[bold]张三", "--unit", "一中队")
    assert result.exit_code == 0, result.stderr
    shown = cli("ingest", "--from", str(card), "--device-serial", "[blue]X")
    assert shown.exit_code == 0, shown.stderr
    assert "[red]clip.mp4" in shown.stdout
    listing = cli("device", "list")
    assert "[blue]X" in listing.stdout and "[bold]张三" in listing.stdout
