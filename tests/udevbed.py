"""USB cameras in a umockdev test bed, for tests of plug-in detection (see tests/udev/README.md).

tests/udev/bed.py owns the ``UMockdev.Testbed`` and runs under the system
interpreter, which has the GObject bindings. The code under test runs in a
separate process started with :meth:`UdevBed.env`: libumockdev-preload then
shows it the bed's /sys and /dev, so libudev (and pyudev) enumerate the
cameras, a ``pyudev.Monitor`` receives their uevents, and ``/dev/sdX1`` reads
the card image.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
BED = Path(__file__).parent / "udev" / "bed.py"
PRELOAD = "libumockdev-preload.so.0"
SUN_PATH_MAX = 107  # the bed's uevent and ioctl sockets live under its root


class BedError(RuntimeError):
    """The bed refused a command, or could not start."""


@dataclass(frozen=True)
class Camera:
    name: str
    serial: str
    node: str  # the partition, /dev/sdX1
    disk: str  # /dev/sdX
    devnum: str  # the partition's "major:minor"
    image: Path
    backing: str  # "hardlink" (the node is the image) or "copy"
    paths: dict[str, str]  # role -> sysfs path: usb_device ... disk, partition


def read_line(stream: IO[bytes], timeout: float, buffer: bytearray | None = None) -> str | None:
    """One line from a pipe within ``timeout`` seconds; None at end of file. Raises TimeoutError.

    Reads the file descriptor directly, so nothing waits unseen in a Python buffer; pass the same
    ``buffer`` on every call for one stream.
    """
    pending = buffer if buffer is not None else bytearray()
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while b"\n" not in pending:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no line within {timeout} s (so far: {bytes(pending)!r})")
        chunk = os.read(fd, 65536)
        if not chunk:
            if pending:
                line = pending.decode()
                pending.clear()
                return line
            return None
        pending.extend(chunk)
    raw, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return raw.decode()


class UdevBed:
    """A running bed: ``add`` plugs a camera in, ``remove`` pulls it, ``env()`` is for the process under test."""

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self.root = Path()
        self.cameras: dict[str, Camera] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self._log: IO[bytes] | None = None

    def __enter__(self) -> UdevBed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if not os.path.exists(SYSTEM_PYTHON):
            raise BedError(f"{SYSTEM_PYTHON} is missing; .ci/run installs python3-gi, gir1.2-umockdev-1.0, umockdev")
        # the system interpreter must not see this interpreter's packages, nor a bed of another process
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "UMOCKDEV_DIR")}
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the bed's life, closed in close()
        self._proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(BED)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env
        )
        line = self._read()
        if not line.startswith("root "):
            self.close()
            raise BedError(f"the bed did not start: {line!r} {self.log()}")
        self.root = Path(line[len("root ") :])
        if len(str(self.root)) + len("/ioctl/dev/sdz1") > SUN_PATH_MAX:
            self.close()
            raise BedError(f"{self.root} is too long for the bed's sockets; set a shorter TMPDIR")

    def log(self) -> str:
        """What the bed wrote on stderr (GLib warnings, tracebacks)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def command(self, *words: str) -> dict[str, Any]:
        """Send one command line; its ``ok`` answer as a dict, or BedError with the bed's reason."""
        if self._proc is None or self._proc.stdin is None:
            raise BedError("the bed is not running")
        self._proc.stdin.write((shlex.join(words) + "\n").encode())
        self._proc.stdin.flush()
        line = self._read()
        if line.startswith("ok "):
            answer: dict[str, Any] = json.loads(line[3:])
            return answer
        raise BedError(line.removeprefix("error ") + ("\n" + self.log() if self.log() else ""))

    def add(
        self,
        name: str,
        serial: str,
        vendor_id: str,
        model_id: str,
        image: Path,
        fs_type: str | None = None,
        label: str | None = None,
        *,
        vendor: str | None = None,
        model: str | None = None,
    ) -> Camera:
        """Plug in a USB camera whose partition reads ``image``; the bed sends its ``add`` uevents."""
        words = ["add", name, serial, vendor_id, model_id, str(image)]
        if fs_type is not None or label is not None:
            words.append(fs_type or "-")
        if label is not None:
            words.append(label)
        words += [f"{key}={value}" for key, value in (("vendor", vendor), ("model", model)) if value is not None]
        answer = self.command(*words)
        camera = Camera(
            name=answer["name"],
            serial=answer["serial"],
            node=answer["node"],
            disk=answer["disk"],
            devnum=answer["devnum"],
            image=Path(answer["image"]),
            backing=answer["backing"],
            paths=answer["paths"],
        )
        self.cameras[name] = camera
        return camera

    def remove(self, name: str) -> None:
        """Pull the camera out: ``remove`` uevents child first, then its devices and nodes are gone."""
        self.command("remove", name)
        del self.cameras[name]

    def uevent(self, name: str, action: str, role: str = "partition") -> None:
        """One more uevent for one device of the camera (partition, disk, scsi_device, usb_device, ...)."""
        self.command("uevent", name, action, role)

    def mount(self, name: str, folder: Path, mode: str = "rw") -> str:
        """Show the camera's partition mounted on ``folder`` in /proc/self/mountinfo; its line."""
        line: str = self.command("mount", name, str(folder), mode)["mountinfo"]
        return line

    def umount(self, name: str) -> None:
        self.command("umount", name)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a process that sees the bed (``base`` defaults to os.environ)."""
        env = dict(os.environ if base is None else base)
        others = [p for p in env.get("LD_PRELOAD", "").split() if p != PRELOAD]
        env["LD_PRELOAD"] = " ".join([PRELOAD, *others])
        env["UMOCKDEV_DIR"] = str(self.root)
        return env

    def python(self, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with this interpreter in a process that sees the bed."""
        return subprocess.run(
            [sys.executable, "-c", code, *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None and proc.poll() is None:
                    proc.stdin.write(b"quit\n")
                    proc.stdin.close()
                proc.wait(timeout=self.timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = read_line(self._proc.stdout, self.timeout, self._buffer)
        except TimeoutError as exc:
            raise BedError(f"the bed did not answer: {exc} {self.log()}") from exc
        if line is None:
            raise BedError(f"the bed exited ({self._proc.poll()}): {self.log()}")
        return line


@pytest.fixture
def udev_bed() -> Iterator[UdevBed]:
    """A fresh bed per test: no camera plugged in yet."""
    with UdevBed() as bed:
        yield bed
