"""Plug-in ingest end to end: real avlog processes see USB cameras in a umockdev bed (tests/udev/README.md).

Each camera is a real udev device tree whose partition node reads a real FAT32
(or exFAT) card image. avlog always runs as a separate process with the bed's environment;
expected digests are computed here from the card files, never taken from avlog.
"""

# ruff: noqa: F811 - the udev_bed fixture is imported, and test parameters name it

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dissect.fat import FATFS

from avlog.ingest.sources import CardImageSource
from avlog.samples import SampleCard, write_video
from conftest import (
    TZ,
    Cli,
    error_line,
    file_digests,
    file_sha256,
    make_exfat_image,
    make_fat32_image,
    require_tool,
    stderr_lines,
)
from conftest import catalog_rows as query
from conftest import register as register_device
from udevbed import Camera, UdevBed, read_line, udev_bed  # noqa: F401 - udev_bed is a fixture

HYTERA = ("2bdf", "0280")
OTHER_VENDOR = ("1d6b", "0104")
SYSTEM_FILE = "System Volume Information/IndexerVolumeGuid"
MTOOLS_ENV = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}


# -- helpers ---------------------------------------------------------------------------------------------


def avlog(store: Path, bed: UdevBed, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """avlog as a child process that sees the bed's /sys, /dev and uevents."""
    return subprocess.run(
        [sys.executable, "-m", "avlog", "--store", str(store), *args],
        env={**bed.env(), "AVLOG_USER": "tester", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def register(cli: Cli, serial: str) -> None:
    register_device(cli, serial)  # custodian 张三, unit 一中队


def clip_name(moment: datetime, n: int) -> str:
    return f"DCIM/100MEDIA/{moment.astimezone(TZ).strftime('%Y%m%d_%H%M%S')}_{n:04d}.MP4"


def clips_card(
    root: Path, starts: list[datetime], *, serial_line: str | None = None, seconds: float = 1.0
) -> dict[str, tuple[str, str]]:
    """Real noise clips (distinct bytes) starting at ``starts``, a settings file and a system file.

    Returns {card path: (BLAKE3, SHA-256)} of the recordings, computed here.
    """
    out = {}
    for n, start in enumerate(starts, 1):
        rel = clip_name(start, n)
        write_video(root / rel, start=start, seconds=seconds, noise=True)
        out[rel] = file_digests(root / rel)
    (root / "DEVICE.INI").write_text(f"[device]\nmodel=DSJ-V8\n{serial_line or 'serial=UNSET'}\n", encoding="ascii")
    (root / "System Volume Information").mkdir()
    (root / "System Volume Information" / "IndexerVolumeGuid").write_bytes(b"{1234}")
    assert len({b for b, _s in out.values()}) == len(out)
    return out


def demo_digests(card: SampleCard) -> dict[str, tuple[str, str]]:
    return {rel: file_digests(card.root / rel) for rel in card.recordings}


def volume_serial(image: Path) -> str:
    """A FAT32 volume serial (boot sector offset 67) in blkid's XXXX-XXXX form."""
    with open(image, "rb") as f:
        f.seek(67)
        (serial,) = struct.unpack("<I", f.read(4))
    return f"{serial >> 16:04X}-{serial & 0xFFFF:04X}"


def plug(bed: UdevBed, name: str, serial: str, image: Path, ids: tuple[str, str] = HYTERA) -> Camera:
    vendor, model = ("Hytera", "VM780") if ids == HYTERA else ("Acme", "PocketCam")
    camera = bed.add(name, serial, ids[0], ids[1], image, vendor=vendor, model=model)
    assert camera.backing == "hardlink"  # /dev/sdX1 is the image itself
    return camera


def stored_clips(store: Path, serial: str | None = None) -> dict[str, tuple[str, str]]:
    rows = query(store, "SELECT device_serial, original_path, blake3, sha256 FROM clips")
    return {r["original_path"]: (r["blake3"], r["sha256"]) for r in rows if serial in (None, r["device_serial"])}


def object_names(store: Path) -> set[str]:
    return {p.name for p in (store / "objects").rglob("*") if p.is_file()}


def by_path(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["original_path"]: (c["blake3"], c["sha256"]) for c in doc["clips"]}


def audit_entries(store: Path, bed: UdevBed, action: str) -> list[dict[str, Any]]:
    done = avlog(store, bed, "audit", "log", "--json", "--limit", "100000")
    assert done.returncode == 0, done.stderr
    return [e for e in json.loads(done.stdout)["entries"] if e["action"] == action]


def assert_store_sound(store: Path, bed: UdevBed) -> None:
    verify = avlog(store, bed, "verify")
    assert verify.returncode == 0, verify.stderr
    chain = avlog(store, bed, "audit", "verify")
    assert chain.returncode == 0, chain.stderr
    for p in (store / "objects").rglob("*"):
        if p.is_file():
            assert file_digests(p)[0] == p.name, f"object {p} is not what its name says"
    assert list((store / "tmp").glob("*.part")) == [], "partial copies left in tmp/"


def files_on_image(image: Path) -> dict[str, str]:
    """{card path: SHA-256} of every file on a raw card image, read with avlog's own raw reader."""
    source = CardImageSource(image, TZ)
    try:
        out = {}
        for entry in source.entries():
            try:
                with source.open(entry) as f:
                    out[entry.path] = hashlib.sha256(f.read()).hexdigest()
            except OSError as exc:  # a damaged chain: the reader refuses the file rather than give part of it
                out[entry.path] = f"unreadable: {exc.strerror}"
        return out
    finally:
        source.close()


def mdir_files(image: Path) -> set[str]:
    """Every file on the image as mtools lists it (a second reader, independent of avlog's)."""
    done = subprocess.run(
        [require_tool("mdir"), "-/", "-b", "-i", str(image), "::/"],
        capture_output=True,
        text=True,
        env=MTOOLS_ENV,
        check=True,
    )
    return {line.removeprefix("::/") for line in done.stdout.splitlines() if line and not line.endswith("/")}


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def listening_sockets(bed: UdevBed) -> set[str]:
    """The bed's uevent sockets: libumockdev-preload binds one (``event<fd>``) for each netlink monitor."""
    return {p.name for p in bed.root.iterdir() if p.name.startswith("event")}


class Running:
    """A long-running avlog child (``watch``, ``ingest --wait``) whose stderr is read line by line."""

    def __init__(self, store: Path, bed: UdevBed, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avlog", "--store", str(store), *args],
            env={**bed.env(), "AVLOG_USER": "tester"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._buffer = bytearray()

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        """The next stderr line matching ``pattern`` (a regular expression)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = read_line(self.proc.stderr, max(left, 0.01), self._buffer)
            except TimeoutError as exc:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n" + self.log()) from exc
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}:\n" + self.log())
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        """A signal (SIGTERM), then the rest of its stderr; its exit code."""
        assert self.proc.stderr is not None
        self.proc.send_signal(signum)
        deadline = time.monotonic() + timeout
        while (line := read_line(self.proc.stderr, max(deadline - time.monotonic(), 0.01), self._buffer)) is not None:
            self.lines.append(line)
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def ingests(store: Path, serial: str) -> list[dict[str, Any]]:
    return query(store, "SELECT * FROM ingests WHERE device_serial = ? ORDER BY id", (serial,))


# -- 1. device scan ------------------------------------------------------------------------------------------


def test_scan_lists_registered_and_unknown_cameras(
    udev_bed: UdevBed, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    known_image = make_fat32_image(demo_card.root, tmp_path / "known.img")
    clips_card(tmp_path / "other", [datetime.now(UTC) - timedelta(minutes=30)])
    other_image = make_fat32_image(tmp_path / "other", tmp_path / "other.img")
    known = plug(udev_bed, "cam1", "BC-0001", known_image)
    other = plug(udev_bed, "cam2", "ZX-9999", other_image, OTHER_VENDOR)

    done = avlog(store, udev_bed, "device", "scan", "--json")

    assert done.returncode == 0, done.stderr
    found = {d["node"]: d for d in json.loads(done.stdout)["devices"]}
    assert sorted(found) == sorted([known.node, other.node])
    assert all(re.fullmatch(r"/dev/sd[b-z]1", node) for node in found)
    mine = found[known.node]
    assert {k: mine[k] for k in ("serial", "serial_from", "registered", "custodian", "unit")} == {
        "serial": "BC-0001",
        "serial_from": "usb",
        "registered": True,
        "custodian": "张三",
        "unit": "一中队",
    }
    assert (mine["vendor_id"], mine["model_id"], mine["vendor"], mine["model"]) == (*HYTERA, "Hytera", "VM780")
    assert (mine["fs_type"], mine["fs_label"], mine["fs_uuid"]) == ("vfat", "CAMERA", volume_serial(known_image))
    assert mine["mountpoint"] is None
    stranger = found[other.node]
    assert (stranger["serial"], stranger["registered"], stranger["custodian"]) == ("ZX-9999", False, None)
    assert (stranger["vendor_id"], stranger["model_id"], stranger["fs_type"]) == (*OTHER_VENDOR, "vfat")
    assert stranger["fs_uuid"] == volume_serial(other_image)

    table = avlog(store, udev_bed, "device", "scan", COLUMNS="200")
    assert table.returncode == 0, table.stderr
    rows = {node: [line for line in table.stdout.splitlines() if node in line] for node in found}
    (known_row,) = rows[known.node]
    (other_row,) = rows[other.node]
    assert "BC-0001" in known_row and "registered" in known_row and "张三" in known_row
    assert "ZX-9999" in other_row and "unknown" in other_row and "registered" not in other_row


# -- 2. ingest with no source --------------------------------------------------------------------------------


def test_ingest_takes_registered_cameras_and_leaves_unknown_alone(
    udev_bed: UdevBed, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    expected = demo_digests(demo_card)
    stranger_clips = clips_card(tmp_path / "other", [datetime.now(UTC) - timedelta(minutes=40)])
    known_image = make_fat32_image(demo_card.root, tmp_path / "known.img")
    known_sha = file_sha256(known_image)
    known = plug(udev_bed, "cam1", "BC-0001", known_image)
    other = plug(udev_bed, "cam2", "ZX-9999", make_fat32_image(tmp_path / "other", tmp_path / "other.img"),
                 OTHER_VENDOR)  # fmt: skip

    done = avlog(store, udev_bed, "ingest", "--json")

    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (one,) = doc["ingests"]
    assert (one["device_serial"], one["device_node"], one["source"]) == ("BC-0001", known.node, known.node)
    assert (one["source_kind"], one["status"], one["custodian"]) == ("fat", "done", "张三")
    assert by_path(one) == expected
    statuses = {c["original_path"]: c["status"] for c in one["clips"]}
    assert statuses == {rel: "duplicate" if rel in demo_card.duplicate_of else "stored" for rel in expected}
    (unknown,) = doc["unknown"]
    assert (unknown["node"], unknown["serial"], unknown["registered"]) == (other.node, "ZX-9999", False)
    notice = " ".join(line.strip() for line in stderr_lines(done.stderr))
    assert other.node in notice and "ZX-9999" in notice and "Left alone" in notice, done.stderr
    # nothing of the unknown camera entered the store
    assert stored_clips(store) == expected
    assert object_names(store) == {b for b, _s in expected.values()}
    assert not object_names(store) & {b for b, _s in stranger_clips.values()}
    assert ingests(store, "ZX-9999") == []
    assert [r["status"] for r in ingests(store, "BC-0001")] == ["done"]
    assert file_sha256(known_image) == known_sha  # read raw, read-only: the card is not written

    # only the unknown camera attached: nothing to do, exit 1
    udev_bed.remove("cam1")
    alone = avlog(store, udev_bed, "ingest", "--json")
    assert alone.returncode == 1, alone.stderr
    failed = json.loads(alone.stdout)  # --json: one document, also for a failure
    assert failed["ok"] is False and failed["exit_code"] == 1 and "no registered recorder" in failed["error"]
    lines = stderr_lines(alone.stderr)
    assert lines[-1].startswith("avlog: ") and "no registered recorder is attached" in lines[-1], alone.stderr
    # the camera left alone is named before the error (rich may wrap the notice)
    notice = " ".join(line.strip() for line in lines[:-1])
    assert other.node in notice and "ZX-9999" in notice and "not a registered recorder" in notice, alone.stderr
    assert ingests(store, "ZX-9999") == []

    # nothing attached at all: one line, exit 1
    udev_bed.remove("cam2")
    empty = avlog(store, udev_bed, "ingest")
    assert empty.returncode == 1, empty.stderr
    assert "no USB storage is attached" in error_line(empty.stderr)
    assert stored_clips(store) == expected


def test_ingest_device_picks_one_of_two_registered_cameras(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    register(cli, "BC-0002")
    now = datetime.now(UTC)
    first_clips = clips_card(tmp_path / "a", [now - timedelta(minutes=50), now - timedelta(minutes=49)])
    second_clips = clips_card(tmp_path / "b", [now - timedelta(minutes=30), now - timedelta(minutes=29)])
    first = plug(udev_bed, "cam1", "BC-0001", make_fat32_image(tmp_path / "a", tmp_path / "a.img"))
    second = plug(udev_bed, "cam2", "BC-0002", make_fat32_image(tmp_path / "b", tmp_path / "b.img"))
    assert first.node != second.node  # /dev/sdb1 and /dev/sdc1 on a host without disks of its own named so

    done = avlog(store, udev_bed, "ingest", "--device", second.node, "--json")

    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (one,) = doc["ingests"]
    assert (one["device_serial"], one["device_node"], one["status"]) == ("BC-0002", second.node, "done")
    assert by_path(one) == second_clips
    assert doc["unknown"] == []
    assert stored_clips(store) == second_clips
    assert ingests(store, "BC-0001") == []
    assert object_names(store) == {b for b, _s in second_clips.values()}
    assert not object_names(store) & {b for b, _s in first_clips.values()}

    # the table form, for the other camera
    table = avlog(store, udev_bed, "ingest", "--device", first.node, COLUMNS="200")
    assert table.returncode == 0, table.stderr
    assert "BC-0001" in table.stdout and "2 stored" in table.stdout, table.stdout
    assert stored_clips(store, "BC-0001") == first_clips

    missing = avlog(store, udev_bed, "ingest", "--device", "/dev/sdz1")
    assert missing.returncode == 1, missing.stderr
    assert "/dev/sdz1" in error_line(missing.stderr)


def test_a_card_that_cannot_be_read_does_not_stop_the_others(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    card = clips_card(tmp_path / "card", [datetime.now(UTC) - timedelta(minutes=20)])
    with open(store / "avlog.toml", "a", encoding="utf-8") as f:  # this vendor's serial is read from the card
        f.write(f'\n[[ingest.profile]]\nvendor_id = "{OTHER_VENDOR[0]}"\nserial_file = "DEVICE.INI"\n'
                f"serial_pattern = 'serial=(\\S+)'\n")  # fmt: skip
    blank = tmp_path / "blank.img"
    with open(blank, "wb") as f:
        f.truncate(8 << 20)  # udev says vfat, but the card holds no filesystem at all
    camera = plug(udev_bed, "cam1", "BC-0001", make_fat32_image(tmp_path / "card", tmp_path / "card.img"))
    broken = udev_bed.add("cam2", "QQ-0001", *OTHER_VENDOR, blank, "vfat", "CAMERA")

    done = avlog(store, udev_bed, "ingest", "--json")

    assert done.returncode == 4, done.stderr  # partly done: one recorder in, one device named as a failure
    lines = stderr_lines(done.stderr)
    assert lines[-1].startswith("avlog: ") and broken.node in lines[-1], done.stderr
    (one,) = json.loads(done.stdout)["ingests"]
    assert (one["device_serial"], one["device_node"], one["status"]) == ("BC-0001", camera.node, "done")
    assert stored_clips(store) == card
    assert ingests(store, "QQ-0001") == []


# -- 3. a vendor profile: the serial is read from the card ---------------------------------------------------


def test_vendor_profile_identifies_a_camera_by_its_card_file(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0042")
    now = datetime.now(UTC)
    card = clips_card(tmp_path / "card", [now - timedelta(minutes=20), now - timedelta(minutes=19)],
                      serial_line="serial=BC-0042")  # fmt: skip
    camera = plug(udev_bed, "cam1", "0000AB12CD", make_fat32_image(tmp_path / "card", tmp_path / "card.img"),
                  OTHER_VENDOR)  # fmt: skip

    # without a profile the camera is known only by its (unregistered) USB serial
    before = avlog(store, udev_bed, "device", "scan", "--json")
    assert before.returncode == 0, before.stderr
    (seen,) = json.loads(before.stdout)["devices"]
    assert (seen["serial"], seen["serial_from"], seen["registered"]) == ("0000AB12CD", "usb", False)

    with open(store / "avlog.toml", "a", encoding="utf-8") as f:
        f.write(
            f'\n[[ingest.profile]]\nvendor_id = "{HYTERA[0]}"\nserial_file = "NOPE.INI"\n'
            "serial_pattern = 's=(\\S+)'\n"
            f'\n[[ingest.profile]]\nvendor_id = "{OTHER_VENDOR[0].upper()}"\nserial_file = "device.ini"\n'
            "serial_pattern = 'serial=(\\S+)'\n"
        )

    after = avlog(store, udev_bed, "device", "scan", "--json")
    assert after.returncode == 0, after.stderr
    (seen,) = json.loads(after.stdout)["devices"]
    assert (seen["node"], seen["serial"], seen["serial_from"]) == (camera.node, "BC-0042", "card-file")
    assert (seen["registered"], seen["custodian"]) == (True, "张三")

    done = avlog(store, udev_bed, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (one,) = doc["ingests"]
    assert (one["device_serial"], one["device_node"], one["status"]) == ("BC-0042", camera.node, "done")
    assert by_path(one) == card
    assert doc["unknown"] == []
    assert stored_clips(store, "BC-0042") == card
    assert ingests(store, "0000AB12CD") == []


# -- 4. ingest --wait ---------------------------------------------------------------------------------------


def test_ingest_wait_takes_the_registered_camera_plugged_in(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    now = datetime.now(UTC)
    card = clips_card(tmp_path / "card", [now - timedelta(minutes=15), now - timedelta(minutes=14)])
    stranger = clips_card(tmp_path / "other", [now - timedelta(minutes=25)])
    image = make_fat32_image(tmp_path / "card", tmp_path / "card.img")
    other_image = make_fat32_image(tmp_path / "other", tmp_path / "other.img")

    waiting = Running(store, udev_bed, "ingest", "--wait", "--timeout", "20", "--json")
    try:
        wait_until(lambda: listening_sockets(udev_bed), 15, "avlog to listen for uevents")
        time.sleep(0.2)
        assert waiting.proc.poll() is None, waiting.log()
        other = plug(udev_bed, "cam2", "ZX-9999", other_image, OTHER_VENDOR)  # not registered: ignored
        camera = plug(udev_bed, "cam1", "BC-0001", image)
        out, err = waiting.proc.communicate(timeout=60)
    finally:
        waiting.close()
    stderr = err.decode()

    assert waiting.proc.returncode == 0, stderr
    doc = json.loads(out)
    (one,) = doc["ingests"]
    assert (one["device_serial"], one["device_node"], one["status"]) == ("BC-0001", camera.node, "done")
    assert by_path(one) == card
    notice = " ".join(line.strip() for line in stderr_lines(stderr))  # rich may wrap the notice
    assert f"Ignoring {other.node}" in notice and "not a registered recorder" in notice, stderr
    assert stored_clips(store) == card
    assert not object_names(store) & {b for b, _s in stranger.values()}


def test_ingest_wait_gives_up_after_the_timeout(udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path) -> None:
    register(cli, "BC-0001")
    started = time.monotonic()
    done = avlog(store, udev_bed, "ingest", "--wait", "--timeout", "1")
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "no registered recorder was plugged in within 1" in error_line(done.stderr)
    assert 1 <= elapsed < 15
    assert done.stdout == ""
    assert ingests(store, "BC-0001") == []

    # a registered recorder attached already needs no waiting
    card = clips_card(tmp_path / "card", [datetime.now(UTC) - timedelta(minutes=20)])
    camera = plug(udev_bed, "cam1", "BC-0001", make_fat32_image(tmp_path / "card", tmp_path / "card.img"))
    started = time.monotonic()
    done = avlog(store, udev_bed, "ingest", "--wait", "--timeout", "10", "--json")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    (one,) = json.loads(done.stdout)["ingests"]
    assert (one["device_node"], one["status"]) == (camera.node, "done")
    assert by_path(one) == card


# -- 5. watch -----------------------------------------------------------------------------------------------


def test_watch_ingests_cameras_as_they_are_plugged_in(udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path) -> None:
    register(cli, "BC-0001")
    register(cli, "BC-0002")
    now = datetime.now(UTC)
    first = clips_card(tmp_path / "a", [now - timedelta(minutes=50), now - timedelta(minutes=49)])
    second = clips_card(tmp_path / "b", [now - timedelta(minutes=30), now - timedelta(minutes=29)])
    stranger = clips_card(tmp_path / "c", [now - timedelta(minutes=10)])
    images = {n: make_fat32_image(tmp_path / n, tmp_path / f"{n}.img") for n in ("a", "b", "c")}

    watch = Running(store, udev_bed, "watch")
    try:
        watch.wait_for("watching for recorders")
        cam_a = plug(udev_bed, "cam1", "BC-0001", images["a"])
        cam_b = plug(udev_bed, "cam2", "BC-0002", images["b"])  # plugged right after the first: queued
        wait_until(
            lambda: [r["status"] for s in ("BC-0001", "BC-0002") for r in ingests(store, s)] == ["done", "done"],
            60,
            "both ingests to be done",
        )
        cam_c = plug(udev_bed, "cam3", "ZX-9999", images["c"], OTHER_VENDOR)
        left = watch.wait_for(re.escape(cam_c.node) + ".*left alone")
        assert "ZX-9999" in left
        assert watch.proc.poll() is None
        code = watch.stop()
    finally:
        watch.close()

    assert code == 0, watch.log()
    assert "stopped" in watch.lines[-1], watch.log()
    for cam, serial in ((cam_a, "BC-0001"), (cam_b, "BC-0002")):
        assert any(re.search(rf"{re.escape(cam.node)}: ingest #\d+ of {serial} ", line) for line in watch.lines)
    assert stored_clips(store, "BC-0001") == first
    assert stored_clips(store, "BC-0002") == second
    assert stored_clips(store) == {**first, **second}
    assert object_names(store) == {b for b, _s in [*first.values(), *second.values()]}
    assert not object_names(store) & {b for b, _s in stranger.values()}
    assert ingests(store, "ZX-9999") == []
    assert_store_sound(store, udev_bed)


def fat32_in_order(files: list[tuple[Path, str]], image: Path, size_mb: int) -> Path:
    """A FAT32 image whose files are written in the given order (so their clusters follow that order)."""
    subprocess.run(
        [require_tool("mkfs.vfat"), "-F", "32", "-n", "CAMERA", "-C", str(image), str(size_mb * 1024)],
        check=True,
        capture_output=True,
    )
    for folder in ("DCIM", "DCIM/100MEDIA"):
        subprocess.run([require_tool("mmd"), "-i", str(image), f"::/{folder}"], check=True, env=MTOOLS_ENV)
    for local, rel in files:
        subprocess.run(["mcopy", "-m", "-i", str(image), str(local), f"::/{rel}"], check=True, env=MTOOLS_ENV)
    return image


def data_offset(image: Path, card_path: str) -> tuple[int, int]:
    """Byte offset of a file's first cluster in the image, and its cluster number."""
    with open(image, "rb") as fh:
        cluster = FATFS(fh).get(card_path).cluster
        fh.seek(0)
        boot = fh.read(512)
    bytes_per_sector, sectors_per_cluster, reserved, fats = struct.unpack_from("<HBHB", boot, 11)
    fat_sectors = struct.unpack_from("<I", boot, 36)[0]
    data_start = (reserved + fats * fat_sectors) * bytes_per_sector
    return data_start + (cluster - 2) * bytes_per_sector * sectors_per_cluster, cluster


def test_watch_survives_a_card_that_stops_delivering_mid_ingest(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    root = tmp_path / "card"
    now = datetime.now(UTC)
    small = clips_card(root, [now - timedelta(minutes=40), now - timedelta(minutes=39)])
    big_start = now - timedelta(minutes=30)
    big = clip_name(big_start, 3)
    write_video(root / big, start=big_start, seconds=9, width=1280, height=720, noise=True)
    big_size = (root / big).stat().st_size
    assert big_size > 140 << 20
    card = {**small, big: file_digests(root / big)}
    image = fat32_in_order([(root / rel, rel) for rel in sorted(card)], tmp_path / "card.img", 256)
    fresh = shutil.copyfile(image, tmp_path / "fresh.img")  # the same card, whole, for the next plug-in
    cut_at, big_cluster = data_offset(image, big)
    assert all(data_offset(image, rel)[1] < big_cluster for rel in small)  # the small clips lie before the cut
    cut_at += 4 << 20

    watch = Running(store, udev_bed, "watch")
    try:
        watch.wait_for("watching for recorders")
        camera = plug(udev_bed, "cam1", "BC-0001", image)
        watch.wait_for(re.escape(camera.node) + ": recorder BC-0001 .*ingesting")
        # Only once the big clip is being copied (the card is open and read): the small ones are well under 1 MiB.
        deadline = time.monotonic() + 60
        while not copying_more_than(store, 1 << 20):
            assert time.monotonic() < deadline, watch.log()
            time.sleep(0.005)
        # The card stops delivering data (the bed cannot make an open node fail with EIO once unplugged):
        # the node is a hard link to the image, so cutting the image cuts what avlog reads, then it is pulled.
        os.truncate(image, cut_at)
        udev_bed.remove("cam1")
        ended = watch.wait_for(re.escape(camera.node) + r": ingest #\d+ of BC-0001")
        assert watch.proc.poll() is None, watch.log()  # watch goes on
        (run,) = ingests(store, "BC-0001")
        assert (run["status"], run["stored"], run["failed"]) == ("partial", 2, 1), ended
        failed = query(store, "SELECT original_path, error FROM ingest_items WHERE status = 'failed'")
        assert [f["original_path"] for f in failed] == [big] and failed[0]["error"], failed
        assert big in ended
        assert stored_clips(store) == small
        assert_store_sound(store, udev_bed)

        again = plug(udev_bed, "cam1", "BC-0001", fresh)  # the next plug-in resumes
        watch.wait_for(re.escape(again.node) + r": ingest #\d+ of BC-0001")
        runs = ingests(store, "BC-0001")
        assert [(r["status"], r["stored"], r["duplicates"], r["failed"]) for r in runs] == [
            ("partial", 2, 0, 1),
            ("done", 1, 2, 0),
        ]
        # the resumed clip was recorded before the cut-short run: that is no sign of a clock running behind
        assert json.loads(runs[1]["clock_notes"])["verdict"] == "ok"
        assert watch.proc.poll() is None
        code = watch.stop()
    finally:
        watch.close()

    assert code == 0, watch.log()
    assert stored_clips(store) == card
    assert object_names(store) == {b for b, _s in card.values()}
    assert_store_sound(store, udev_bed)


def copying_more_than(store: Path, size: int) -> bool:
    """Whether a copy in the store's tmp/ has grown past ``size`` bytes."""
    for part in (store / "tmp").glob("*.part"):
        try:
            if part.stat().st_size > size:
                return True
        except FileNotFoundError:
            continue
    return False


def test_watch_stops_on_sigint_after_the_clip_in_progress(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    root = tmp_path / "card"
    now = datetime.now(UTC)
    before = clips_card(root, [now - timedelta(minutes=40)])
    big_start, after_start = now - timedelta(minutes=30), now - timedelta(minutes=20)
    big, after = clip_name(big_start, 2), clip_name(after_start, 3)
    write_video(root / big, start=big_start, seconds=9, width=1280, height=720, noise=True)
    write_video(root / after, start=after_start, seconds=1, noise=True)
    assert sorted([*before, big, after])[1:] == [big, after]  # the card's order: before, big, after
    image = make_fat32_image(root, tmp_path / "card.img", size_mb=256)

    watch = Running(store, udev_bed, "watch")
    try:
        watch.wait_for("watching for recorders")
        camera = plug(udev_bed, "cam1", "BC-0001", image)
        watch.wait_for(re.escape(camera.node) + ": recorder BC-0001 .*ingesting")
        wait_until(lambda: copying_more_than(store, 16 << 20), 60, "the big clip to be copied")
        code = watch.stop(signal.SIGINT)
    finally:
        watch.close()

    assert code == 0, watch.log()
    assert any("the clip in progress was finished" in line for line in watch.lines), watch.log()
    assert "stopped" in watch.lines[-1], watch.log()
    (run,) = ingests(store, "BC-0001")
    assert (run["status"], run["stored"], run["failed"]) == ("stopped", 2, 0)
    # the clip in progress was finished and proven; the one after it waits for the next run
    assert stored_clips(store) == {**before, big: file_digests(root / big)}
    assert_store_sound(store, udev_bed)


def test_watch_clears_a_card_attached_at_start_after_its_ingest(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    now = datetime.now(UTC)
    card = clips_card(tmp_path / "card", [now - timedelta(minutes=m) for m in (30, 29)])
    image = make_fat32_image(tmp_path / "card", tmp_path / "card.img")
    kept = {rel: file_sha256(tmp_path / "card" / rel) for rel in ("DEVICE.INI", SYSTEM_FILE)}

    camera = plug(udev_bed, "cam1", "BC-0001", image)  # attached before the docking station starts
    watch = Running(store, udev_bed, "watch", "--clear-device", "--yes")
    try:
        watch.wait_for("watching for recorders")
        cleared = watch.wait_for(re.escape(camera.node) + r": cleared \d+ recordings")
        code = watch.stop()
    finally:
        watch.close()

    assert code == 0, watch.log()
    assert f"cleared {len(card)} recordings" in cleared
    assert files_on_image(image) == kept
    assert stored_clips(store) == card
    (entry,) = audit_entries(store, udev_bed, "device.clear")
    assert {f["path"] for f in entry["details"]["files"]} == set(card)
    assert_store_sound(store, udev_bed)


# -- 6. --clear-device --------------------------------------------------------------------------------------


def test_clear_device_on_a_mounted_card_deletes_only_the_recordings(
    udev_bed: UdevBed, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    expected = demo_digests(demo_card)
    image = make_fat32_image(demo_card.root, tmp_path / "card.img")
    image_sha = file_sha256(image)
    mounted = tmp_path / "mnt"
    shutil.copytree(demo_card.root, mounted)  # what the card shows through its mount point
    kept = {rel: file_sha256(mounted / rel) for rel in demo_card.other_files + demo_card.system_files}
    camera = plug(udev_bed, "cam1", "BC-0001", image)
    udev_bed.mount("cam1", mounted, "rw")
    scan = avlog(store, udev_bed, "device", "scan", "--json")
    assert scan.returncode == 0, scan.stderr
    (seen,) = json.loads(scan.stdout)["devices"]
    assert (seen["node"], seen["mountpoint"], seen["mounted_read_write"]) == (camera.node, str(mounted.resolve()), True)

    done = avlog(store, udev_bed, "ingest", "--clear-device", "--json")

    assert done.returncode == 0, done.stderr
    (one,) = json.loads(done.stdout)["ingests"]
    assert (one["device_node"], one["source"], one["source_kind"]) == (camera.node, str(mounted.resolve()), "folder")
    assert by_path(one) == expected
    assert sorted(one["cleared"]) == sorted(expected)
    left = {p.relative_to(mounted).as_posix(): file_sha256(p) for p in mounted.rglob("*") if p.is_file()}
    assert left == kept  # DEVICE.INI and the system file stay, unchanged; every recording is gone
    assert file_sha256(image) == image_sha  # read and cleared through the mount point, never raw
    assert stored_clips(store) == expected
    (entry,) = audit_entries(store, udev_bed, "device.clear")
    assert entry["subject"] == "device:BC-0001"
    assert entry["details"]["ingest"] == one["ingest_id"]
    assert {f["path"]: (f["blake3"], f["size"]) for f in entry["details"]["files"]} == {
        rel: (b3, (demo_card.root / rel).stat().st_size) for rel, (b3, _s) in expected.items()
    }
    assert_store_sound(store, udev_bed)


def test_clear_device_on_a_raw_card_needs_yes(
    udev_bed: UdevBed, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    expected = demo_digests(demo_card)
    image = make_fat32_image(demo_card.root, tmp_path / "card.img")
    before = file_sha256(image)
    everything = files_on_image(image)
    kept = {rel: file_sha256(demo_card.root / rel) for rel in demo_card.other_files + demo_card.system_files}
    assert set(everything) == set(expected) | set(kept)
    plug(udev_bed, "cam1", "BC-0001", image)

    refused = avlog(store, udev_bed, "ingest", "--clear-device", "--json")

    assert refused.returncode == 4, refused.stderr
    line = error_line(refused.stderr)
    assert "nothing was deleted" in line and "--yes" in line
    (one,) = json.loads(refused.stdout)["ingests"]
    assert one["cleared"] == [] and by_path(one) == expected
    assert file_sha256(image) == before
    assert audit_entries(store, udev_bed, "device.clear") == []

    confirmed = avlog(store, udev_bed, "ingest", "--clear-device", "--yes", "--json")

    assert confirmed.returncode == 0, confirmed.stderr
    (two,) = json.loads(confirmed.stdout)["ingests"]
    assert sorted(two["cleared"]) == sorted(expected)
    assert files_on_image(image) == kept  # the recordings are gone from the image, nothing else
    assert mdir_files(image) == set(kept)
    (entry,) = audit_entries(store, udev_bed, "device.clear")
    assert {f["path"]: f["blake3"] for f in entry["details"]["files"]} == {r: b for r, (b, _s) in expected.items()}
    assert stored_clips(store) == expected
    assert_store_sound(store, udev_bed)


def test_clear_device_refuses_a_card_mounted_read_only(
    udev_bed: UdevBed, cli: Cli, store: Path, demo_card: SampleCard, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    require_tool("unshare")
    register(cli, "BC-0001")
    expected = demo_digests(demo_card)
    mounted = tmp_path / "mnt"
    shutil.copytree(demo_card.root, mounted)
    before = {p.relative_to(mounted).as_posix(): file_sha256(p) for p in mounted.rglob("*") if p.is_file()}
    plug(udev_bed, "cam1", "BC-0001", make_fat32_image(demo_card.root, tmp_path / "card.img"))
    udev_bed.mount("cam1", mounted, "ro")
    # The card's folder really is read-only for the run: a read-only bind mount in a private mount namespace.
    bed = udev_bed.env()
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(mounted),
         "env", f"LD_PRELOAD={bed['LD_PRELOAD']}", f"UMOCKDEV_DIR={bed['UMOCKDEV_DIR']}", "AVLOG_USER=tester",
         sys.executable, "-m", "avlog", "--store", str(store), "ingest", "--clear-device", "--yes", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 4, done.stderr
    line = error_line(done.stderr)
    assert "nothing was deleted" in line and "read-write" in line, line
    (one,) = json.loads(done.stdout)["ingests"]
    assert (one["source"], one["cleared"]) == (str(mounted.resolve()), [])
    assert by_path(one) == expected  # ingested all the same
    assert {p.relative_to(mounted).as_posix(): file_sha256(p) for p in mounted.rglob("*") if p.is_file()} == before
    assert audit_entries(store, udev_bed, "device.clear") == []


def test_clear_device_never_writes_a_raw_exfat_card(udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path) -> None:
    register(cli, "BC-0001")
    card = clips_card(tmp_path / "card", [datetime.now(UTC) - timedelta(minutes=m) for m in (20, 19)])
    image = make_exfat_image(tmp_path / "card", tmp_path / "card.img")
    before = file_sha256(image)
    camera = plug(udev_bed, "cam1", "BC-0001", image)

    done = avlog(store, udev_bed, "ingest", "--clear-device", "--yes", "--json")

    assert done.returncode == 4, done.stderr
    line = error_line(done.stderr)
    assert "nothing was deleted" in line and "exFAT" in line, line
    (one,) = json.loads(done.stdout)["ingests"]
    assert (one["device_node"], one["source_kind"], one["cleared"]) == (camera.node, "exfat", [])
    assert by_path(one) == card
    assert file_sha256(image) == before
    assert stored_clips(store) == card


def cut_cluster_chain(image: Path, card_path: str) -> None:
    """Mark the file's first cluster as the end of its chain in every FAT (as tests/test_source_failures.py)."""
    with open(image, "rb") as fh:
        first = FATFS(fh).get(card_path).cluster
        fh.seek(0)
        boot = fh.read(512)
    bytes_per_sector, _spc, reserved, fats = struct.unpack_from("<HBHB", boot, 11)
    fat_sectors = struct.unpack_from("<I", boot, 36)[0]
    with open(image, "r+b") as fh:
        for n in range(fats):
            offset = (reserved + n * fat_sectors) * bytes_per_sector + 4 * first
            fh.seek(offset)
            (old,) = struct.unpack("<I", fh.read(4))
            assert 2 <= (old & 0x0FFFFFFF) < 0x0FFFFFF8, "the first cluster must continue the chain"
            fh.seek(offset)
            fh.write(struct.pack("<I", (old & 0xF0000000) | 0x0FFFFFFF))


def test_clear_device_deletes_nothing_when_a_clip_failed(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    now = datetime.now(UTC)
    card = clips_card(tmp_path / "card", [now - timedelta(minutes=m) for m in (40, 39, 38)])
    image = make_fat32_image(tmp_path / "card", tmp_path / "card.img")
    bad = sorted(card)[1]
    cut_cluster_chain(image, bad)
    before = file_sha256(image)
    on_card = files_on_image(image)
    plug(udev_bed, "cam1", "BC-0001", image)

    done = avlog(store, udev_bed, "ingest", "--clear-device", "--yes", "--json")

    assert done.returncode == 4, done.stderr
    line = error_line(done.stderr)
    assert "nothing was deleted" in line, line
    (one,) = json.loads(done.stdout)["ingests"]
    statuses = {c["original_path"]: c["status"] for c in one["clips"]}
    assert statuses == {rel: "failed" if rel == bad else "stored" for rel in card}
    assert one["cleared"] == []
    assert file_sha256(image) == before
    assert files_on_image(image) == on_card
    assert audit_entries(store, udev_bed, "device.clear") == []
    assert stored_clips(store) == {rel: d for rel, d in card.items() if rel != bad}
    assert_store_sound(store, udev_bed)


# -- 7. the Art. 11 clock check ----------------------------------------------------------------------------


def clock_notes(store: Path, ingest_id: int) -> dict[str, Any]:
    (row,) = query(store, "SELECT clock_notes FROM ingests WHERE id = ?", (ingest_id,))
    notes: dict[str, Any] = json.loads(row["clock_notes"])
    return notes


def test_clock_ahead_of_the_host_is_flagged(udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path) -> None:
    register(cli, "BC-0001")
    register(cli, "BC-0002")
    now = datetime.now(UTC)
    # the newest clip starts two hours from now: both "future" (its start) and "clock_ahead" (its end) apply
    ahead = clips_card(tmp_path / "a", [now - timedelta(minutes=10), now + timedelta(hours=2)])
    future_clip = clip_name(now + timedelta(hours=2), 2)
    # a long clip that starts within the future tolerance (300 s) but ends beyond it: "clock_ahead" alone
    long_start = now + timedelta(seconds=240)
    long_clip = clip_name(long_start, 1)
    write_video(tmp_path / "b" / long_clip, start=long_start, seconds=100, fps=1)
    cam_a = plug(udev_bed, "cam1", "BC-0001", make_fat32_image(tmp_path / "a", tmp_path / "a.img"))
    cam_b = plug(udev_bed, "cam2", "BC-0002", make_fat32_image(tmp_path / "b", tmp_path / "b.img"))

    done = avlog(store, udev_bed, "ingest", "--device", cam_a.node, "--json")
    assert done.returncode == 0, done.stderr
    (one,) = json.loads(done.stdout)["ingests"]
    assert by_path(one) == ahead
    ids = {c["original_path"]: c["clip_id"] for c in one["clips"]}
    assert one["clock"]["verdict"] == "clock_ahead"
    newest = datetime.fromisoformat(one["clock"]["newest_clip_end"])
    assert abs((newest - (now + timedelta(hours=2, seconds=1))).total_seconds()) <= 2
    kinds = {(f["kind"], f["clip_id"]) for f in one["findings"]}
    assert ("future", ids[future_clip]) in kinds
    assert "clock_ahead" not in {k for k, _c in kinds}  # the "future" finding already names that clip
    assert clock_notes(store, one["ingest_id"])["verdict"] == "clock_ahead"

    done = avlog(store, udev_bed, "ingest", "--device", cam_b.node, "--json")
    assert done.returncode == 0, done.stderr
    (two,) = json.loads(done.stdout)["ingests"]
    (clip,) = two["clips"]
    assert two["clock"]["verdict"] == "clock_ahead"
    flagged = [f for f in two["findings"] if f["kind"] in ("clock_ahead", "future")]
    assert [(f["kind"], f["clip_id"]) for f in flagged] == [("clock_ahead", clip["clip_id"])]
    assert 300 < flagged[0]["seconds"] < 345
    stored = query(store, "SELECT kind FROM findings WHERE ingest_id = ?", (two["ingest_id"],))
    assert "clock_ahead" in {r["kind"] for r in stored}


def test_clock_behind_the_previous_handover_is_flagged(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    now = datetime.now(UTC)
    first = clips_card(tmp_path / "a", [now - timedelta(minutes=5)])
    # recorded after the first handover, yet dated an hour before it: the recorder's clock runs behind
    second = clips_card(tmp_path / "b", [now - timedelta(hours=1)])
    plug(udev_bed, "cam1", "BC-0001", make_fat32_image(tmp_path / "a", tmp_path / "a.img"))
    done = avlog(store, udev_bed, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    (one,) = json.loads(done.stdout)["ingests"]
    assert by_path(one) == first
    assert one["clock"]["verdict"] == "ok"
    assert not {f["kind"] for f in one["findings"]} & {"clock_ahead", "clock_behind"}
    udev_bed.remove("cam1")

    plug(udev_bed, "cam1", "BC-0001", make_fat32_image(tmp_path / "b", tmp_path / "b.img"))
    done = avlog(store, udev_bed, "ingest", "--json")

    assert done.returncode == 0, done.stderr
    (two,) = json.loads(done.stdout)["ingests"]
    assert by_path(two) == second
    assert two["clock"]["verdict"] == "clock_behind"
    (clip,) = two["clips"]
    behind = [f for f in two["findings"] if f["kind"] == "clock_behind"]
    assert [f["clip_id"] for f in behind] == [clip["clip_id"]]
    assert 3500 < behind[0]["seconds"] < 3700
    notes = clock_notes(store, two["ingest_id"])
    assert notes["verdict"] == "clock_behind"
    (first_run,) = query(store, "SELECT started_at FROM ingests WHERE id = ?", (one["ingest_id"],))
    assert notes["previous_handover"] == first_run["started_at"]


def test_watch_does_not_take_a_card_for_a_camera_pulled_before_its_turn(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    """Camera A is plugged in and pulled out while watch is busy; camera B then gets A's free /dev/sdX1.

    A's queued plug-in event still says "A". Reading /dev/sdX1 for it would store B's recordings as A's.
    """
    for serial in ("BC-0001", "BC-0002", "BC-0003"):
        register(cli, serial)
    now = datetime.now(UTC)
    busy_root = tmp_path / "busy"
    big_start = now - timedelta(minutes=60)
    write_video(busy_root / clip_name(big_start, 1), start=big_start, seconds=9, width=1280, height=720, noise=True)
    busy = make_fat32_image(busy_root, tmp_path / "busy.img", size_mb=256)
    first = clips_card(tmp_path / "a", [now - timedelta(minutes=40)])
    second = clips_card(tmp_path / "b", [now - timedelta(minutes=30)])
    images = {n: make_fat32_image(tmp_path / n, tmp_path / f"{n}.img") for n in ("a", "b")}

    watch = Running(store, udev_bed, "watch")
    try:
        watch.wait_for("watching for recorders")
        plug(udev_bed, "cam3", "BC-0003", busy)
        watch.wait_for("recorder BC-0003 .*ingesting")
        cam_a = plug(udev_bed, "cam1", "BC-0001", images["a"])
        udev_bed.remove("cam1")  # pulled again before watch got to it
        cam_b = plug(udev_bed, "cam2", "BC-0002", images["b"])
        assert cam_b.node == cam_a.node  # the kernel (and the bed) hand out the lowest free name again
        assert [r["status"] for r in ingests(store, "BC-0003")] == ["running"], "watch was not busy; use a bigger card"
        watch.wait_for(r"ingest #\d+ of BC-0003 done")
        watch.wait_for(re.escape(cam_b.node) + r": ingest #\d+ of BC-0002 done")
        code = watch.stop()
    finally:
        watch.close()

    assert code == 0, watch.log()
    assert stored_clips(store, "BC-0002") == second
    # nothing of B's card may be recorded as coming from A, which was no longer attached
    assert stored_clips(store, "BC-0001") == {}, watch.log()
    assert not object_names(store) & {b for b, _s in first.values()}
    assert_store_sound(store, udev_bed)
