"""An I/O error of the store's own disk while an ingest proves its copy: that clip fails, in one line.

The store sits on ext4 in a loop device. Between the copy's fsync and its read-back proof, a hook in
the avlog child process cuts the loop device's backing file just before the copy's first block: the
kernel then answers every read of those blocks with EIO, as a disk with a bad region does (this kernel
has no device-mapper, hence no dm ``error`` target). Read through a memory map, such a block is a
SIGBUS that kills the process with no message; avlog reads, so only that clip fails, nothing of it
stays in the store and the ingest goes on. The cut bytes are put back right after that one proof, so
the rest of the run and the checks after it meet a sound disk.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import pytest

import avlog.store.hashing as hashing
from avlog.context import init_store
from avlog.samples import write_video
from avlog.store.hashing import CHUNK_SIZE, blake3_of_file
from avlog.store.objects import CopyNotProven, ObjectStore
from conftest import (
    catalog_rows,
    error_line,
    file_digests,
    loop_ext4,
    make_fat32_image,
    run_avlog,
    set_store_reserve,
)

SERIAL = "BC-EIO-1"

#: Runs avlog's CLI with the first proof meeting a bad region of the store's disk.
#: argv: IMAGE (the loop device's backing file) LOG (where the hook says what it cut) then avlog's arguments.
FAILING_PROOF = r"""
import fcntl, os, struct, sys

import avlog.store.objects as objects
from avlog.cli import main

image, log = sys.argv[1], sys.argv[2]
real_proof = objects.blake3_of_file
done = []


def first_byte_on_device(path):
    # FS_IOC_FIEMAP with FIEMAP_FLAG_SYNC: where the file's data lies on the device.
    count = 256
    buf = bytearray(struct.pack("=QQIIII", 0, 2**64 - 1, 1, 0, count, 0) + bytes(56 * count))
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, 0xC020660B, buf)
    finally:
        os.close(fd)
    (mapped,) = struct.unpack_from("=I", buf, 20)
    assert 0 < mapped < count, mapped
    return min(struct.unpack_from("=QQ", buf, 32 + 56 * i)[1] for i in range(mapped))


def proof_on_a_failing_disk(path, **kwargs):
    if done:
        return real_proof(path, **kwargs)
    os.sync()  # nothing of the filesystem is waiting to be written into the region while it is cut
    start = first_byte_on_device(path)
    with open(image, "r+b") as f:
        f.seek(start)
        tail = f.read()
        f.truncate(start)
        os.fsync(f.fileno())
    done.append(start)
    try:
        return real_proof(path, **kwargs)
    finally:
        with open(image, "r+b") as f:
            f.seek(start)
            f.write(tail)
            os.fsync(f.fileno())
        with open(log, "a") as f:
            f.write(f"cut {len(tail)} bytes at {start} during the proof of {path}\n")


