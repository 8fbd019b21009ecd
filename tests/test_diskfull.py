"""A store on a small real filesystem that runs out of room: one clear line, a consistent store.

The store lives on an ext4 image mounted through a loop device. avlog keeps
``[store] reserve_mb`` free for its catalog (SQLite's WAL index is a memory map,
and a map on a disk with no room left ends the process with SIGBUS): an ingest
does not start below the reserve and stops before the file that would cross
it. When something else fills the disk in the middle of a copy, the real
ENOSPC still fails that clip cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avlog.context import init_store
from conftest import (
    catalog_rows,
    error_line,
    file_digests,
    fill_fs,
    loop_ext4,
    make_fat32_image,
    run_avlog,
    set_store_reserve,
)

SERIAL = "BC-FULL-1"
MB = 1 << 20
RESERVE_MB = 16


def random_card(folder: Path, sizes: list[int]) -> dict[str, str]:
    """Incompressible recordings of ``sizes`` bytes, in card order; their BLAKE3, computed here."""
    digests = {}
    for n, size in enumerate(sizes, 1):
        path = folder / "DCIM" / "100MEDIA" / f"REC{n:04d}.MP4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        digests[f"DCIM/100MEDIA/{path.name}"] = file_digests(path)[0]
    return digests


def store_on(fs: Path) -> Path:
    store = fs / "store"
    init_store(store, actor="tester")
    set_store_reserve(store, RESERVE_MB)
    reg = run_avlog(store, "device", "register", SERIAL, "--custodian", "王五", "--unit", "三中队")
    assert reg.returncode == 0, reg.stderr
    return store


def object_names(store: Path) -> set[str]:
    return {p.name for p in (store / "objects").rglob("*") if p.is_file()}


def assert_consistent(store: Path, stored: dict[str, str]) -> None:
    """Exactly ``stored`` (card path -> BLAKE3) is in the store, complete; nothing partial is left."""
    assert list((store / "tmp").glob("*.part")) == [], "partial copies were left in tmp/"
    assert object_names(store) == set(stored.values())
    for obj in (store / "objects").rglob("*"):
        if obj.is_file():
            assert file_digests(obj)[0] == obj.name, f"incomplete object {obj}"
    rows = catalog_rows(store, "SELECT original_path, blake3 FROM clips")
    assert {r["original_path"]: r["blake3"] for r in rows} == stored
    for check in (("verify", "--all"), ("audit", "verify")):
        result = run_avlog(store, *check)
        assert result.returncode == 0, result.stderr


@pytest.mark.root
def test_an_ingest_that_would_cross_the_reserve_stops_at_that_file(tmp_path: Path) -> None:
    with loop_ext4(tmp_path / "fs.img", tmp_path / "mnt", 64) as fs:
        store = store_on(fs)
        # Room for two clips of 6 MB above the reserve, with 3 MB to spare either way.
        filler = fill_fs(fs, leave=(RESERVE_MB + 15) * MB)
        free = shutil.disk_usage(store).free
        assert (RESERVE_MB + 14) * MB < free <= (RESERVE_MB + 15) * MB, free
        source = random_card(tmp_path / "card", [6 * MB] * 5)
        card = make_fat32_image(tmp_path / "card", tmp_path / "card.img", size_mb=48)  # read file by file

        result = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL, "--json")
        assert result.returncode == 4, result.stderr
        doc = json.loads(result.stdout)
        paths = list(source)
        assert [c["status"] for c in doc["clips"]] == ["stored", "stored", "failed", "failed", "failed"]
        assert [c["original_path"] for c in doc["clips"]] == paths
        third = doc["clips"][2]["error"]
        assert "the store's disk is almost full" in third and "6 MB more" in third, third
        assert f"reserve of {RESERVE_MB} MB" in third and "[store] reserve_mb" in third, third
        assert {c["error"] for c in doc["clips"][3:]} == {
            "not ingested: the store's disk is down to the reserve kept for the catalog"
        }
        line = error_line(result.stderr)
        assert "3 of 5 files failed" in line and all(p in line for p in paths[2:]), line
        assert shutil.disk_usage(store).free >= RESERVE_MB * MB, "the ingest ate into the catalog's reserve"

        assert_consistent(store, {p: source[p] for p in paths[:2]})
        (status,) = catalog_rows(store, "SELECT status FROM ingests")
        assert status["status"] == "partial"
        failed = catalog_rows(store, "SELECT details FROM audit WHERE action = 'ingest.failed'")
        assert [json.loads(f["details"])["path"] for f in failed] == [paths[2]]

        filler.unlink()
        again = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL, "--json")
        assert again.returncode == 0, again.stderr
        assert [c["status"] for c in json.loads(again.stdout)["clips"]] == ["duplicate"] * 2 + ["stored"] * 3
        assert_consistent(store, source)


@pytest.mark.root
def test_files_copied_side_by_side_count_against_the_reserve_together(tmp_path: Path) -> None:
    """A folder card is copied two files at a time: the second may not start while the first, still being
    copied, would leave too little room for both."""
    with loop_ext4(tmp_path / "fs.img", tmp_path / "mnt", 48) as fs:
        store = store_on(fs)
        fill_fs(fs, leave=(RESERVE_MB + 9) * MB)  # room for one clip of 6 MB above the reserve, not two
        source = random_card(tmp_path / "card", [6 * MB] * 3)

        result = run_avlog(store, "ingest", "--from", str(tmp_path / "card"), "--device-serial", SERIAL, "--json")
        assert result.returncode == 4, result.stderr
        clips = json.loads(result.stdout)["clips"]
        assert [c["status"] for c in clips] == ["stored", "failed", "failed"]
        assert "12 MB more would leave less than the reserve" in clips[1]["error"], clips[1]["error"]
        assert shutil.disk_usage(store).free >= RESERVE_MB * MB, "the ingest ate into the catalog's reserve"
        first = list(source)[0]
        assert_consistent(store, {first: source[first]})


@pytest.mark.root
def test_an_ingest_into_a_store_below_its_reserve_does_not_start(small_fs: Path, tmp_path: Path) -> None:
    store = store_on(small_fs)
    audit_before = catalog_rows(store, "SELECT COUNT(*) AS n FROM audit")[0]["n"]
    filler = fill_fs(small_fs, leave=10 * MB)  # the two clips would fit; the catalog's reserve would not
    source = random_card(tmp_path / "card", [MB, MB])

    for extra in ((), ("--json",)):
        refused = run_avlog(store, "ingest", "--from", str(tmp_path / "card"), "--device-serial", SERIAL, *extra)
        assert refused.returncode == 1, refused.stderr
        line = error_line(refused.stderr)
        assert "the store's disk is almost full" in line, line
        assert f"less than the reserve of {RESERVE_MB} MB" in line and "[store] reserve_mb" in line, line
        if extra:
            assert json.loads(refused.stdout) == {"ok": False, "error": line.removeprefix("avlog: "), "exit_code": 1}
    assert catalog_rows(store, "SELECT COUNT(*) AS n FROM ingests")[0]["n"] == 0, "a run was begun"
    assert catalog_rows(store, "SELECT COUNT(*) AS n FROM audit")[0]["n"] == audit_before
    assert_consistent(store, {})

    filler.unlink()
    again = run_avlog(store, "ingest", "--from", str(tmp_path / "card"), "--device-serial", SERIAL, "--json")
    assert again.returncode == 0, again.stderr
    assert_consistent(store, source)


#: Runs avlog's CLI; just before the second file's copy begins, another writer takes every free block.
#: argv: FILLER then avlog's arguments.
FILLED_MID_INGEST = r"""
import errno, os, sys

