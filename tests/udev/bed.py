#!/usr/bin/python3
"""A umockdev test bed of USB body cameras, driven line by line on stdin.

Run it with the system interpreter (/usr/bin/python3), which has PyGObject and
the UMockdev typelib. It re-executes itself under libumockdev-preload, as
``umockdev-wrapper`` would: ``Testbed.add_device(..., parent)`` checks that the
parent's /sys path exists, and only the preload library shows this process the
testbed's /sys.

On start it prints ``root <dir>``: the testbed's directory, to be passed as
$UMOCKDEV_DIR (with LD_PRELOAD=libumockdev-preload.so.0) to the process under
test. Then one command per line (shell quoting), one answer line each,
``ok <json>`` or ``error <reason>``:

    add NAME SERIAL VENDOR_ID MODEL_ID IMAGE [FS_TYPE] [LABEL] [vendor=V] [model=M] [revision=R]
        Plug in a USB mass-storage camera: usb_device -> usb_interface ->
        scsi_host -> scsi_target -> scsi_device -> disk sdX -> partition sdX1,
        with the sysfs attributes and udev properties a real one has. ID_FS_*
        come from blkid on IMAGE, as udev's blkid builtin does; FS_TYPE and
        LABEL override them ("-" keeps the probed type, "none" drops ID_FS_*).
        /dev/sdX1 reads and writes IMAGE. umockdev sends an ``add`` uevent for
        each device as it is created, parents first, as the kernel does.
    remove NAME
        Unplug: a ``remove`` uevent for each device, children first, each sent
        while the device still exists (so it carries its properties), then the
        device, its node and its links are gone.
    uevent NAME ACTION [ROLE]
        One more uevent (add, remove, change, ...) for ROLE: partition (the
        default), disk, scsi_device, scsi_target, scsi_host, usb_interface or
        usb_device. Nothing is created or removed.
    mount NAME DIR [rw|ro]
        Show the partition as mounted on DIR in /proc/self/mountinfo (by its
        major:minor). DIR is a real folder (say, a copy of the card's files);
        nothing is mounted for real.
    umount NAME
    list
    quit
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

PRELOAD = "libumockdev-preload.so.0"
PCI_ROOT = "pci0000:00"
USB_HC = "0000:00:14.0"  # an xHCI controller
SECTOR = 512
PART_START = 2048  # sectors: the partition starts at 1 MiB, where card formatters put it
SCSI_DISK_MAJOR = 8
USB_DEVICE_MAJOR = 189
ROLES = ("usb_device", "usb_interface", "scsi_host", "scsi_target", "scsi_device", "disk", "partition")
OPTIONS = ("vendor", "model", "revision")


def probe(image: Path) -> dict[str, str]:
    """The ID_FS_* properties of ``image``, from libblkid, as udev's blkid builtin sets them."""
    blkid = shutil.which("blkid") or "/usr/sbin/blkid"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}
    done = subprocess.run([blkid, "-p", "-o", "export", str(image)], capture_output=True, text=True, env=env)
    if done.returncode == 2:  # nothing recognised: a blank or damaged card
        return {}
    if done.returncode != 0:
        raise RuntimeError(f"blkid failed on {image}: {done.stderr.strip()}")
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    props = {f"ID_FS_{key}": found[key] for key in ("TYPE", "VERSION", "UUID", "LABEL", "USAGE") if key in found}
    return props if "ID_FS_TYPE" in props else {}


def udev_enc(value: str) -> str:
    r"""udev's *_ENC form: bytes outside a safe set as \xNN."""
    return "".join(
        ch if ch.isalnum() or ch in "#+-.:=@_" else "".join(f"\\x{b:02x}" for b in ch.encode()) for ch in value
    )


def udev_safe(value: str) -> str:
    """udev's cleaned-up form: runs of whitespace become one "_", other unsafe characters "_" too."""
    collapsed = "_".join(value.strip().split())
    return "".join(ch if ch.isalnum() or ch in "#+-.:=@_" else "_" for ch in collapsed)


