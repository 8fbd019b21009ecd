"""burn-iso end to end: real clips in a real store, real images, checked with tools that are not pycdlib.

xorriso extracts every file (its Rock Ridge view, and the plain ISO 9660 and Joliet views), bagit-python
validates the extracted bag, ``sha256sum -c`` checks it the way the disc's README tells a stranger to,
7-Zip lists the UDF view, ``isoinfo`` and ``xorriso -check_media`` read it. A read-only loop device
stands for a disc in a drive.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from avlog.samples import write_video
from conftest import Cli, register, require_tool, venv_tool
from conftest import catalog_rows as rows

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(UTC)
START = datetime(2026, 11, 20, 1, 30, 5, tzinfo=UTC)  # 09:30:05 in the store's zone


@pytest.fixture
def clips(cli: Cli, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Five real clips of one recorder: two flagged, two linked to a case, one ordinary; by card name."""
    card = tmp_path / "card"
    files = {
        "a": write_video(card / "DCIM" / "FILE0001.MP4", start=START, seconds=1),
        "b": write_video(card / "DCIM" / "现场 录像 0002.mp4", start=START + timedelta(minutes=3), seconds=1),
        "c": write_video(card / "DCIM" / "FILE0003.MP4", start=START + timedelta(minutes=6), seconds=1),
        "d": write_video(card / "DCIM2" / "FILE0001.MP4", start=START + timedelta(minutes=9), seconds=1),
        "e": write_video(card / "DCIM" / "FILE0005.MP4", start=START + timedelta(minutes=12), seconds=1),
    }
    register(cli)
    result = cli("ingest", "--from", str(card), "--device-serial", "BC-0001", "--json")
    assert result.exit_code == 0, result.stderr
    by_path = {c["original_path"]: c for c in json.loads(result.stdout)["clips"]}
    out = {}
    for key, path in files.items():
        data = path.read_bytes()
        entry = by_path[path.relative_to(card).as_posix()]
        out[key] = {"id": entry["clip_id"], "sha256": hashlib.sha256(data).hexdigest(), "data": data, "src": path}
    assert cli("flag", str(out["a"]["id"]), str(out["b"]["id"]), "--reason", "dispute", "--note", "异议").exit_code == 0
    assert cli("case", "add", "C-2026-017", "--title", "无证经营", "--retain-years", "5").exit_code == 0
    assert cli("case", "link", "C-2026-017", str(out["c"]["id"]), str(out["d"]["id"])).exit_code == 0
    return out


