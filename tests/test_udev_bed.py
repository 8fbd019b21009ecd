"""The umockdev bed: pyudev in a preloaded process sees plugged-in USB cameras as a real system shows them.

Every check runs in a separate process of this interpreter started with the
bed's environment (LD_PRELOAD=libumockdev-preload.so.0, UMOCKDEV_DIR), the way
the plug-in code will run under test. Expected values come from the inputs or
are computed here from the image bytes, never from the bed's answers.
"""

# ruff: noqa: F811 - the udev_bed fixture is imported, and test parameters name it

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from avlog.samples import SampleCard
from conftest import TZ, file_sha256, make_fat32_image, require_tool
from udevbed import BedError, Camera, UdevBed, read_line, udev_bed  # noqa: F401 - udev_bed is a fixture

SERIAL = "BC-0001"
VENDOR_ID, MODEL_ID = "2bdf", "0280"

ENUMERATE = r"""
import json, os, pyudev
ctx = pyudev.Context()
found = []
for d in ctx.list_devices(subsystem="block", ID_BUS="usb"):
    usb = d.find_parent("usb", "usb_device")
    found.append({
        "sys_name": d.sys_name,
        "sys_path": d.sys_path,
        "devtype": d.device_type,
        "node": d.device_node,
        "devnum": [os.major(d.device_number), os.minor(d.device_number)],
        "props": dict(d.properties),
        "size": d.attributes.asint("size"),
        "chain": [[a.subsystem, a.device_type, a.driver] for a in d.ancestors],
        "usb": None if usb is None else {
            "sys_path": usb.sys_path,
            "serial": usb.attributes.asstring("serial"),
            "idVendor": usb.attributes.asstring("idVendor"),
            "idProduct": usb.attributes.asstring("idProduct"),
        },
    })
print(json.dumps(found))
"""

READ_NODE = r"""
import hashlib, json, os, stat, sys, pyudev
node, offset = sys.argv[1], int(sys.argv[2])
st, lst = os.stat(node), os.lstat(node)
digest = hashlib.sha256()
with open(node, "rb") as f:
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    end = f.seek(0, os.SEEK_END)
    f.seek(offset)
    at_offset = f.read(4096).hex()
print(json.dumps({
    "block": stat.S_ISBLK(st.st_mode),
    "lstat_block": stat.S_ISBLK(lst.st_mode),
    "rdev": f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}",
    "sha256": digest.hexdigest(),
    "end": end,
    "at_offset": at_offset,
    "udev_device": pyudev.Devices.from_device_file(pyudev.Context(), node).sys_path,
}))
"""

LIST_CARD = r"""
import hashlib, json, sys
from pathlib import Path
from zoneinfo import ZoneInfo
from avlog.ingest.sources import CardImageSource, open_source
node = Path(sys.argv[1])
tz = ZoneInfo(sys.argv[2])
chosen = open_source(node, tz)
chosen_type = type(chosen).__name__
chosen.close()
source = CardImageSource(node, tz)
entries = {}
for entry in source.entries():
    digest = hashlib.sha256()
    with source.open(entry) as f:
        while chunk := f.read(1 << 16):
            digest.update(chunk)
    entries[entry.path] = [entry.size, digest.hexdigest()]
source.close()
print(json.dumps({"open_source": chosen_type, "kind": source.kind, "entries": entries}))
"""

MONITOR = r"""
import json, os, sys, pyudev
ctx = pyudev.Context()
monitor = pyudev.Monitor.from_netlink(ctx)
monitor.filter_by("block")
monitor.start()
print("ready", flush=True)
held = None
while True:
    d = monitor.poll(timeout=30)
    if d is None:
        print(json.dumps({"timeout": True}), flush=True)
        break
    event = {
        "action": d.action, "sys_name": d.sys_name, "devtype": d.device_type, "node": d.device_node,
        "serial": d.properties.get("ID_SERIAL_SHORT"), "fs": d.properties.get("ID_FS_TYPE"),
        "bus": d.properties.get("ID_BUS"),
    }
    if d.action == "add" and d.device_type == "partition":
        held = open(d.device_node, "rb")
        event["head"] = held.read(512).hex()
    if d.action == "remove" and d.device_type == "partition":
        try:
            open(d.device_node, "rb").close()
            event["reopen"] = "opened"
        except OSError as exc:
            event["reopen"] = type(exc).__name__
        event["held_read"] = len(held.read(4096))
    print(json.dumps(event), flush=True)
    if d.action == "remove" and d.device_type == "disk":
        break
"""

