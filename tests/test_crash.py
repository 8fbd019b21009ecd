"""An ingest killed with SIGKILL mid-copy leaves no partial object and no clip without its object.

The card holds six incompressible real clips of about 45 MB each, so each copy
takes long enough to be caught in the act. The ingest runs as a separate
process and is killed at four moments: while the first files are being copied
(before any rename into ``objects/``), right after two objects were installed
(between files), after objects were renamed into place but before their clip
rows could be committed (the catalog's write lock is held meanwhile), and while
a later file is being copied. Afterwards the store is checked from the outside
(files on disk, catalog rows), then a second run must bring in everything
exactly once.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avlog.samples import write_video
from conftest import error_line, file_digests, run_avlog

SERIAL = "BC-CRASH-1"
CLIP_COUNT = 6
MIN_CLIP_BYTES = 40_000_000


@pytest.fixture(scope="module")
def big_card(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A folder card of six ~45 MB noise clips and their independently computed (BLAKE3, SHA-256)."""
    root = tmp_path_factory.mktemp("bigcard")
    start = datetime.now(UTC) - timedelta(hours=1)
    hashes: dict[str, tuple[str, str]] = {}
    for n in range(CLIP_COUNT):
        moment = start + timedelta(seconds=8 * n)
        rel = f"DCIM/100MEDIA/{moment.strftime('%Y%m%d_%H%M%S')}_{n + 1:04d}.MP4"
        path = write_video(root / rel, start=moment, seconds=8, width=640, height=480, noise=True)
        assert path.stat().st_size > MIN_CLIP_BYTES, f"{rel} is only {path.stat().st_size} bytes"
        hashes[rel] = file_digests(path)
    assert len({b for b, _s in hashes.values()}) == CLIP_COUNT, "the clips must all differ"
    return root, hashes


def _object_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "objects").rglob("*") if p.is_file())


def _part_files(store: Path) -> list[Path]:
    return sorted((store / "tmp").glob("*.part"))


def _part_sizes(store: Path) -> list[int]:
    sizes = []
    for p in _part_files(store):
        with contextlib.suppress(FileNotFoundError):  # renamed or removed between listing and stat
            sizes.append(p.stat().st_size)
    return sizes