import avlog.store.objects as objects
from avlog.cli import main

filler = sys.argv[1]
real_copy = objects.copy_and_hash
calls = []


def fill():
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, bytes(size))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_on_a_disk_that_fills(reader, fd, progress=None):
    calls.append(fd)
    if len(calls) == 2:
        fill()
    return real_copy(reader, fd, progress)


objects.copy_and_hash = copy_on_a_disk_that_fills
sys.argv = ["avlog", *sys.argv[2:]]
main()
"""


@pytest.mark.root
def test_a_disk_filled_by_another_writer_mid_ingest_fails_cleanly(tmp_path: Path) -> None:
    with loop_ext4(tmp_path / "fs.img", tmp_path / "mnt", 48) as fs:
        store = store_on(fs)
        source = random_card(tmp_path / "card", [2 * MB] * 3)
        card = make_fat32_image(tmp_path / "card", tmp_path / "card.img", size_mb=40)
        filler = fs / "filler"

        done = subprocess.run(
            [sys.executable, "-c", FILLED_MID_INGEST, str(filler), "--store", str(store), "ingest"]
            + ["--from", str(card), "--device-serial", SERIAL, "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "AVLOG_USER": "tester"},
            timeout=300,
        )
        assert done.returncode == 4, done.stderr
        assert shutil.disk_usage(fs).free == 0, "the other writer did not fill the disk"
        line = error_line(done.stderr, report_lines=1)
        assert "disk is full" in line, line
        doc = json.loads(done.stdout)
        assert [c["status"] for c in doc["clips"]] == ["stored", "failed", "failed"]
        assert "disk is full" in doc["clips"][1]["error"] and doc["aborted"]
        first = list(source)[0]

        filler.unlink()
        assert_consistent(store, {first: source[first]})
        again = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL, "--json")
        assert again.returncode == 0, again.stderr
        assert_consistent(store, source)