LATE_ENV_MONITOR = r"""
import json, os, pyudev
root = os.environ.pop("UMOCKDEV_DIR")
ctx = pyudev.Context()
early = pyudev.Monitor.from_netlink(ctx)  # made while UMOCKDEV_DIR is unset
early.filter_by("block")
early.start()
os.environ["UMOCKDEV_DIR"] = root
late = pyudev.Monitor.from_netlink(ctx)  # made after it is set
late.filter_by("block")
late.start()
print("ready", flush=True)
input()  # the camera is plugged in now
got_late = late.poll(timeout=10)
early_seen = []  # whatever the bed sent has arrived by now; a host's udevd may send its own events
while (got_early := early.poll(timeout=0.5)) is not None:
    early_seen.append(got_early.sys_path)
print(json.dumps({
    "late": None if got_late is None else [got_late.action, got_late.sys_name],
    "early": early_seen,
    "listed": sorted(d.sys_name for d in ctx.list_devices(subsystem="block", ID_BUS="usb")),
}), flush=True)
"""

MOUNTINFO = r"""
import json, os, sys
devnum = sys.argv[1]
lines = [line.split() for line in open("/proc/self/mountinfo")]
mine = [f for f in lines if f[2] == devnum]
print(json.dumps({
    "mine": [
        {"point": f[4], "options": f[5], "fstype": f[f.index("-") + 1], "source": f[f.index("-") + 2]}
        for f in mine
    ],
    "has_root": any(f[4] == "/" for f in lines),
    "listing": sorted(os.listdir(mine[0][4])) if mine else None,
}))
"""


