"""When a recorder was plugged in comes from the caller's clock (``Context.clock``), never from the host's own.

The Art. 11 clock check compares a recorder's newest clip with the moment it was plugged in, so that
moment must be on the same clock as everything else a run records: tests move it, and a store
could run on a clock of its own. The cameras are real udev devices in a umockdev bed
(tests/udev/README.md); avlog runs in a child process that sees the bed, with a clock injected
there: a fake timeline that starts two hours ahead of the host and advances one whole second at
each reading, so any moment the host's clock supplied stands out.
"""

# ruff: noqa: F811 - the udev_bed fixture is imported, and test parameters name it

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from avlog.samples import write_video
from conftest import Cli, catalog_rows, make_fat32_image, register
from udevbed import UdevBed, read_line, udev_bed  # noqa: F401 - udev_bed is a fixture

HYTERA = ("2bdf", "0280")

#: The fake timeline's clock, shared by the child scripts: ``BASE`` + n whole seconds at the n-th reading.
CLOCK = r"""
import itertools
from datetime import datetime, timedelta

_ticks = itertools.count()
BASE = datetime.fromisoformat(sys.argv[1])


def clock():
    return BASE + timedelta(seconds=next(_ticks))
"""

#: avlog's CLI with every Context opened on the fake clock. argv: BASE, then avlog's arguments.
CLOCKED_AVLOG = (
    "import sys\n"
    + CLOCK
    + r"""
import avlog.cli.device_cmds as device_cmds
import avlog.cli.ingest_cmds as ingest_cmds
from avlog.cli import main
from avlog.cli.app import _store_path
from avlog.context import open_context


def open_on_the_fake_clock(ctx):
    return open_context(_store_path(ctx), clock=clock)


ingest_cmds._open = device_cmds._open = open_on_the_fake_clock
sys.argv = ["avlog", *sys.argv[2:]]
main()
"""
)

#: The plug-in code itself: a watcher, then a listing, both on the fake clock. argv: BASE.
LISTEN_THEN_LIST = (
    "import sys\n"
    + CLOCK
    + r"""
import json
from avlog.ingest.devices import PlugWatcher, list_attached

watcher = PlugWatcher(clock=clock)
print("ready", flush=True)
plugged = watcher.next_plugged(timeout=30)
attached = list_attached(clock=clock)
seen = {"plugged": plugged and plugged.seen_at.isoformat(), "attached": [d.seen_at.isoformat() for d in attached]}
print(json.dumps(seen))
"""
)


def fake_base() -> datetime:
    """Two hours ahead of the host, at an odd fraction of a second the host's clock will not hit."""
    return (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=123457)


def tick_of(moment: datetime, base: datetime) -> int:
    """Which reading of the fake clock ``moment`` is; fails for a moment the fake clock never gave."""
    seconds = (moment - base).total_seconds()
    assert seconds == int(seconds) and 0 <= seconds < 10_000, f"{moment} is not on the fake clock from {base}"
    return int(seconds)


def card_image(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    start = datetime.now(UTC) - timedelta(minutes=30)
    write_video(folder / "DCIM" / "100MEDIA" / f"{name.upper()}0001.MP4", start=start, seconds=1.0)
    return make_fat32_image(folder, tmp_path / f"{name}.img")


def plug(bed: UdevBed, name: str, serial: str, image: Path) -> str:
    camera = bed.add(name, serial, *HYTERA, image, vendor="Hytera", model="VM780")
    return camera.node


def plugged_at(store: Path, serial: str) -> tuple[datetime, datetime]:
    """The one ingest of ``serial``: when its recorder was plugged in (the clock check's notes), when it began."""
    (row,) = catalog_rows(store, "SELECT started_at, clock_notes FROM ingests WHERE device_serial = ?", (serial,))
    notes: dict[str, Any] = json.loads(row["clock_notes"])
    return datetime.fromisoformat(notes["plugged_at"]), datetime.fromisoformat(row["started_at"])


def listening(bed: UdevBed) -> bool:
    """libumockdev-preload binds one ``event<fd>`` socket in the bed for each netlink monitor."""
    return any(p.name.startswith("event") for p in bed.root.iterdir())


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def test_the_plug_in_code_stamps_with_the_clock_it_is_given(udev_bed: UdevBed, tmp_path: Path) -> None:
    base = fake_base()
    child = subprocess.Popen(
        [sys.executable, "-c", LISTEN_THEN_LIST, base.isoformat()],
        env=udev_bed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        assert read_line(child.stdout, 30) == "ready"
        plug(udev_bed, "cam1", "BC-0001", card_image(tmp_path, "a"))
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["plugged"] is not None, "the watcher saw no camera"
    first = tick_of(datetime.fromisoformat(seen["plugged"]), base)
    (listed,) = seen["attached"]
    assert tick_of(datetime.fromisoformat(listed), base) == first + 1  # the next reading of the same clock


def test_ingest_of_attached_recorders_takes_plug_in_times_from_the_context_clock(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    register(cli, "BC-0001")
    plug(udev_bed, "cam1", "BC-0001", card_image(tmp_path, "a"))
    base = fake_base()
    done = subprocess.run(
        [sys.executable, "-c", CLOCKED_AVLOG, base.isoformat(), "--store", str(store), "ingest", "--json"],
        env={**udev_bed.env(), "AVLOG_USER": "tester"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plugged, started = plugged_at(store, "BC-0001")
    assert tick_of(plugged, base) < tick_of(started, base)  # seen attached first, then the run began


def test_watch_takes_plug_in_times_from_the_context_clock(
    udev_bed: UdevBed, cli: Cli, store: Path, tmp_path: Path
) -> None:
    """One recorder attached when watch starts (the listing), one plugged in while it runs (the watcher)."""
    register(cli, "BC-0001")
    register(cli, "BC-0002")
    plug(udev_bed, "cam1", "BC-0001", card_image(tmp_path, "a"))
    later = card_image(tmp_path, "b")
    base = fake_base()
    watch = subprocess.Popen(
        [sys.executable, "-c", CLOCKED_AVLOG, base.isoformat(), "--store", str(store), "watch"],
        env={**udev_bed.env(), "AVLOG_USER": "tester"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def done(serial: str) -> bool:
            return [
                r["status"]
                for r in catalog_rows(store, "SELECT status FROM ingests WHERE device_serial = ?", (serial,))
            ] == ["done"]

        wait_until(lambda: done("BC-0001"), 60, "the attached recorder's ingest")
        wait_until(lambda: listening(udev_bed), 15, "watch to listen for uevents")
        plug(udev_bed, "cam2", "BC-0002", later)
        wait_until(lambda: done("BC-0002"), 60, "the plugged-in recorder's ingest")
        watch.send_signal(signal.SIGTERM)
        _out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, err.decode(errors="replace")

    attached, first_started = plugged_at(store, "BC-0001")
    plugged, second_started = plugged_at(store, "BC-0002")
    assert tick_of(attached, base) < tick_of(first_started, base)
    assert tick_of(first_started, base) < tick_of(plugged, base) < tick_of(second_started, base)
