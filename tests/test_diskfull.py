"""A store on a small real filesystem that fills up mid-ingest: one clear line, a consistent store.

The store lives on a 24 MB ext4 image mounted through a loop device; the card
holds five incompressible real clips of about 8 MB each, more than the
filesystem can take.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avlog.context import init_store
from avlog.samples import write_video
from conftest import error_line, file_digests, run_avlog

SERIAL = "BC-FULL-1"


def file_blake3(path: Path) -> str:
    return file_digests(path)[0]


@pytest.mark.root
def test_disk_full_mid_ingest_fails_cleanly_and_keeps_store_consistent(small_fs: Path, tmp_path: Path) -> None:
    store = small_fs / "store"
    init_store(store, actor="tester")
    reg = run_avlog(store, "device", "register", SERIAL, "--custodian", "王五", "--unit", "三中队")
    assert reg.returncode == 0, reg.stderr

    card = tmp_path / "card"
    start = datetime.now(UTC) - timedelta(hours=1)
    source: dict[str, str] = {}
    for n in range(5):
        moment = start + timedelta(seconds=2 * n)
        rel = f"DCIM/100MEDIA/{moment.strftime('%Y%m%d_%H%M%S')}_{n + 1:04d}.MP4"
        path = write_video(card / rel, start=moment, seconds=1.5, width=640, height=480, noise=True)
        source[rel] = file_blake3(path)
    total = sum((card / rel).stat().st_size for rel in source)
    free = shutil.disk_usage(store).free
    assert total > free + 8_000_000, f"the card ({total} B) must not fit in the store's {free} free bytes"
    assert min((card / rel).stat().st_size for rel in source) < free, "at least one clip must fit"

    result = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL, "--json")
    assert result.returncode in (1, 4), result.stderr
    line = error_line(result.stderr, report_lines=1)
    assert "disk is full" in line or "disk full" in line, line
    other = [x for x in result.stderr.splitlines() if x.strip()][:-1]
    assert all("disk" in x for x in other), result.stderr

    doc = json.loads(result.stdout)
    statuses = {c["original_path"]: c["status"] for c in doc["clips"]}
    assert set(statuses) == set(source)
    failed = [c for c in doc["clips"] if c["status"] == "failed"]
    assert failed, "the card does not fit, so some clips must have failed"
    assert all(c["error"] for c in failed)
    assert doc["aborted"], "a full disk stops the run"
    assert (result.returncode == 4) == (doc["stored"] > 0)
    for c in doc["clips"]:
        if c["status"] == "stored":
            assert c["blake3"] == source[c["original_path"]]

    assert list((store / "tmp").glob("*.part")) == [], "partial copies were left in tmp/"
    objects = sorted(p for p in (store / "objects").rglob("*") if p.is_file())
    for obj in objects:
        assert file_blake3(obj) == obj.name, f"incomplete object {obj}"
        assert obj.name in source.values()
    conn = sqlite3.connect(store / "catalog.sqlite")
    try:
        rows = conn.execute("SELECT original_path, blake3 FROM clips").fetchall()
    finally:
        conn.close()
    for rel, digest in rows:
        assert (store / "objects" / digest[:2] / digest).is_file(), f"clip {rel} has no object"
        assert digest == source[rel]
    assert {rel for rel, _d in rows} == {c["original_path"] for c in doc["clips"] if c["status"] == "stored"}

    verify = run_avlog(store, "verify")
    assert verify.returncode == 0, verify.stderr
    chain = run_avlog(store, "audit", "verify")
    assert chain.returncode == 0, chain.stderr


def _fill(folder: Path) -> Path:
    """Take every free block of the filesystem (as root, the reserved ones too)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()
    return filler


def _mentions_full_disk(line: str) -> bool:
    return any(words in line.lower() for words in ("disk is full", "disk full", "no space left"))


@pytest.mark.root
def test_ingest_into_a_store_whose_disk_is_already_full_says_so(small_fs: Path, tmp_path: Path) -> None:
    store = small_fs / "store"
    init_store(store, actor="tester")
    reg = run_avlog(store, "device", "register", SERIAL, "--custodian", "王五", "--unit", "三中队")
    assert reg.returncode == 0, reg.stderr
    card = tmp_path / "card"
    start = datetime.now(UTC) - timedelta(hours=1)
    source: dict[str, str] = {}
    for n in range(2):
        moment = start + timedelta(seconds=3 * n)
        rel = f"DCIM/100MEDIA/{moment.strftime('%Y%m%d_%H%M%S')}_{n + 1:04d}.MP4"
        source[rel] = file_blake3(write_video(card / rel, start=moment, seconds=2))
    filler = _fill(small_fs)
    assert shutil.disk_usage(store).free < 4096

    full = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL)
    assert full.returncode == 1, full.stderr
    line = error_line(full.stderr, report_lines=1)
    assert _mentions_full_disk(line), f"the line does not say the disk is full: {line}"
    assert not any(p.is_file() for p in (store / "objects").rglob("*")), "an object entered a full store"
    assert list((store / "tmp").glob("*.part")) == []

    filler.unlink()
    again = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL, "--json")
    assert again.returncode == 0, again.stderr
    assert {c["original_path"]: c["blake3"] for c in json.loads(again.stdout)["clips"]} == source
    assert {p.name for p in (store / "objects").rglob("*") if p.is_file()} == set(source.values())
    verify = run_avlog(store, "verify")
    assert verify.returncode == 0, verify.stderr
    chain = run_avlog(store, "audit", "verify")
    assert chain.returncode == 0, chain.stderr
