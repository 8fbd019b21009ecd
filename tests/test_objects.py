"""The content-addressed object store: hashes, layout, read-only files, idempotence, clean-up, fixity."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import pytest

from avlog.samples import write_video
from avlog.store.hashing import CHUNK_SIZE, Digests, digests_of_file
from avlog.store.objects import ObjectStore, PutResult
from conftest import require_tool


def object_files(store: ObjectStore) -> list[Path]:
    return sorted(p for p in store.objects.rglob("*") if p.is_file())


def tmp_files(store: ObjectStore) -> list[Path]:
    return sorted(store.tmp.iterdir()) if store.tmp.exists() else []


def put_file(store: ObjectStore, path: Path, **kwargs: Any) -> PutResult:
    with open(path, "rb") as f:
        return store.put(f, **kwargs)


@pytest.fixture
def objstore(tmp_path: Path) -> ObjectStore:
    root = tmp_path / "store"
    (root / "objects").mkdir(parents=True)
    (root / "tmp").mkdir()
    return ObjectStore(root)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(
        tmp_path / "card" / "20260101_080000_0001.MP4", start=datetime(2026, 1, 1, tzinfo=UTC), seconds=1
    )


@pytest.fixture
def big_random(tmp_path: Path) -> Path:
    """Random bytes spanning several read chunks plus a ragged tail (exercises the double buffering)."""
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(2 * CHUNK_SIZE + 12345))
    return path


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("source_name", ["video", "big_random", "empty"])
def test_put_hashes_places_and_seals_the_object(
    objstore: ObjectStore, source_name: str, request: pytest.FixtureRequest
) -> None:
    source: Path = request.getfixturevalue(source_name)
    data = source.read_bytes()
    want_b3 = blake3.blake3(data).hexdigest()
    want_sha = hashlib.sha256(data).hexdigest()

    progressed: list[int] = []
    result = put_file(objstore, source, progress=progressed.append)

    assert result.created is True
    assert result.digests == Digests(blake3=want_b3, sha256=want_sha, size=len(data))
    assert sum(progressed) == len(data)
    dest = objstore.objects / want_b3[:2] / want_b3
    assert objstore.path(want_b3) == dest
    assert dest.is_file()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o444
    assert dest.read_bytes() == data
    assert object_files(objstore) == [dest]
    assert tmp_files(objstore) == []
    assert list(objstore.iter_hexdigests()) == [want_b3]


def test_digests_of_file_matches_independent_hashes(big_random: Path) -> None:
    data = big_random.read_bytes()
    assert digests_of_file(big_random) == Digests(
        blake3=blake3.blake3(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )


def test_same_content_twice_is_one_object(objstore: ObjectStore, video: Path, tmp_path: Path) -> None:
    first = put_file(objstore, video)
    copy = tmp_path / "other-name.MP4"
    copy.write_bytes(video.read_bytes())
    second = put_file(objstore, copy)

    assert first.created is True
    assert second.created is False
    assert second.digests == first.digests
    assert object_files(objstore) == [objstore.path(first.digests.blake3)]
    assert tmp_files(objstore) == []


def test_different_contents_are_different_objects(objstore: ObjectStore, video: Path, big_random: Path) -> None:
    a = put_file(objstore, video)
    b = put_file(objstore, big_random)
    assert a.digests.blake3 != b.digests.blake3
    assert object_files(objstore) == sorted([objstore.path(a.digests.blake3), objstore.path(b.digests.blake3)])


def test_validate_that_raises_leaves_nothing_behind(objstore: ObjectStore, video: Path) -> None:
    seen: list[Digests] = []

    class Refused(Exception):
        pass

    def validate(digests: Digests) -> None:
        seen.append(digests)
        raise Refused("source changed while it was read")

    with pytest.raises(Refused):
        put_file(objstore, video, validate=validate)

    data = video.read_bytes()
    assert seen == [Digests(blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data))]
    assert object_files(objstore) == []
    assert list(objstore.objects.iterdir()) == []
    assert tmp_files(objstore) == []


def test_validate_that_passes_installs(objstore: ObjectStore, video: Path) -> None:
    calls: list[Digests] = []
    result = put_file(objstore, video, validate=calls.append)
    assert calls == [result.digests]
    assert objstore.exists(result.digests.blake3)


def dead_pid() -> int:
    """The pid of a real process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    return proc.pid


def test_clean_tmp_removes_dead_writers_parts_and_keeps_live_ones(objstore: ObjectStore) -> None:
    dead = dead_pid()
    dead_part = objstore.tmp / f"{dead}-0123456789abcdef.part"
    live_part = objstore.tmp / f"{os.getpid()}-fedcba9876543210.part"
    dead_part.write_bytes(b"half a clip")
    live_part.write_bytes(b"a clip being written now")

    removed = objstore.clean_tmp()

    assert removed == 1
    assert not dead_part.exists()
    assert live_part.exists()
    assert live_part.read_bytes() == b"a clip being written now"
    # Nothing was promoted to an object.
    assert object_files(objstore) == []


def test_check_reports_sound_mismatch_and_missing(objstore: ObjectStore, video: Path, big_random: Path) -> None:
    hexdigest = put_file(objstore, video).digests.blake3
    other = put_file(objstore, big_random).digests.blake3
    path = objstore.path(hexdigest)
    size = path.stat().st_size

    assert objstore.check(hexdigest) is None
    assert objstore.check(hexdigest, size) is None
    assert objstore.check(hexdigest, size + 1) == "mismatch"

    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    os.chmod(path, 0o444)
    assert path.stat().st_size == size
    assert objstore.check(hexdigest) == "mismatch"
    assert objstore.check(other) is None  # the neighbour is untouched

    path.unlink()
    assert objstore.check(hexdigest) == "missing"
    assert objstore.check(other) is None


def test_put_repairs_an_object_of_the_wrong_size(objstore: ObjectStore, video: Path) -> None:
    hexdigest = put_file(objstore, video).digests.blake3
    path = objstore.path(hexdigest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.truncate(10)
    os.chmod(path, 0o444)
    assert objstore.check(hexdigest) == "mismatch"

    again = put_file(objstore, video)
    assert again.created is True
    assert objstore.check(hexdigest) is None
    assert path.read_bytes() == video.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_b3sum_and_sha256sum_agree_with_the_object_name(objstore: ObjectStore, video: Path) -> None:
    b3sum = require_tool("b3sum")
    sha256sum = require_tool("sha256sum")
    digests = put_file(objstore, video).digests
    path = objstore.path(digests.blake3)

    out = subprocess.run([b3sum, str(path)], check=True, capture_output=True, text=True).stdout
    printed_hex, printed_name = out.split(maxsplit=1)
    assert printed_hex == digests.blake3 == path.name
    assert printed_name.strip() == str(path)

    out = subprocess.run([sha256sum, str(path)], check=True, capture_output=True, text=True).stdout
    assert out.split()[0] == digests.sha256