def run_json(bed: UdevBed, code: str, *args: str) -> Any:
    done = bed.python(code, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def volume_serial(image: Path, offset: int) -> str:
    """A FAT32 (offset 67) or exFAT (offset 100) volume serial in blkid's XXXX-XXXX form, read here."""
    with open(image, "rb") as f:
        f.seek(offset)
        (serial,) = struct.unpack("<I", f.read(4))
    return f"{serial >> 16:04X}-{serial & 0xFFFF:04X}"


def exfat_image(path: Path, label: str) -> Path:
    """An empty exFAT card (mkfs.exfat on a plain file: no loop device, no root needed)."""
    require_tool("mkfs.exfat")
    with open(path, "wb") as f:
        f.truncate(40 << 20)
    subprocess.run(["mkfs.exfat", "-L", label, str(path)], check=True, capture_output=True)
    return path


@pytest.fixture
def card_image(demo_card: SampleCard, tmp_path: Path) -> Path:
    return make_fat32_image(demo_card.root, tmp_path / "card.img")


def plug(bed: UdevBed, image: Path, name: str = "cam1", serial: str = SERIAL) -> Camera:
    return bed.add(name, serial, VENDOR_ID, MODEL_ID, image, vendor="Hytera", model="VM780")


def test_enumeration_shows_the_camera_like_a_real_one(udev_bed: UdevBed, card_image: Path) -> None:
    camera = plug(udev_bed, card_image)
    assert re.fullmatch(r"/dev/sd[b-z]1", camera.node) and camera.disk == camera.node[:-1]

    found = {d["devtype"]: d for d in run_json(udev_bed, ENUMERATE)}
    assert sorted(found) == ["disk", "partition"]
    disk, part = found["disk"], found["partition"]
    assert (disk["node"], part["node"]) == (camera.disk, camera.node)
    assert part["sys_path"] == disk["sys_path"] + "/" + camera.node.removeprefix("/dev/")
    minor = disk["devnum"][1]
    assert disk["devnum"] == [8, minor] and part["devnum"] == [8, minor + 1] and minor % 16 == 0

    for dev, devtype in ((disk, "disk"), (part, "partition")):
        props = dev["props"]
        assert props["SUBSYSTEM"] == "block" and props["DEVTYPE"] == devtype
        assert props["DEVNAME"] == dev["node"]
        assert (props["MAJOR"], props["MINOR"]) == tuple(str(n) for n in dev["devnum"])
        assert props["ID_BUS"] == "usb"
        assert props["ID_SERIAL_SHORT"] == SERIAL
        assert props["ID_SERIAL"] == f"Hytera_VM780_{SERIAL}-0:0"
        assert (props["ID_VENDOR_ID"], props["ID_MODEL_ID"]) == (VENDOR_ID, MODEL_ID)
        assert (props["ID_VENDOR"], props["ID_MODEL"]) == ("Hytera", "VM780")
        assert props["ID_USB_DRIVER"] == "usb-storage"
        # the camera's USB device, through the real parent chain, carries the serial as a sysfs attribute
        assert dev["usb"] == {
            "sys_path": camera.paths["usb_device"],
            "serial": SERIAL,
            "idVendor": VENDOR_ID,
            "idProduct": MODEL_ID,
        }

    assert "ID_FS_TYPE" not in disk["props"]
    expected_fs = {
        "ID_FS_TYPE": "vfat",
        "ID_FS_VERSION": "FAT32",
        "ID_FS_LABEL": "CAMERA",  # make_fat32_image's mkfs.vfat -n
        "ID_FS_UUID": volume_serial(card_image, 67),
        "ID_FS_USAGE": "filesystem",
        "ID_PART_ENTRY_NUMBER": "1",
        "PARTN": "1",
        "ID_PART_ENTRY_DISK": f"8:{minor}",
    }
    assert {k: part["props"].get(k) for k in expected_fs} == expected_fs
    assert part["size"] * 512 == card_image.stat().st_size

    assert part["chain"][:7] == [
        ["block", "disk", None],
        ["scsi", "scsi_device", "sd"],
        ["scsi", "scsi_target", None],
        ["scsi", "scsi_host", None],
        ["usb", "usb_interface", "usb-storage"],
        ["usb", "usb_device", "usb"],
        ["usb", "usb_device", "usb"],  # the root hub
    ]
    assert disk["chain"] == part["chain"][1:]


def test_partition_node_reads_the_card_image(udev_bed: UdevBed, card_image: Path) -> None:
    camera = plug(udev_bed, card_image)
    assert camera.backing == "hardlink"
    offset = 3 * 1024 * 1024 + 512  # in the data area, away from the boot sector
    with open(card_image, "rb") as f:
        f.seek(offset)
        expected_at_offset = f.read(4096).hex()

    seen = run_json(udev_bed, READ_NODE, camera.node, str(offset))

    assert seen["sha256"] == file_sha256(card_image)
    assert seen["end"] == card_image.stat().st_size
    assert seen["at_offset"] == expected_at_offset
    assert seen["block"] and seen["lstat_block"]
    assert seen["rdev"] == camera.devnum
    assert seen["udev_device"] == camera.paths["partition"]


def test_avlog_reads_the_card_through_the_device_node(
    udev_bed: UdevBed, demo_card: SampleCard, card_image: Path
) -> None:
    camera = plug(udev_bed, card_image)
    expected = {}
    for dirpath, _dirs, files in os.walk(demo_card.root):
        for name in files:
            path = Path(dirpath) / name
            expected[path.relative_to(demo_card.root).as_posix()] = [path.stat().st_size, file_sha256(path)]
    assert set(demo_card.recordings) <= set(expected)

    seen = run_json(udev_bed, LIST_CARD, camera.node, str(TZ))

    assert seen["open_source"] == "CardImageSource"  # the node stats as a block device
    assert seen["kind"] == "fat"
    assert seen["entries"] == expected


def test_monitor_sees_plug_in_change_and_unplug(udev_bed: UdevBed, card_image: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", MONITOR], env=udev_bed.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    buffer = bytearray()
    try:
        assert read_line(child.stdout, 30, buffer) == "ready"  # the monitor listens before the plug-in
        camera = plug(udev_bed, card_image)
        events = [json.loads(read_line(child.stdout, 30, buffer) or "null") for _ in range(2)]
        udev_bed.uevent("cam1", "change", "disk")
        events.append(json.loads(read_line(child.stdout, 30, buffer) or "null"))
        udev_bed.remove("cam1")
        events += [json.loads(read_line(child.stdout, 30, buffer) or "null") for _ in range(2)]
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr = child.stderr.read().decode() if child.stderr else ""
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert stderr == ""

    part, disk = camera.node.removeprefix("/dev/"), camera.disk.removeprefix("/dev/")
    assert [(e["action"], e["sys_name"], e["devtype"]) for e in events] == [
        ("add", disk, "disk"),
        ("add", part, "partition"),
        ("change", disk, "disk"),
        ("remove", part, "partition"),
        ("remove", disk, "disk"),
    ]
    for event in events:  # remove events too carry the udev properties, as udev's own do
        assert (event["serial"], event["bus"]) == (SERIAL, "usb")
        assert event["node"] == (camera.node if event["devtype"] == "partition" else camera.disk)
    assert events[1]["fs"] == "vfat"
    with open(card_image, "rb") as f:
        assert events[1]["head"] == f.read(512).hex()  # the node was ready when the add arrived
    assert events[3]["reopen"] == "FileNotFoundError"  # the node is gone with the device
    # An open handle keeps reading the image after the unplug: a real card would fail with EIO here.
    # Tests of an unplug in the middle of a copy cannot rely on the bed for that (tests/udev/README.md).
    assert events[3]["held_read"] == 4096


def test_monitor_must_be_made_after_umockdev_dir_is_set(udev_bed: UdevBed, card_image: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", LATE_ENV_MONITOR],
        env=udev_bed.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert read_line(child.stdout, 30) == "ready"
        camera = plug(udev_bed, card_image)
        child.stdin.write(b"go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err.decode()
    seen = json.loads(out)
    disk, part = camera.disk.removeprefix("/dev/"), camera.node.removeprefix("/dev/")
    assert seen["late"] == ["add", disk]
    # The preload library diverts a netlink socket to the bed only if UMOCKDEV_DIR is set when it is made;
    # the early monitor listens to the real kernel, where nothing happened. Enumeration follows the variable.
    assert not [path for path in seen["early"] if path.startswith(camera.paths["usb_device"])]
    assert seen["listed"] == [disk, part]


def test_two_cameras_at_once(udev_bed: UdevBed, card_image: Path, tmp_path: Path) -> None:
    second_image = exfat_image(tmp_path / "second.img", "CAM2")
    first = plug(udev_bed, card_image, "cam1", "BC-0001")
    second = plug(udev_bed, second_image, "cam2", "BC-0002")
    assert first.node != second.node and first.disk != second.disk

    found = {d["node"]: d for d in run_json(udev_bed, ENUMERATE)}
    assert sorted(found) == sorted([first.disk, first.node, second.disk, second.node])
    for camera, image in ((first, card_image), (second, second_image)):
        for node in (camera.disk, camera.node):
            assert found[node]["props"]["ID_SERIAL_SHORT"] == camera.serial
            assert found[node]["usb"]["serial"] == camera.serial
            assert found[node]["usb"]["sys_path"] == camera.paths["usb_device"]
        assert run_json(udev_bed, READ_NODE, camera.node, "0")["sha256"] == file_sha256(image)
    exfat = found[second.node]["props"]
    assert (exfat["ID_FS_TYPE"], exfat["ID_FS_VERSION"], exfat["ID_FS_LABEL"]) == ("exfat", "1.0", "CAM2")
    assert exfat["ID_FS_UUID"] == volume_serial(second_image, 100)
    assert found[first.node]["props"]["ID_FS_TYPE"] == "vfat"
    listed = run_json(udev_bed, LIST_CARD, second.node, str(TZ))
    assert (listed["kind"], listed["entries"]) == ("exfat", {})

    udev_bed.remove("cam1")
    assert sorted(d["node"] for d in run_json(udev_bed, ENUMERATE)) == [second.disk, second.node]


def test_remove_gives_the_image_back(udev_bed: UdevBed, card_image: Path) -> None:
    mode = card_image.stat().st_mode
    before = file_sha256(card_image)
    camera = plug(udev_bed, card_image)
    udev_bed.remove("cam1")

    assert card_image.stat().st_mode == mode  # the bed marks a plugged image as a block node, then unmarks it
    assert file_sha256(card_image) == before
    assert run_json(udev_bed, ENUMERATE) == []
    gone = udev_bed.python(f"open({camera.node!r}, 'rb')")
    assert gone.returncode == 1 and "FileNotFoundError" in gone.stderr
    # plugged in again, the same camera comes back
    again = plug(udev_bed, card_image)
    assert again.node == camera.node
    assert [d["node"] for d in run_json(udev_bed, ENUMERATE)] == [camera.disk, camera.node]


def test_mount_shows_in_mountinfo(udev_bed: UdevBed, demo_card: SampleCard, card_image: Path) -> None:
    camera = plug(udev_bed, card_image)
    udev_bed.mount("cam1", demo_card.root, "rw")

    seen = run_json(udev_bed, MOUNTINFO, camera.devnum)
    assert seen["has_root"]  # the real mounts are still listed
    assert seen["mine"] == [{"point": str(demo_card.root), "options": "rw,nosuid,nodev,relatime",
                             "fstype": "vfat", "source": camera.node}]  # fmt: skip
    assert seen["listing"] == sorted(os.listdir(demo_card.root))

    udev_bed.umount("cam1")
    seen = run_json(udev_bed, MOUNTINFO, camera.devnum)
    assert seen["mine"] == [] and seen["has_root"]


def test_bed_refuses_bad_commands_and_keeps_running(udev_bed: UdevBed, card_image: Path, tmp_path: Path) -> None:
    with pytest.raises(BedError, match="is not a file"):
        udev_bed.add("cam1", SERIAL, VENDOR_ID, MODEL_ID, tmp_path / "missing.img")
    with pytest.raises(BedError, match="no camera named cam9"):
        udev_bed.remove("cam9")
    plug(udev_bed, card_image)
    with pytest.raises(BedError, match="unknown role"):
        udev_bed.uevent("cam1", "change", "hub")
    with pytest.raises(BedError, match="already plugged in"):
        plug(udev_bed, card_image)
    assert [d["props"]["ID_SERIAL_SHORT"] for d in run_json(udev_bed, ENUMERATE)] == [SERIAL, SERIAL]


LIST_ATTACHED = r"""
import dataclasses, json
from avlog.context import system_clock
from avlog.ingest.devices import list_attached
print(json.dumps([dataclasses.asdict(d) for d in list_attached(clock=system_clock)], default=str))
"""


def test_avlog_device_listing_sees_the_bed(udev_bed: UdevBed, demo_card: SampleCard, card_image: Path) -> None:
    """The bed fits the plug-in code as it is: avlog.ingest.devices finds the camera and its mount."""
    camera = plug(udev_bed, card_image)
    udev_bed.mount("cam1", demo_card.root, "ro")

    before = datetime.now(UTC)
    (attached,) = run_json(udev_bed, LIST_ATTACHED)
    seen_at = datetime.fromisoformat(attached.pop("seen_at"))
    assert before <= seen_at <= datetime.now(UTC)

    major, minor = (int(n) for n in camera.devnum.split(":"))
    assert attached == {
        "node": camera.node,
        "sys_path": camera.paths["partition"],
        "usb_serial": SERIAL,
        "vendor_id": VENDOR_ID,
        "model_id": MODEL_ID,
        "vendor": "Hytera",
        "model": "VM780",
        "fs_type": "vfat",
        "fs_label": "CAMERA",
        "fs_uuid": volume_serial(card_image, 67),
        "major": major,
        "minor": minor,
        "mount": {"path": str(demo_card.root), "read_write": False},
    }


def test_avlog_device_listing_uses_no_deprecated_pyudev_api(udev_bed: UdevBed, card_image: Path) -> None:
    """Warnings are errors in this project; pyudev 0.21+ deprecates reading properties through the Device."""
    plug(udev_bed, card_image)
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", LIST_ATTACHED],
        env=udev_bed.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [d["usb_serial"] for d in json.loads(done.stdout)] == [SERIAL]


WAIT_FOR_PLUG = r"""
import dataclasses, json
from avlog.context import system_clock
from avlog.ingest.devices import PlugWatcher
watcher = PlugWatcher(clock=system_clock)
print("ready", flush=True)
plugged = watcher.next_plugged(timeout=30)
print(json.dumps(plugged and dataclasses.asdict(plugged), default=str), flush=True)
"""


def test_avlog_plug_watcher_sees_the_bed(udev_bed: UdevBed, card_image: Path) -> None:
    """The bed's uevents reach avlog's own watcher (what --wait and watch build on)."""
    child = subprocess.Popen(
        [sys.executable, "-c", WAIT_FOR_PLUG], env=udev_bed.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        assert read_line(child.stdout, 30) == "ready"
        camera = plug(udev_bed, card_image)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err.decode()
    plugged = json.loads(out)
    assert (plugged["node"], plugged["usb_serial"], plugged["fs_type"]) == (camera.node, SERIAL, "vfat")
    assert plugged["mount"] is None