def _query(store: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(store / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def _assert_store_consistent(store: Path, source_blake3: set[str]) -> None:
    """Every object file is whole and named by its content; every clip row has its object."""
    for obj in _object_files(store):
        assert obj.parent.parent == store / "objects", f"unexpected file {obj}"
        assert obj.parent.name == obj.name[:2], f"{obj} is in the wrong folder"
        actual, _sha = file_digests(obj)
        assert actual == obj.name, f"partial or damaged object {obj}"
        assert actual in source_blake3, f"object {obj.name} is not the content of any source file"
        assert obj.stat().st_mode & 0o222 == 0, f"object {obj} is writable"
    for row in _query(store, "SELECT id, blake3, size FROM clips"):
        path = store / "objects" / row["blake3"][:2] / row["blake3"]
        assert path.is_file(), f"clip {row['id']} has no object {path}"
        assert path.stat().st_size == row["size"]
    for row in _query(store, "SELECT blake3 FROM clips WHERE blake3 NOT IN (SELECT blake3 FROM objects)"):
        raise AssertionError(f"clip with BLAKE3 {row['blake3']} has no objects row")


def _kill_at(proc: subprocess.Popen[bytes], store: Path, want_objects: int, want_part_bytes: int) -> bool:
    """SIGKILL once ``want_objects`` objects are installed and a partial copy has ``want_part_bytes``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        n_objects = len(_object_files(store))
        if n_objects > want_objects:
            return False  # overshot
        if n_objects == want_objects and (
            want_part_bytes == 0 or any(s >= want_part_bytes for s in _part_sizes(store))
        ):
            proc.send_signal(signal.SIGKILL)
            return True
        time.sleep(0.001)
    return False


def _kill_between_rename_and_commit(proc: subprocess.Popen[bytes], store: Path) -> bool:
    """Hold the catalog's write lock so installed objects cannot be committed, then SIGKILL.

    Once a copy is under way (its ingest row is committed), this process takes
    the write lock; the ingest goes on copying and renaming into ``objects/`` but
    blocks on its first clip commit. When the installed objects stop changing,
    the ingest is killed: objects whose rows were never written.
    """
    deadline = time.monotonic() + 60
    while not _part_files(store):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    conn = sqlite3.connect(store / "catalog.sqlite", timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        seen, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline and proc.poll() is None:
            n_objects = len(_object_files(store))
            if n_objects != seen:
                seen, stable_since = n_objects, time.monotonic()
            elif n_objects and time.monotonic() - stable_since > 0.5:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return True
            time.sleep(0.005)
        return False
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# objects installed when the kill comes, bytes a partial copy must have reached, catalog held
KILL_POINTS = {
    "first-copy-before-any-rename": (0, 4 << 20, False),
    "between-files-after-two-objects": (2, 0, False),
    "after-rename-before-commit": (1, 0, True),
    "mid-copy-after-four-objects": (4, 8 << 20, False),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(KILL_POINTS))
def test_sigkill_mid_ingest_leaves_store_consistent_and_rerun_completes(
    moment: str, store: Path, big_card: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    card, hashes = big_card
    source_blake3 = {b for b, _s in hashes.values()}
    want_objects, want_part_bytes, hold_catalog = KILL_POINTS[moment]
    reg = run_avlog(store, "device", "register", SERIAL, "--custodian", "李四", "--unit", "二中队")
    assert reg.returncode == 0, reg.stderr

    command = [sys.executable, "-m", "avlog", "--store", str(store), "ingest", "--from", str(card)]
    proc = subprocess.Popen([*command, "--device-serial", SERIAL], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = False
    try:
        if hold_catalog:
            killed = _kill_between_rename_and_commit(proc, store)
        else:
            killed = _kill_at(proc, store, want_objects, want_part_bytes)
    finally:
        if not killed and proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=30)
    assert killed, (
        f"the kill point '{moment}' was missed (exit {proc.returncode}, "
        f"{len(_object_files(store))} objects): {err.decode(errors='replace')}"
    )
    assert proc.returncode == -signal.SIGKILL
    killed_pid = proc.pid

    objects_after_kill = _object_files(store)
    if want_part_bytes:
        # The kill came during a copy: its partial file is left in tmp/, never in objects/.
        assert _part_files(store), "the kill was meant to land mid-copy, but no partial file is in tmp/"
    if want_objects == 0:
        assert objects_after_kill == [], "the kill was meant to come before the first rename"
    if hold_catalog:
        # Complete objects on disk, not one clip row: the kill fell between the rename and the commit.
        assert objects_after_kill
        assert _query(store, "SELECT COUNT(*) AS n FROM clips")[0]["n"] == 0
    else:
        # (a copy in its last microseconds may have been renamed between the look and the kill)
        assert want_objects <= len(objects_after_kill) <= want_objects + 1
    assert len(objects_after_kill) < CLIP_COUNT, "the kill came after every copy was done"
    _assert_store_consistent(store, source_blake3)
    running = _query(store, "SELECT id, status FROM ingests WHERE pid = ?", (killed_pid,))
    assert [r["status"] for r in running] == ["running"], "the killed run must have left its ingest row open"
    killed_ingest = running[0]["id"]

    again = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr

    assert _part_files(store) == [], "partial files of the killed run were not swept from tmp/"
    _assert_store_consistent(store, source_blake3)
    assert {p.name for p in _object_files(store)} == source_blake3
    clips = _query(store, "SELECT original_path, blake3, sha256, size, device_serial FROM clips")
    paths = [c["original_path"] for c in clips]
    assert sorted(paths) == sorted(hashes), "every recording must be catalogued exactly once"
    for c in clips:
        assert (c["blake3"], c["sha256"]) == hashes[c["original_path"]]
        assert c["size"] == (card / c["original_path"]).stat().st_size
        assert c["device_serial"] == SERIAL
    objects_rows = _query(store, "SELECT blake3, sha256 FROM objects")
    assert {(r["blake3"], r["sha256"]) for r in objects_rows} == set(hashes.values())

    status = _query(store, "SELECT status FROM ingests WHERE id = ?", (killed_ingest,))
    assert status[0]["status"] == "interrupted"
    marks = _query(
        store,
        "SELECT details FROM audit WHERE action = 'ingest.interrupted' AND subject = ?",
        (f"ingest:{killed_ingest}",),
    )
    assert len(marks) == 1 and str(killed_pid) in marks[0]["details"]
    last = _query(store, "SELECT status, failed FROM ingests ORDER BY id DESC LIMIT 1")[0]
    assert (last["status"], last["failed"]) == ("done", 0)

    verify = run_avlog(store, "verify")
    assert verify.returncode == 0, verify.stderr
    chain = run_avlog(store, "audit", "verify")
    assert chain.returncode == 0, chain.stderr


@pytest.mark.slow
def test_ctrl_c_mid_ingest_closes_the_run_as_interrupted(
    store: Path, big_card: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    """SIGINT (Ctrl-C) during a copy: the process ends with one line and exit 130, the clips committed so far
    stand, and the run is closed as ``interrupted`` at once, not left ``running`` for a later run to find."""
    card, hashes = big_card
    assert run_avlog(store, "device", "register", SERIAL, "--custodian", "李四", "--unit", "二中队").returncode == 0
    command = [sys.executable, "-m", "avlog", "--store", str(store), "ingest", "--from", str(card)]
    proc = subprocess.Popen([*command, "--device-serial", SERIAL], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if len(_object_files(store)) >= 1 and any(s >= 4 << 20 for s in _part_sizes(store)):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.001)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode(errors="replace")
    assert error_line(err.decode()).endswith("interrupted")
    (run,) = _query(store, "SELECT status, finished_at FROM ingests")
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    _assert_store_consistent(store, {b for b, _s in hashes.values()})
    assert run_avlog(store, "audit", "verify").returncode == 0