objects.blake3_of_file = proof_on_a_failing_disk
sys.argv = ["avlog", *sys.argv[3:]]
main()
"""


def noise_card(tmp_path: Path, n: int) -> tuple[Path, dict[str, str]]:
    """A real FAT32 card image of ``n`` noise clips (read one file at a time, in card order); their BLAKE3."""
    card = tmp_path / "card"
    start = datetime.now(UTC) - timedelta(hours=1)
    digests = {}
    for i in range(n):
        moment = start + timedelta(seconds=3 * i)
        rel = f"DCIM/100MEDIA/{moment.strftime('%Y%m%d_%H%M%S')}_{i + 1:04d}.MP4"
        digests[rel] = file_digests(write_video(card / rel, start=moment, seconds=1.5, noise=True))[0]
    return make_fat32_image(card, tmp_path / "card.img", size_mb=40), digests


@pytest.mark.root
@pytest.mark.slow
def test_an_io_error_of_the_store_disk_during_the_proof_fails_that_clip_alone(tmp_path: Path) -> None:
    image = tmp_path / "store-fs.img"
    with loop_ext4(image, tmp_path / "mnt", 64) as fs:
        store = fs / "store"
        init_store(store, actor="tester")
        set_store_reserve(store, 16)
        reg = run_avlog(store, "device", "register", SERIAL, "--custodian", "王五", "--unit", "三中队")
        assert reg.returncode == 0, reg.stderr
        card, source = noise_card(tmp_path, 2)
        log = tmp_path / "cut.log"

        done = subprocess.run(
            [sys.executable, "-c", FAILING_PROOF, str(image), str(log), "--store", str(store), "ingest"]
            + ["--from", str(card), "--device-serial", SERIAL, "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "AVLOG_USER": "tester", "LC_ALL": "C.UTF-8"},
            timeout=300,
        )
        assert done.returncode >= 0, f"killed by {signal.Signals(-done.returncode).name}:\n{done.stderr}"
        assert log.read_text().startswith("cut "), "the store's disk never failed"
        assert done.returncode == 4, done.stderr
        doc = json.loads(done.stdout)
        first, second = doc["clips"]
        line = error_line(done.stderr, report_lines=1)
        assert first["original_path"] in line and second["original_path"] not in line, line
        assert "could not be read back from the store's disk" in line, line
        assert (first["status"], second["status"]) == ("failed", "stored")
        assert "could not be read back from the store's disk" in first["error"]
        assert second["blake3"] == source[second["original_path"]]

        # Nothing of the failed copy is left: no object, no partial file, no clip row.
        assert {p.name for p in (store / "objects").rglob("*") if p.is_file()} == {second["blake3"]}
        assert list((store / "tmp").glob("*.part")) == []
        rows = catalog_rows(store, "SELECT original_path, blake3 FROM clips")
        assert {(r["original_path"], r["blake3"]) for r in rows} == {(second["original_path"], second["blake3"])}
        failures = catalog_rows(store, "SELECT details FROM audit WHERE action = 'ingest.failed'")
        assert [json.loads(f["details"])["path"] for f in failures] == [first["original_path"]]
        for check in (("verify", "--all"), ("audit", "verify")):
            result = run_avlog(store, *check)
            assert result.returncode == 0, result.stderr

        # The disk is sound again: the next ingest proves and stores the clip that failed.
        again = run_avlog(store, "ingest", "--from", str(card), "--device-serial", SERIAL, "--json")
        assert again.returncode == 0, again.stderr
        assert {c["original_path"]: c["blake3"] for c in json.loads(again.stdout)["clips"]} == source
        assert {p.name for p in (store / "objects").rglob("*") if p.is_file()} == set(source.values())


# -- the same contract in the process, where a real bad disk is not at hand ---------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 4097])
def test_the_proof_reads_every_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "object"
    path.write_bytes(data)
    for from_disk in (False, True):
        assert blake3_of_file(path, from_disk=from_disk) == (blake3.blake3(data).hexdigest(), size)


def test_a_read_error_during_the_proof_fails_the_put_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = ObjectStore(tmp_path / "store")
    data = os.urandom(CHUNK_SIZE + 12345)
    real_readv = os.readv
    reads = []

    def bad_second_chunk(fd: int, buffers: list[memoryview]) -> int:
        reads.append(fd)
        if len(reads) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_readv(fd, buffers)

    monkeypatch.setattr(hashing.os, "readv", bad_second_chunk)
    with pytest.raises(CopyNotProven, match="could not be read back from the store's disk"):
        objects.put(io.BytesIO(data))
    assert len(reads) == 2, "the proof did not read through os.readv"
    assert list(objects.tmp.iterdir()) == []
    assert list(objects.iter_hexdigests()) == []

    monkeypatch.setattr(hashing.os, "readv", real_readv)
    result = objects.put(io.BytesIO(data))
    assert result.created and result.digests.blake3 == blake3.blake3(data).hexdigest()