def mountinfo_escape(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


@dataclass
class Camera:
    name: str
    serial: str
    vendor_id: str
    model_id: str
    image: Path
    vendor: str
    model: str
    revision: str
    fs: dict[str, str]
    port: int  # 1-<port> on the root hub
    index: int  # sd<a + index>
    host: int  # scsi host number
    devnum: int  # USB device number on bus 1
    diskseq: int
    image_mode: int = 0
    backing: str = ""
    paths: dict[str, str] = field(default_factory=dict)
    mount: str | None = None  # the mountinfo line while "mounted"

    @property
    def disk(self) -> str:
        return f"sd{chr(ord('a') + self.index)}"

    @property
    def part(self) -> str:
        return f"{self.disk}1"

    @property
    def disk_minor(self) -> int:
        return 16 * self.index

    @property
    def part_sectors(self) -> int:
        return self.image.stat().st_size // SECTOR

    @property
    def id_path(self) -> str:
        return f"pci-{USB_HC}-usb-0:{self.port}:1.0-scsi-0:0:0:0"

    @property
    def id_serial(self) -> str:
        return f"{udev_safe(self.vendor[:8])}_{udev_safe(self.model[:16])}_{self.serial}-0:0"

    @property
    def bcd(self) -> str:
        return self.revision.replace(".", "").zfill(4)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "serial": self.serial,
            "node": f"/dev/{self.part}",
            "disk": f"/dev/{self.disk}",
            "devnum": f"{SCSI_DISK_MAJOR}:{self.disk_minor + 1}",
            "image": str(self.image),
            "backing": self.backing,
            "paths": self.paths,
        }

    # -- what each device of the chain shows: (subsystem, name, sysfs attributes, udev properties, driver) ----

    def usb_device(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        attrs = {
            "idVendor": self.vendor_id, "idProduct": self.model_id, "bcdDevice": self.bcd,
            "manufacturer": self.vendor, "product": self.model, "serial": self.serial,
            "busnum": "1", "devnum": str(self.devnum), "devpath": str(self.port), "speed": "480",
            "version": " 2.00", "bDeviceClass": "00", "bNumInterfaces": " 1", "bConfigurationValue": "1",
            "bMaxPower": "500mA", "removable": "removable", "dev": f"{USB_DEVICE_MAJOR}:{self.devnum - 1}",
        }  # fmt: skip
        props = {
            "DEVTYPE": "usb_device", "DRIVER": "usb", "PRODUCT": f"{self.vendor_id}/{self.model_id}/{int(self.bcd)}",
            "TYPE": "0/0/0", "BUSNUM": "001", "DEVNUM": f"{self.devnum:03d}", "MAJOR": str(USB_DEVICE_MAJOR),
            "MINOR": str(self.devnum - 1), "DEVNAME": f"/dev/bus/usb/001/{self.devnum:03d}",
            "ID_BUS": "usb", "ID_VENDOR": udev_safe(self.vendor), "ID_VENDOR_ENC": udev_enc(self.vendor),
            "ID_VENDOR_ID": self.vendor_id, "ID_MODEL": udev_safe(self.model), "ID_MODEL_ENC": udev_enc(self.model),
            "ID_MODEL_ID": self.model_id, "ID_REVISION": self.bcd,
            "ID_SERIAL": f"{udev_safe(self.vendor)}_{udev_safe(self.model)}_{self.serial}",
            "ID_SERIAL_SHORT": self.serial, "ID_USB_INTERFACES": ":080650:",
            "ID_PATH": f"pci-{USB_HC}-usb-0:{self.port}",
        }  # fmt: skip
        return "usb", f"1-{self.port}", attrs, props, "usb"

    def usb_interface(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        attrs = {
            # mass storage, SCSI transparent command set, bulk-only transport
            "bInterfaceClass": "08", "bInterfaceSubClass": "06", "bInterfaceProtocol": "50",
            "bInterfaceNumber": "00", "bAlternateSetting": " 0", "bNumEndpoints": "02",
        }  # fmt: skip
        props = {
            "DEVTYPE": "usb_interface", "DRIVER": "usb-storage", "INTERFACE": "8/6/80", "TYPE": "0/0/0",
            "PRODUCT": f"{self.vendor_id}/{self.model_id}/{int(self.bcd)}",
            "MODALIAS": f"usb:v{self.vendor_id.upper()}p{self.model_id.upper()}d{self.bcd}"
            "dc00dsc00dp00ic08isc06ip50in00",
        }  # fmt: skip
        return "usb", f"1-{self.port}:1.0", attrs, props, "usb-storage"

    def scsi_host(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        return "scsi", f"host{self.host}", {}, {"DEVTYPE": "scsi_host"}, ""

    def scsi_target(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        return "scsi", f"target{self.host}:0:0", {}, {"DEVTYPE": "scsi_target"}, ""

    def scsi_device(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        attrs = {
            "vendor": self.vendor[:8].ljust(8), "model": self.model[:16].ljust(16), "rev": self.revision[:4].ljust(4),
            "type": "0", "scsi_level": "7", "state": "running", "device_blocked": "0", "removable": "1",
        }  # fmt: skip
        props = {"DEVTYPE": "scsi_device", "DRIVER": "sd", "MODALIAS": "scsi:t-0x00"}
        return "scsi", f"{self.host}:0:0:0", attrs, props, "sd"

    def _storage_props(self) -> dict[str, str]:
        """What usb_id, path_id and the persistent-storage rules give the disk and its partitions alike."""
        vendor, model = self.vendor[:8], self.model[:16]  # SCSI INQUIRY fields
        return {
            "ID_BUS": "usb", "ID_TYPE": "disk", "ID_INSTANCE": "0:0",
            "ID_VENDOR": udev_safe(vendor), "ID_VENDOR_ENC": udev_enc(vendor.ljust(8)), "ID_VENDOR_ID": self.vendor_id,
            "ID_MODEL": udev_safe(model), "ID_MODEL_ENC": udev_enc(model.ljust(16)), "ID_MODEL_ID": self.model_id,
            "ID_REVISION": self.revision, "ID_SERIAL": self.id_serial, "ID_SERIAL_SHORT": self.serial,
            "ID_USB_VENDOR": udev_safe(self.vendor), "ID_USB_VENDOR_ENC": udev_enc(self.vendor),
            "ID_USB_VENDOR_ID": self.vendor_id, "ID_USB_MODEL": udev_safe(self.model),
            "ID_USB_MODEL_ENC": udev_enc(self.model), "ID_USB_MODEL_ID": self.model_id,
            "ID_USB_REVISION": self.revision, "ID_USB_SERIAL": self.id_serial, "ID_USB_SERIAL_SHORT": self.serial,
            "ID_USB_TYPE": "disk", "ID_USB_INSTANCE": "0:0", "ID_USB_INTERFACES": ":080650:",
            "ID_USB_INTERFACE_NUM": "00", "ID_USB_DRIVER": "usb-storage",
            "ID_PATH": self.id_path, "ID_PATH_TAG": self.id_path.replace(":", "_").replace(".", "_").replace("-", "_"),
            "ID_PART_TABLE_TYPE": "dos", "ID_PART_TABLE_UUID": f"{0x5EC0 + self.index:08x}",
            "DISKSEQ": str(self.diskseq), "TAGS": ":systemd:", "CURRENT_TAGS": ":systemd:",
        }  # fmt: skip

    def disk_device(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        attrs = {
            "dev": f"{SCSI_DISK_MAJOR}:{self.disk_minor}", "size": str(PART_START + self.part_sectors),
            "removable": "1", "ro": "0", "range": "16", "ext_range": "256", "capability": "1", "hidden": "0",
        }  # fmt: skip
        props = {
            "MAJOR": str(SCSI_DISK_MAJOR), "MINOR": str(self.disk_minor), "DEVNAME": f"/dev/{self.disk}",
            "DEVTYPE": "disk", **self._storage_props(),
            "DEVLINKS": f"/dev/disk/by-id/usb-{self.id_serial} /dev/disk/by-path/{self.id_path}",
        }  # fmt: skip
        return "block", f"block/{self.disk}", attrs, props, ""

    def partition(self) -> tuple[str, str, dict[str, str], dict[str, str], str]:
        attrs = {
            "dev": f"{SCSI_DISK_MAJOR}:{self.disk_minor + 1}", "size": str(self.part_sectors),
            "start": str(PART_START), "partition": "1", "ro": "0", "alignment_offset": "0", "discard_alignment": "0",
        }  # fmt: skip
        props = {
            "MAJOR": str(SCSI_DISK_MAJOR), "MINOR": str(self.disk_minor + 1), "DEVNAME": f"/dev/{self.part}",
            "DEVTYPE": "partition", "PARTN": "1", **self._storage_props(), **self.fs,
            "ID_PART_ENTRY_SCHEME": "dos", "ID_PART_ENTRY_UUID": f"{0x5EC0 + self.index:08x}-01",
            "ID_PART_ENTRY_TYPE": "0x7" if self.fs.get("ID_FS_TYPE") == "exfat" else "0xc",
            "ID_PART_ENTRY_NUMBER": "1", "ID_PART_ENTRY_OFFSET": str(PART_START),
            "ID_PART_ENTRY_SIZE": str(self.part_sectors), "ID_PART_ENTRY_DISK": f"{SCSI_DISK_MAJOR}:{self.disk_minor}",
            "DEVLINKS": f"/dev/disk/by-id/usb-{self.id_serial}-part1 /dev/disk/by-path/{self.id_path}-part1",
        }  # fmt: skip
        for key in ("ID_FS_LABEL", "ID_FS_UUID"):
            if key in self.fs:
                props[f"{key}_ENC"] = udev_enc(self.fs[key])
        return "block", self.part, attrs, props, ""

    def chain(self) -> list[tuple[str, tuple[str, str, dict[str, str], dict[str, str], str]]]:
        return [
            ("usb_device", self.usb_device()),
            ("usb_interface", self.usb_interface()),
            ("scsi_host", self.scsi_host()),
            ("scsi_target", self.scsi_target()),
            ("scsi_device", self.scsi_device()),
            ("disk", self.disk_device()),
            ("partition", self.partition()),
        ]


class Bed:
    def __init__(self) -> None:
        self.real_mountinfo = Path("/proc/self/mountinfo").read_text()  # before the bed has its own
        self.tb = UMockdev.Testbed.new()
        self.root = Path(self.tb.get_root_dir())
        self.cameras: dict[str, Camera] = {}
        self.next_host = 6  # hosts 0-5 belong to the machine's own controllers, as on a laptop
        self.next_devnum = 2  # devnum 1 is the root hub
        self.next_diskseq = 11
        pci = self.tb.add_device("pci", PCI_ROOT, None, [], [])
        hc = self.tb.add_device(
            "pci",
            USB_HC,
            pci,
            ["vendor", "0x8086", "device", "0xa36d", "class", "0x0c0330"],
            ["DRIVER", "xhci_hcd", "PCI_CLASS", "C0330", "PCI_ID", "8086:A36D", "PCI_SLOT_NAME", USB_HC],
        )
        self.hub = self._add_device(
            "usb",
            "usb1",
            hc,
            {"idVendor": "1d6b", "idProduct": "0002", "busnum": "1", "devnum": "1", "bDeviceClass": "09",
             "speed": "480", "maxchild": "8", "dev": f"{USB_DEVICE_MAJOR}:0"},
            {"DEVTYPE": "usb_device", "DRIVER": "usb", "BUSNUM": "001", "DEVNUM": "001", "PRODUCT": "1d6b/2/606",
             "TYPE": "9/0/1", "MAJOR": str(USB_DEVICE_MAJOR), "MINOR": "0", "DEVNAME": "/dev/bus/usb/001/001"},
            "usb",
        )  # fmt: skip

    def close(self) -> None:
        for camera in self.cameras.values():
            self._restore_image(camera)
        self.cameras.clear()
        del self.tb  # its finalizer removes the root directory

    # -- commands -----------------------------------------------------------------------------------------------

    def add(self, args: list[str]) -> dict[str, Any]:
        opts = dict(a.split("=", 1) for a in args if a.split("=", 1)[0] in OPTIONS and "=" in a)
        pos = [a for a in args if not ("=" in a and a.split("=", 1)[0] in OPTIONS)]
        if not 5 <= len(pos) <= 7:
            raise ValueError("usage: add NAME SERIAL VENDOR_ID MODEL_ID IMAGE [FS_TYPE] [LABEL] [vendor=V] [model=M]")
        name, serial, vendor_id, model_id, image_arg = pos[:5]
        if name in self.cameras:
            raise ValueError(f"{name} is already plugged in")
        image = Path(image_arg).resolve()
        if not image.is_file():
            raise ValueError(f"{image} is not a file")
        if any(c.image == image for c in self.cameras.values()):
            raise ValueError(f"{image} already backs another camera")
        fs = probe(image)
        if len(pos) > 5 and pos[5] == "none":
            fs = {}
        elif len(pos) > 5 and pos[5] != "-":
            fs = {"ID_FS_USAGE": "filesystem", **fs, "ID_FS_TYPE": pos[5]}
        if len(pos) > 6 and fs:
            fs["ID_FS_LABEL"] = pos[6]
        camera = Camera(
            name=name,
            serial=serial,
            vendor_id=vendor_id.lower(),
            model_id=model_id.lower(),
            image=image,
            vendor=opts.get("vendor", "BodyCam"),
            model=opts.get("model", "DSJ Recorder"),
            revision=opts.get("revision", "1.00"),
            fs=fs,
            port=min(set(range(1, 16)) - {c.port for c in self.cameras.values()}),
            index=self._free_disk_index(),
            host=self.next_host,
            devnum=self.next_devnum,
            diskseq=self.next_diskseq,
            image_mode=image.stat().st_mode & 0o7777,
        )
        self.next_host += 1
        self.next_devnum += 1
        self.next_diskseq += 1
        # The kernel makes the nodes before udev announces the devices, and add_device() sends each "add"
        # uevent itself: the nodes must exist first, or a quick listener would open a missing node.
        self._make_nodes(camera)
        parent = self.hub
        try:
            for role, (subsystem, devname, attrs, props, driver) in camera.chain():
                parent = camera.paths[role] = self._add_device(subsystem, devname, parent, attrs, props, driver)
        except Exception:
            for path in reversed(camera.paths.values()):
                self._remove_device(path)
            for node in (camera.disk, camera.part):
                (self.root / "dev" / node).unlink(missing_ok=True)
            self._restore_image(camera)
            raise
        self.cameras[name] = camera
        return camera.describe()

    def remove(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: remove NAME")
        camera = self._camera(args[0])
        for role in reversed(ROLES):
            # as in the kernel's device_del(): the node goes first, then the uevent (sent while the sysfs
            # device still exists, so it carries its properties), then the device
            self._remove_node(camera.paths[role])
            self.tb.uevent(camera.paths[role], "remove")
            self._remove_device(camera.paths[role])
        self._restore_image(camera)
        del self.cameras[camera.name]
        self._write_mountinfo()  # a card pulled while mounted is unmounted with it
        return {"name": camera.name, "removed": list(reversed(ROLES))}

    def uevent(self, args: list[str]) -> dict[str, Any]:
        if len(args) not in (2, 3):
            raise ValueError("usage: uevent NAME ACTION [ROLE]")
        camera = self._camera(args[0])
        role = args[2] if len(args) == 3 else "partition"
        if role not in ROLES:
            raise ValueError(f"unknown role {role} (one of {', '.join(ROLES)})")
        self.tb.uevent(camera.paths[role], args[1])
        return {"name": camera.name, "action": args[1], "syspath": camera.paths[role]}

    def mount(self, args: list[str]) -> dict[str, Any]:
        if len(args) not in (2, 3) or (len(args) == 3 and args[2] not in ("rw", "ro")):
            raise ValueError("usage: mount NAME DIR [rw|ro]")
        camera = self._camera(args[0])
        target = Path(args[1]).resolve()
        if not target.is_dir():
            raise ValueError(f"{target} is not a folder")
        mode = args[2] if len(args) == 3 else "rw"
        fs_type = camera.fs.get("ID_FS_TYPE", "vfat")
        options = "fmask=0022,dmask=0022,codepage=437,iocharset=utf8,shortname=mixed,errors=remount-ro"
        if fs_type == "exfat":
            options = "fmask=0022,dmask=0022,iocharset=utf8,errors=remount-ro"
        root_id = next(line.split()[0] for line in self.real_mountinfo.splitlines() if line.split()[4] == "/")
        mount_id = 900 + camera.index
        camera.mount = (
            f"{mount_id} {root_id} {SCSI_DISK_MAJOR}:{camera.disk_minor + 1} / {mountinfo_escape(str(target))} "
            f"{mode},nosuid,nodev,relatime shared:{mount_id} - {fs_type} /dev/{camera.part} {mode},{options}"
        )
        self._write_mountinfo()
        return {"name": camera.name, "mountinfo": camera.mount}

    def umount(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: umount NAME")
        camera = self._camera(args[0])
        camera.mount = None
        self._write_mountinfo()
        return {"name": camera.name}

    def list(self, args: list[str]) -> dict[str, Any]:
        return {"cameras": [self.cameras[name].describe() for name in sorted(self.cameras)]}

    # -- helpers ------------------------------------------------------------------------------------------------

    def _camera(self, name: str) -> Camera:
        if name not in self.cameras:
            raise ValueError(f"no camera named {name}")
        return self.cameras[name]

    def _free_disk_index(self) -> int:
        """The first free sdX after sda. A name the host itself has is skipped: where the bed has no node,
        the preload library falls through to the real /dev, so an unplugged camera's node must be a name
        that is missing there too, never a real disk of this machine."""
        taken = {c.index for c in self.cameras.values()}
        for index in range(1, 26):
            if index not in taken and not os.path.lexists(f"/dev/sd{chr(ord('a') + index)}"):
                return index
        raise RuntimeError("no free sdX name left")

    def _add_device(
        self, subsystem: str, name: str, parent: str, attrs: dict[str, str], props: dict[str, str], driver: str = ""
    ) -> str:
        flat_attrs = [x for kv in attrs.items() for x in kv]
        flat_props = [x for kv in {"SUBSYSTEM": subsystem, **props}.items() for x in kv]
        path: str | None = self.tb.add_device(subsystem, name, parent, flat_attrs, flat_props)
        if path is None:
            raise RuntimeError(f"umockdev refused {subsystem} device {name} under {parent}")
        if driver:  # the "driver" link pyudev's Device.driver reads
            drivers = self.root / "sys" / "bus" / subsystem / "drivers" / driver
            drivers.mkdir(parents=True, exist_ok=True)
            self.tb.set_attribute_link(path, "driver", os.path.relpath(drivers, self.root / path.lstrip("/")))
        return path

    def _make_nodes(self, camera: Camera) -> None:
        """The /dev nodes: add_device() records only major:minor (dev/.node/), the files are ours to make.

        The preload library shows a regular file under $UMOCKDEV_DIR/dev as a block device when it has the
        sticky bit (else as a character device), with the major:minor from dev/.node/. A symlink to the
        image would be followed by open() and stat(), but lstat() and realpath() would lead out of /dev, and
        the image's own mode would decide the type. So the partition is a hard link to the image: reads,
        seeks (to the end: the image size) and writes reach the image itself. The image carries the sticky
        bit while it is plugged in; remove restores its mode. An image on another filesystem than the bed
        is copied instead ("backing": "copy"; writes then stay in the copy). The whole disk /dev/sdX is an
        empty block node: a camera is read through its partition.
        """
        dev = self.root / "dev"
        dev.mkdir(exist_ok=True)
        disk = dev / camera.disk
        disk.touch()
        disk.chmod(0o1644)
        part = dev / camera.part
        try:
            os.link(camera.image, part)
            camera.backing = "hardlink"
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(camera.image, part)
            camera.backing = "copy"
        part.chmod(0o1000 | (camera.image_mode & 0o777))

    def _restore_image(self, camera: Camera) -> None:
        if camera.backing == "hardlink":
            os.chmod(camera.image, camera.image_mode)

    def _remove_node(self, syspath: str) -> None:
        props = (self.root / syspath.lstrip("/") / "uevent").read_text().splitlines()
        node = next((line[len("DEVNAME=") :] for line in props if line.startswith("DEVNAME=")), None)
        if node:
            (self.root / "dev" / node).unlink(missing_ok=True)

    def _remove_device(self, syspath: str) -> None:
        self._remove_node(syspath)
        self.tb.remove_device(syspath)  # the sysfs dir, class and /sys/dev links, dev/.node
        for link in (self.root / "sys" / "block").glob("*"):  # /sys/block/<disk> is left dangling
            if not link.exists():
                link.unlink()

    def _write_mountinfo(self) -> None:
        """$UMOCKDEV_DIR/proc/self/mountinfo replaces the real one for the preloaded process while it exists."""
        mocked = self.root / "proc" / "self" / "mountinfo"
        lines = [c.mount for c in self.cameras.values() if c.mount]
        if lines:
            mocked.parent.mkdir(parents=True, exist_ok=True)
            mocked.write_text(self.real_mountinfo + "".join(line + "\n" for line in lines))
        elif mocked.exists():
            mocked.unlink()
            shutil.rmtree(self.root / "proc")


def serve(bed: Bed) -> None:
    commands = {
        "add": bed.add,
        "remove": bed.remove,
        "uevent": bed.uevent,
        "mount": bed.mount,
        "umount": bed.umount,
        "list": bed.list,
    }
    for line in sys.stdin:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            print(f"error {exc}", flush=True)
            continue
        if not words:
            continue
        if words[0] == "quit":
            print("ok {}", flush=True)
            return
        handler = commands.get(words[0])
        if handler is None:
            print(f"error unknown command {words[0]}", flush=True)
            continue
        try:
            print("ok " + json.dumps(handler(words[1:])), flush=True)
        except Exception as exc:  # one bad command must not take the bed down
            print(f"error {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)


def main() -> int:
    if PRELOAD not in os.environ.get("LD_PRELOAD", "").split():
        preload = " ".join([PRELOAD, *os.environ.get("LD_PRELOAD", "").split()])
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "LD_PRELOAD": preload})
    bed = Bed()
    print(f"root {bed.root}", flush=True)
    try:
        serve(bed)
    finally:
        bed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
