"""Recorders attached over USB, found with pyudev; which of them are registered; waiting for one.

Only USB mass-storage block devices are considered (``ID_BUS=usb``): a
partition with a filesystem, or a whole disk formatted without a partition
table. A card that is mounted is read through its mount point (found in
``/proc/self/mountinfo`` by major:minor); one that is not is read raw,
read-only, from its device node.
"""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyudev

MOUNTINFO = Path("/proc/self/mountinfo")

#: What time it is: the caller's clock (``Context.clock``), never read here on its own.
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Mount:
    path: str
    read_write: bool


@dataclass(frozen=True)
class AttachedDevice:
    node: str
    sys_path: str
    usb_serial: str | None
    vendor_id: str | None
    model_id: str | None
    vendor: str | None
    model: str | None
    fs_type: str | None
    fs_label: str | None
    fs_uuid: str | None
    major: int
    minor: int
    mount: Mount | None
    seen_at: datetime | None = None  # when it was found attached or plugged in (Art. 11 clock check)

    @property
    def description(self) -> str:
        parts = [p for p in (self.vendor, self.model) if p]
        return " ".join(parts) or f"{self.vendor_id or '?'}:{self.model_id or '?'}"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(mountinfo: Path = MOUNTINFO) -> dict[tuple[int, int], Mount]:
    """Mount points by the major:minor of what is mounted (the first mount of each wins)."""
    mounts: dict[tuple[int, int], Mount] = {}
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return mounts
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or ":" not in fields[2]:
            continue
        major, minor = (int(x) for x in fields[2].split(":", 1))
        options = fields[5].split(",")
        mounts.setdefault((major, minor), Mount(_unescape(fields[4]), "rw" in options))
    return mounts


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.replace("\\x20", " ").strip()
    return value or None


def from_udev(device: Any, mounts: dict[tuple[int, int], Mount]) -> AttachedDevice | None:
    """An :class:`AttachedDevice` for a udev block device that is USB storage holding a filesystem."""
    if device.subsystem != "block" or device.properties.get("ID_BUS") != "usb":
        return None
    devtype = device.properties.get("DEVTYPE")
    if devtype not in ("partition", "disk") or not device.properties.get("ID_FS_TYPE"):
        return None  # a disk with partitions is represented by its partitions
    node = device.device_node or device.properties.get("DEVNAME")
    if not node:
        return None
    major = int(device.properties.get("MAJOR", 0) or 0)
    minor = int(device.properties.get("MINOR", 0) or 0)
    usb = device.find_parent("usb", "usb_device")

    def usb_attr(name: str) -> str | None:
        if usb is None:
            return None
        try:
            raw = usb.attributes.get(name)
        except (KeyError, OSError):
            return None
        return raw.decode("utf-8", "replace").strip() if raw else None

    return AttachedDevice(
        node=node,
        sys_path=device.sys_path,
        usb_serial=_clean(device.properties.get("ID_SERIAL_SHORT")) or usb_attr("serial"),
        vendor_id=_clean(device.properties.get("ID_VENDOR_ID")) or usb_attr("idVendor"),
        model_id=_clean(device.properties.get("ID_MODEL_ID")) or usb_attr("idProduct"),
        vendor=_clean(device.properties.get("ID_VENDOR")) or usb_attr("manufacturer"),
        model=_clean(device.properties.get("ID_MODEL")) or usb_attr("product"),
        fs_type=device.properties.get("ID_FS_TYPE"),
        fs_label=_clean(device.properties.get("ID_FS_LABEL")),
        fs_uuid=device.properties.get("ID_FS_UUID"),
        major=major,
        minor=minor,
        mount=mounts.get((major, minor)),
    )


def list_attached(context: Any = None, *, clock: Clock) -> list[AttachedDevice]:
    """USB storage attached now, in device-node order, each seen at ``clock()`` (the caller's clock:
    ``Context.clock``, which tests move; Art. 11's clock check compares the recorder's clock with it)."""
    context = context or pyudev.Context()
    mounts = read_mounts()
    found = []
    now = clock()
    for device in context.list_devices(subsystem="block", ID_BUS="usb"):
        attached = from_udev(device, mounts)
        if attached is not None:
            found.append(replace(attached, seen_at=now))
    return sorted(found, key=lambda d: d.node)


class PlugWatcher:
    """Listens for USB storage being plugged in, from the moment it is created.

    A background thread takes each event off the netlink socket as it arrives
    and stamps it with ``clock()`` (the caller's clock, ``Context.clock``; it is
    called on that thread), so a recorder plugged in while another is being
    ingested keeps the moment it was really plugged in (the Art. 11 clock check).
    """

    def __init__(self, context: Any = None, *, clock: Clock):
        self.clock = clock
        self.context = context or pyudev.Context()
        self.monitor = pyudev.Monitor.from_netlink(self.context)
        self.monitor.filter_by("block")
        self.events: queue.Queue[AttachedDevice] = queue.Queue()
        self.observer = pyudev.MonitorObserver(self.monitor, callback=self._arrived, name="avlog-udev")
        self.observer.daemon = True
        self.observer.start()

    def _arrived(self, device: Any) -> None:
        # A card reader that stays plugged in reports a new card as a media change.
        media_changed = device.action == "change" and device.properties.get("DISK_MEDIA_CHANGE") == "1"
        if device.action == "add" or media_changed:
            # Built here, on the observer's thread: libudev objects never cross to another thread.
            attached = from_udev(device, read_mounts())
            if attached is not None:
                self.events.put(replace(attached, seen_at=self.clock()))

    def close(self) -> None:
        self.observer.send_stop()

    def next_plugged(
        self, *, timeout: float | None = None, should_stop: Callable[[], bool] = lambda: False
    ) -> AttachedDevice | None:
        """The next USB storage plugged in and still attached, or None after ``timeout`` s or once ``should_stop``.

        A device that was pulled out again before its turn is skipped: its node
        may by now belong to another recorder.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not should_stop():
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                return None
            try:
                attached = self.events.get(timeout=wait)
            except queue.Empty:
                continue
            if still_attached(attached):  # its own udev context: the observer thread owns self.context
                return attached
        return None


def still_attached(device: AttachedDevice, context: Any = None) -> bool:
    """Whether ``device`` is attached now as the same device: same udev path, node, serial and filesystem.

    Checked before a queued device is read, and again once its card is open,
    so a card is never filed under a recorder that was pulled out meanwhile.
    """
    context = context or pyudev.Context()
    try:
        current = from_udev(pyudev.Devices.from_sys_path(context, device.sys_path), {})
        by_node = pyudev.Devices.from_device_file(context, device.node)
    except (pyudev.DeviceNotFoundError, OSError, ValueError):
        return False
    if current is None or by_node.sys_path != device.sys_path:
        return False
    return (current.node, current.usb_serial, current.fs_uuid, current.fs_type) == (
        device.node,
        device.usb_serial,
        device.fs_uuid,
        device.fs_type,
    )