def burn(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("burn-iso", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def extract(image: Path, dest: Path, *read_fs: str) -> Path:
    xorriso = require_tool("xorriso")
    subprocess.run(
        [xorriso, *read_fs, "-osirrox", "on", "-indev", str(image), "-extract", "/", str(dest)],
        check=True,
        capture_output=True,
    )
    return dest


def drives_any(store: Path) -> None:
    """Let avlog take any block device as a drive (a loop device stands for a disc in a drive here)."""
    settings = store / "avlog.toml"
    settings.write_text(settings.read_text().replace('read_back_drives = "optical"', 'read_back_drives = "any"'))


@pytest.fixture
def loop_device(store: Path) -> Iterator[Any]:
    """Attach images read-only to loop devices; the store takes them as drives (see drives_any)."""
    drives_any(store)
    if os.geteuid() != 0:
        pytest.fail("loop devices need root; .ci/run runs the suite as root")
    losetup = require_tool("losetup")
    attached: list[str] = []

    def attach(image: Path) -> str:
        device = subprocess.run(
            [losetup, "-f", "--show", "-r", str(image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        attached.append(device)
        return device

    yield attach
    for device in attached:
        subprocess.run([losetup, "-d", device], check=False)


def test_images_hold_a_valid_bag_that_stock_tools_read(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    report = burn(cli)
    assert report["selected"] == 4 and not report["dry_run"]
    (disc,) = report["discs"]
    image = Path(disc["path"])
    assert image.name == f"{disc['volume_id']}.iso" and image.parent == store / "discs"
    assert disc["volume_id"].startswith(f"AVLOG_{datetime.now(TZ).year}_")
    assert disc["verified"] is True and disc["bytes"] == image.stat().st_size
    assert disc["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert sorted(disc["clips"]) == sorted(clips[k]["id"] for k in "abcd")
    assert not list((store / "discs").glob(".*.part"))

    # Every view extracts every clip byte for byte: Rock Ridge (xorriso's default), Joliet, plain ISO 9660.
    tree = extract(image, tmp_path / "rr")
    day = tree / "data" / "BC-0001" / "2026-11-20"
    on_disc = {p.name: p for p in day.iterdir()}
    assert on_disc["FILE0001.MP4"].read_bytes() == clips["a"]["data"]
    assert on_disc["现场 录像 0002.mp4"].read_bytes() == clips["b"]["data"]
    assert on_disc["FILE0003.MP4"].read_bytes() == clips["c"]["data"]
    # Two recordings named FILE0001.MP4 on one day: the second carries its clip id.
    assert on_disc[f"FILE0001~{clips['d']['id']}.MP4"].read_bytes() == clips["d"]["data"]
    assert len(on_disc) == 4
    joliet = extract(image, tmp_path / "joliet", "-read_fs", "norock")
    assert (joliet / "data" / "BC-0001" / "2026-11-20" / "现场 录像 0002.mp4").read_bytes() == clips["b"]["data"]
    plain = extract(image, tmp_path / "plain", "-read_fs", "ecma119")
    plain_files = sorted(p.read_bytes() for p in plain.rglob("*.MP4"))
    assert plain_files == sorted(clips[k]["data"] for k in "abcd")

    # The clip's recording time is the file's time (09:30:05 in Shanghai = 01:30:05 UTC).
    assert datetime.fromtimestamp(on_disc["FILE0001.MP4"].stat().st_mtime, UTC) == START

    # A valid BagIt bag, checked by bagit-python and by sha256sum as the README says.
    import bagit

    bag = bagit.Bag(str(tree))
    bag.validate()  # raises BagValidationError on any problem
    assert bag.info["External-Identifier"] == disc["volume_id"]
    assert bag.info["Payload-Oxum"].endswith(".6")  # four clips, README.txt, catalog.json
    assert bag.info["Avlog-Case"] == "C-2026-017" and bag.info["Avlog-Art20-Reason"] == "dispute"
    checked = subprocess.run(
        [require_tool("sha256sum"), "-c", "manifest-sha256.txt"], cwd=tree, capture_output=True, text=True
    )
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 6, checked.stdout
    cli_validate = subprocess.run(
        [sys.executable, str(venv_tool("bagit.py")), "--validate", str(tree)], capture_output=True, text=True
    )
    assert cli_validate.returncode == 0, cli_validate.stderr

    catalog = json.loads((tree / "data" / "catalog.json").read_text(encoding="utf-8"))
    entry = next(c for c in catalog["clips"] if c["clip_id"] == clips["a"]["id"])
    assert entry["custodian"] == "张三" and entry["sha256"] == clips["a"]["sha256"]
    assert entry["flags"][0]["reason"] == "dispute" and entry["path"].endswith("FILE0001.MP4")
    assert entry["recorded_start"] == "2026-11-20T09:30:05+08:00"
    readme = (tree / "data" / "README.txt").read_text(encoding="utf-8")
    assert "sha256sum -c manifest-sha256.txt" in readme and "如何核对" in readme and "C-2026-017" in readme

    # The UDF view (7-Zip), and readability of every sector (xorriso, isoinfo).
    listing = subprocess.run(
        [require_tool("7z"), "l", "-tudf", str(image)], check=True, capture_output=True, text=True
    ).stdout
    assert "2026-11-20 01:30:05" in listing or "2026-11-20 09:30:05" in listing
    assert "现场 录像 0002.mp4" in listing
    media = subprocess.run(
        [require_tool("xorriso"), "-indev", str(image), "-check_media", "--"], capture_output=True, text=True
    )
    assert "+ good" in media.stdout + media.stderr and "- bad" not in media.stdout + media.stderr
    pvd = subprocess.run([require_tool("isoinfo"), "-d", "-i", str(image)], check=True, capture_output=True, text=True)
    assert f"Volume id: {disc['volume_id']}" in pvd.stdout
    assert "Joliet" in pvd.stdout and "Rock Ridge" in pvd.stdout


def test_dry_run_plans_and_changes_nothing(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    before = rows(store, "SELECT COUNT(*) AS n FROM audit")
    report = burn(cli, "--dry-run", "--media", "cd")
    assert report["dry_run"] and len(report["discs"]) == 1
    (disc,) = report["discs"]
    assert disc["path"] is None and not disc["verified"]
    assert disc["free_bytes"] > 700_000_000 and disc["payload_bytes"] == sum(len(clips[k]["data"]) for k in "abcd")
    assert rows(store, "SELECT COUNT(*) AS n FROM audit") == before
    assert not list((store / "discs").iterdir())
    table = cli("burn-iso", "--dry-run")
    assert table.exit_code == 0 and "nothing written" in table.stdout + table.stderr


def test_selection_narrows_and_copies_count(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    only_case = burn(cli, "--case", "C-2026-017", "--dry-run")
    assert sorted(only_case["discs"][0]["clips"]) == sorted([clips["c"]["id"], clips["d"]["id"]])
    only_reason = burn(cli, "--flag-reason", "dispute", "--dry-run")
    assert sorted(only_reason["discs"][0]["clips"]) == sorted([clips["a"]["id"], clips["b"]["id"]])
    one = burn(cli, "--clip", str(clips["a"]["id"]), "--dry-run")
    assert one["discs"][0]["clips"] == [clips["a"]["id"]]
    ordinary = cli("burn-iso", "--clip", str(clips["e"]["id"]), "--dry-run")
    assert ordinary.exit_code == 2 and "neither flagged" in ordinary.stderr
    assert cli("burn-iso", "--case", "NO-SUCH", "--dry-run").exit_code == 1
    assert cli("burn-iso", "--flag-reason", "bored", "--dry-run").exit_code == 2
    assert cli("burn-iso", "--media", "floppy", "--dry-run").exit_code == 2

    first = burn(cli)  # the first copy of each
    assert sorted(first["still_needing_copies"]) == sorted(clips[k]["id"] for k in "abcd")
    second = burn(cli)  # disc_copies = 2: a second image for the copy kept elsewhere
    assert len(second["discs"]) == 1 and second["discs"][0]["volume_id"] != first["discs"][0]["volume_id"]
    assert second["still_needing_copies"] == []
    assert burn(cli)["discs"] == []  # both copies stand (images waiting to be burned)
    assert "No clip needs a disc now." in cli("burn-iso").stdout
    # A lost disc no longer stands: its clips are selected again.
    lost = cli("disc", "mark", first["discs"][0]["volume_id"], "--lost", "--note", "not in cabinet 3")
    assert lost.exit_code == 0, lost.stderr
    assert len(burn(cli, "--dry-run")["discs"][0]["clips"]) == 4


def test_evidence_disc_carries_the_art21_explanation(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    report = burn(cli, "--evidence-for", "C-2026-017", "--out", str(tmp_path / "export"))
    (disc,) = report["discs"]
    assert Path(disc["path"]).parent == tmp_path / "export"
    assert sorted(disc["clips"]) == sorted([clips["c"]["id"], clips["d"]["id"]])
    tree = extract(Path(disc["path"]), tmp_path / "x")
    text = (tree / "data" / "EXPLANATION.txt").read_text(encoding="utf-8")
    assert "C-2026-017" in text and "无证经营" in text and "tester" in text
    assert clips["c"]["sha256"] in text and clips["d"]["sha256"] in text and "BC-0001" in text
    assert "提取人" in text and "Extracted by" in text
    import bagit

    bagit.Bag(str(tree)).validate()
    (row,) = rows(store, "SELECT purpose, evidence_case_id FROM discs")
    assert row["purpose"] == "evidence" and row["evidence_case_id"] is not None
    # An evidence disc is made even for clips that have their archive copies.
    assert len(burn(cli, "--evidence-for", "C-2026-017")["discs"]) == 1


def test_disc_verify_finds_a_flipped_byte_and_names_the_clip(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    (disc,) = burn(cli)["discs"]
    image = Path(disc["path"])
    ok = cli("disc", "verify", disc["volume_id"], "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    copy = tmp_path / "copy.iso"
    data = bytearray(image.read_bytes())
    at = bytes(data).find(clips["b"]["data"])  # the clip's one extent
    assert at > 0
    data[at + 5000] ^= 0x01
    copy.write_bytes(bytes(data))
    bad = cli("disc", "verify", str(copy), "--json")
    assert bad.exit_code == 3
    found = json.loads(bad.stdout)
    assert not found["ok"]
    problems = {(b["clip_id"], b["problem"]) for b in found["bad"]}
    assert (clips["b"]["id"], "mismatch") in problems
    assert (None, "image") in problems  # the image's own hash differs too
    assert f"clips {clips['b']['id']}" in bad.stderr.splitlines()[-1]

    # A byte of the bag's own files (catalog.json), found through the manifests.
    data = bytearray(image.read_bytes())
    at = bytes(data).find(b'"format": "avlog-disc-catalog/1"')
    data[at + 3] ^= 0x20
    copy.write_bytes(bytes(data))
    tagged = cli("disc", "verify", str(copy), "--json")
    assert tagged.exit_code == 3
    assert any(b["path"] == "data/catalog.json" for b in json.loads(tagged.stdout)["bad"])

    # Not an image at all, and a truncated one: one line, exit 3.
    junk = tmp_path / "junk.iso"
    junk.write_bytes(os.urandom(100_000))
    result = cli("disc", "verify", str(junk))
    assert result.exit_code == 3 and "not a readable ISO 9660 image" in result.stderr
    short = tmp_path / "short.iso"
    short.write_bytes(image.read_bytes()[: disc["bytes"] // 2])
    result = cli("disc", "verify", str(short))
    assert result.exit_code == 3 and "Traceback" not in result.stderr


def test_a_disc_read_back_from_a_drive_counts_and_lets_the_sweep_purge(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], loop_device: Any
) -> None:
    first = burn(cli)["discs"][0]
    second = burn(cli)["discs"][0]
    a = clips["a"]["id"]
    later = (datetime.now(TZ) + timedelta(days=400)).date().isoformat()

    def decision() -> str:
        report = json.loads(cli("retention-sweep", "--dry-run", "--as-of", later, "--json").stdout)
        purged = {c["id"] for c in report["purged"]}
        return "purge" if a in purged else "keep"

    assert decision() == "keep"  # images only: not yet copies that count
    for disc in (first, second):
        drive = loop_device(Path(disc["path"]))
        result = cli("disc", "verify", drive, "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["medium"] == "disc"
    located = json.loads(cli("disc", "locate", str(a), "--json").stdout)
    assert located["copies_counted"] == 2 and {d["state"] for d in located["discs"]} == {"burned"}
    assert decision() == "purge"  # flagged, but on two burned and verified discs: the ordinary rules apply
    assert clips["c"]["id"] not in {
        c["id"] for c in json.loads(cli("retention-sweep", "--dry-run", "--as-of", later, "--json").stdout)["purged"]
    }  # an open case still keeps its clips
    # An unreadable disc stops counting.
    result = cli("disc", "mark", first["volume_id"], "--unreadable", "--note", "read errors in the yearly check")
    assert result.exit_code == 0
    assert decision() == "keep"


def test_disc_mark_list_show_and_locate(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    (disc,) = burn(cli)["discs"]
    vol = disc["volume_id"]
    assert cli("disc", "mark", vol).exit_code == 2
    assert cli("disc", "mark", vol, "--burned", "--lost", "--note", "x").exit_code == 2
    assert cli("disc", "mark", vol, "--lost").exit_code == 2  # a note is required
    assert cli("disc", "mark", "AVLOG_1999_0001", "--burned").exit_code == 1
    marked = cli("disc", "mark", vol, "--burned", "--location", "档案室 B 柜 3", "--json")
    assert marked.exit_code == 0, marked.stderr
    doc = json.loads(marked.stdout)
    assert doc["state"] == "burned" and doc["location"] == "档案室 B 柜 3"
    assert doc["counts_as_copy"] is False  # burned, but never read back from a drive
    listing = json.loads(cli("disc", "list", "--json").stdout)["discs"]
    assert [d["volume_id"] for d in listing] == [vol]
    shown = json.loads(cli("disc", "show", vol, "--json").stdout)
    assert {c["id"] for c in shown["clips"]} == {clips[k]["id"] for k in "abcd"}
    assert shown["sha256"] == disc["sha256"]
    located = json.loads(cli("disc", "locate", str(clips["a"]["id"]), "--json").stdout)
    assert [d["volume_id"] for d in located["discs"]] == [vol] and located["copies_counted"] == 0
    assert "on no disc" in cli("disc", "locate", str(clips["e"]["id"])).stdout
    actions = [r["action"] for r in rows(store, "SELECT action FROM audit WHERE subject = ?", [f"disc:{vol}"])]
    assert actions == ["disc.add", "disc.mark"]
    for command in (["disc", "list"], ["disc", "show", vol], ["disc", "locate", str(clips["a"]["id"])]):
        result = cli(*command)
        assert result.exit_code == 0 and vol in result.stdout


def test_burn_writes_and_reads_back_through_xorriso(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "written.img"
    report = burn(cli, "--burn", f"stdio:{target}")
    (disc,) = report["discs"]
    assert report["discs"][0]["burned"] == {"device": f"stdio:{target}", "verified": True}
    with open(target, "rb") as f:
        assert hashlib.sha256(f.read(disc["bytes"])).hexdigest() == disc["sha256"]
    (row,) = rows(store, "SELECT state FROM discs")
    assert row["state"] == "burned"
    missing = cli("burn-iso", "--burn", "/dev/no-such-drive")
    assert missing.exit_code == 1 and "no disc drive at /dev/no-such-drive" in missing.stderr
    not_optical = cli("burn-iso", "--burn", str(target))
    assert not_optical.exit_code == 2 and "not an optical drive" in not_optical.stderr


def test_a_clip_larger_than_the_medium_is_refused(cli: Cli, store: Path, tmp_path: Path) -> None:
    card = tmp_path / "big"
    card.mkdir()
    with open(card / "LONG0001.MP4", "wb") as f:  # a recording too long for a CD-R (sparse on the card)
        f.truncate(760_000_000)
    register(cli, "BC-0002")
    assert cli("ingest", "--from", str(card), "--device-serial", "BC-0002").exit_code == 0
    (clip,) = rows(store, "SELECT id FROM clips")
    assert cli("flag", str(clip["id"]), "--reason", "incident", "--note", "x").exit_code == 0
    result = cli("burn-iso", "--media", "cd")
    assert result.exit_code == 2
    assert f"clip {clip['id']}" in result.stderr and "--media dvd" in result.stderr
    assert not rows(store, "SELECT * FROM discs")


def test_two_stores_sharing_an_output_folder_never_overwrite_or_confuse_each_other(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path, loop_device: Any
) -> None:
    from avlog.context import init_store

    shared = tmp_path / "export"
    ours = burn(cli, "--out", str(shared))["discs"][0]
    other_store = tmp_path / "other"
    init_store(other_store, actor="tester")
    other = Cli(other_store)
    register(other)
    card = tmp_path / "other-card"
    write_video(card / "X0001.MP4", start=START, seconds=1)
    assert other("ingest", "--from", str(card), "--device-serial", "BC-0001").exit_code == 0
    assert other("flag", "1", "--reason", "other", "--note", "n").exit_code == 0
    before = Path(ours["path"]).read_bytes()
    clash = other("burn-iso", "--out", str(shared))
    assert clash.exit_code == 1 and "exists already" in clash.stderr  # the same number: refused, not replaced
    assert Path(ours["path"]).read_bytes() == before
    assert rows(other_store, "SELECT * FROM discs") == []
    theirs = json.loads(other("burn-iso", "--json").stdout)["discs"][0]
    assert theirs["volume_id"] == ours["volume_id"]

    # Their disc in our drive: compared with its own catalog.json, and our registry is left alone.
    drive = loop_device(Path(theirs["path"]))
    result = cli("disc", "verify", drive, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["known"] is False and doc["ok"] is True
    (row,) = rows(store, "SELECT state, disc_verify_result FROM discs")
    assert row == {"state": "image", "disc_verify_result": None}


def test_an_evidence_disc_is_not_an_archive_copy(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], loop_device: Any
) -> None:
    (evidence,) = burn(cli, "--evidence-for", "C-2026-017")["discs"]
    assert cli("disc", "verify", loop_device(Path(evidence["path"]))).exit_code == 0
    located = json.loads(cli("disc", "locate", str(clips["c"]["id"]), "--json").stdout)
    assert located["copies_counted"] == 0 and located["discs"][0]["purpose"] == "evidence"
    # Both archive copies are still to be made for the case's clips.
    assert clips["c"]["id"] in burn(cli, "--dry-run")["discs"][0]["clips"]


def test_disc_verify_of_things_that_are_not_discs(cli: Cli, store: Path, tmp_path: Path) -> None:
    for target, code, words in (
        (str(tmp_path), 1, "is a folder"),
        (str(tmp_path / "nothing.iso"), 1, "neither a disc of the registry"),
        ("AVLOG_2026_0042", 1, "no disc AVLOG_2026_0042"),
    ):
        result = cli("disc", "verify", target, "--json")
        assert result.exit_code == code, (target, result.stderr)
        assert words in result.stderr and json.loads(result.stdout)["ok"] is False


def test_show_lists_a_clips_discs(cli: Cli, store: Path, clips: dict[str, dict[str, Any]]) -> None:
    (disc,) = burn(cli)["discs"]
    shown = json.loads(cli("show", str(clips["a"]["id"]), "--json").stdout)
    assert [d["volume_id"] for d in shown["discs"]] == [disc["volume_id"]]
    assert shown["discs"][0]["counts_as_copy"] is False and shown["discs"][0]["state"] == "image"
    assert disc["volume_id"] in cli("show", str(clips["a"]["id"])).stdout
    assert json.loads(cli("show", str(clips["e"]["id"]), "--json").stdout)["discs"] == []


def test_a_block_device_that_is_not_an_optical_drive_does_not_count_by_default(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], loop_device: Any
) -> None:
    (disc,) = burn(cli)["discs"]
    drive = loop_device(Path(disc["path"]))
    settings = store / "avlog.toml"
    settings.write_text(settings.read_text().replace('read_back_drives = "any"', 'read_back_drives = "optical"'))
    result = cli("disc", "verify", drive, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["medium"] == "image" and doc["recorded"] is False and doc["ok"] is True
    assert "not an optical drive" in cli("disc", "verify", drive).stderr
    (row,) = rows(store, "SELECT state, disc_verify_result FROM discs")
    assert row == {"state": "image", "disc_verify_result": None}
    settings.write_text(settings.read_text().replace('read_back_drives = "optical"', 'read_back_drives = "some"'))
    refused = cli("disc", "list")
    assert refused.exit_code == 1 and "read_back_drives" in refused.stderr


def test_names_made_unique_never_meet_another_clips_name(cli: Cli, store: Path, tmp_path: Path) -> None:
    """A/x.mp4, B/x~3.mp4 and C/x.mp4 of one recorder and day: the third cannot become x~3.mp4."""
    card = tmp_path / "names"
    for folder, name in (("A", "x.mp4"), ("B", "x~3.mp4"), ("C", "x.mp4")):
        write_video(card / folder / name, start=START, seconds=1)
    register(cli)
    ingested = json.loads(cli("ingest", "--from", str(card), "--device-serial", "BC-0001", "--json").stdout)
    ids = {c["original_path"]: c["clip_id"] for c in ingested["clips"]}
    assert ids["C/x.mp4"] == 3 and ids["B/x~3.mp4"] == 2
    assert cli("flag", "1", "2", "3", "--reason", "other", "--note", "n").exit_code == 0
    (disc,) = burn(cli)["discs"]
    tree = extract(Path(disc["path"]), tmp_path / "x")
    names = sorted(p.name for p in (tree / "data" / "BC-0001").rglob("*.mp4"))
    assert len(names) == 3 and len(set(names)) == 3, names


def test_a_failed_burn_still_reports_the_images_made(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    result = cli("burn-iso", "--json", "--burn", f"stdio:{tmp_path / 'no-such-folder' / 'disc.img'}")
    assert result.exit_code == 4, result.stderr
    (disc,) = json.loads(result.stdout)["discs"]
    assert disc["verified"] is True and "-abort_on" not in disc["burned"]["error"]  # xorriso's reason, not its exit
    assert "SORRY" in disc["burned"]["error"] or "FAILURE" in disc["burned"]["error"]
    assert "images made, but burning stopped" in result.stderr.splitlines()[-1]
    assert rows(store, "SELECT volume_id, state FROM discs") == [{"volume_id": disc["volume_id"], "state": "image"}]


def test_json_is_one_document_also_when_a_command_fails(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]]
) -> None:
    for args, code in (
        (["burn-iso", "--case", "NO-SUCH"], 1),
        (["burn-iso", "--clip", str(clips["e"]["id"])], 2),
        (["disc", "show", "AVLOG_2026_0999"], 1),
        (["disc", "locate", "999"], 1),
    ):
        result = cli(*args, "--json")
        assert result.exit_code == code, (args, result.stderr)
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and doc["exit_code"] == code and doc["error"] in result.stderr


def test_an_evidence_disc_of_a_case_without_stored_clips_is_refused(cli: Cli, store: Path) -> None:
    assert cli("case", "add", "C-EMPTY", "--retain-years", "1").exit_code == 0
    result = cli("burn-iso", "--evidence-for", "C-EMPTY")
    assert result.exit_code == 1 and "has no clips in the store" in result.stderr


def test_disc_burn_writes_an_existing_image_and_refuses_bad_input(
    cli: Cli, store: Path, clips: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    (disc,) = burn(cli)["discs"]
    target = tmp_path / "copy.img"
    done = cli("disc", "burn", disc["volume_id"], f"stdio:{target}", "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == {"device": f"stdio:{target}", "verified": True}
    with open(target, "rb") as f:
        assert hashlib.sha256(f.read(disc["bytes"])).hexdigest() == disc["sha256"]
    assert rows(store, "SELECT state, disc_verify_result FROM discs") == [
        {"state": "burned", "disc_verify_result": None}
    ]
    assert cli("disc", "burn", "AVLOG_1999_0001", f"stdio:{target}").exit_code == 1
    assert cli("disc", "burn", disc["volume_id"], str(target)).exit_code == 2  # a file, not an optical drive
    assert cli("disc", "burn", disc["volume_id"], "stdio:").exit_code == 2
    Path(disc["path"]).chmod(0o644)
    Path(disc["path"]).unlink()
    gone = cli("disc", "burn", disc["volume_id"], f"stdio:{target}")
    assert gone.exit_code == 2 and "no longer at" in gone.stderr
