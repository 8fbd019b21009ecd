"""One pass over the bytes, several digests.

Each chunk is read once and fed to BLAKE3, SHA-256 and (when copying) the
writer. SHA-256 is the slowest of the three, so it runs on a worker thread
while the calling thread hashes BLAKE3 and writes: hashlib and blake3 release
the GIL on large buffers, so two cores work at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import blake3

CHUNK_SIZE = 8 << 20
_FADVISE = hasattr(os, "posix_fadvise")

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Digests:
    blake3: str
    sha256: str
    size: int


def iter_chunks(reader: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[memoryview]:
    """Yield the reader's bytes chunk by chunk.

    Readers with ``readinto`` fill two alternating buffers, so no chunk is
    allocated per read; a yielded view stays valid until the next-but-one chunk.
    """
    readinto = getattr(reader, "readinto", None)
    if readinto is None:
        while chunk := reader.read(chunk_size):
            yield memoryview(chunk)
        return
    buffers = [bytearray(chunk_size), bytearray(chunk_size)]
    views = [memoryview(b) for b in buffers]
    turn = 0
    while True:
        n = readinto(views[turn])
        if not n:
            return
        yield views[turn][:n]
        turn ^= 1


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_and_hash(reader: BinaryIO, fd: int | None, progress: ProgressFn | None = None) -> Digests:
    """Stream ``reader`` into file descriptor ``fd`` (or nowhere) and return both digests.

    The chunk handed to the SHA-256 thread is the one the writer just wrote, so
    what is hashed is exactly what is written. Each written chunk's writeback is
    started while the next one is hashed, so the final fsync finds little left.
    """
    b3 = blake3.blake3()
    sha = hashlib.sha256()
    size = _last = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        pending: Future[None] | None = None
        for view in iter_chunks(reader):
            if pending is not None:
                pending.result()  # the buffer before this one may now be refilled
            pending = pool.submit(sha.update, view)
            b3.update(view)
            if fd is not None:
                _write_all(fd, view)
                if size and _FADVISE:
                    # On Linux, DONTNEED on dirty pages starts their writeback without waiting for it.
                    os.posix_fadvise(fd, size - _last, _last, os.POSIX_FADV_DONTNEED)
                _last = len(view)
            size += len(view)
            if progress is not None:
                progress(len(view))
        if pending is not None:
            pending.result()
    return Digests(blake3=b3.hexdigest(), sha256=sha.hexdigest(), size=size)


@contextmanager
def _reading(path: str | os.PathLike[str], from_disk: bool) -> Iterator[BinaryIO]:
    """A store file opened for one sequential read; ``from_disk``: its cached pages dropped first (after the
    writer's fsync they are clean), so every byte comes back from the storage device."""
    with open(path, "rb", buffering=0) as f:
        if from_disk and _FADVISE:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        yield f


def _fill(fd: int, view: memoryview) -> int:
    """Read from ``fd`` into ``view`` until it is full or the file ends; how many bytes were read."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            break
        got += n
    return got


def blake3_of_file(path: str | os.PathLike[str], *, from_disk: bool = False) -> tuple[str, int]:
    """BLAKE3 hex digest and size (the bytes actually read) of the store file at ``path``.

    With ``from_disk`` its cached pages are dropped first (after the writer's
    fsync they are clean), so every byte comes back from the storage device:
    this is the ingest's proof that the disk holds the copy.

    Read, never mapped: an I/O error of the store's disk under a memory map is
    a SIGBUS that ends the process with no message and no clean-up, whereas a
    read returns it as ``OSError(EIO)`` for this one file. So that reading does
    not wait on hashing, a worker thread reads the next chunk while the calling
    thread hashes the one before (BLAKE3 on several threads; both release the GIL).
    """
    b3 = blake3.blake3(max_threads=blake3.blake3.AUTO)
    size = 0
    with _reading(path, from_disk) as f:
        fd = f.fileno()
        views = [memoryview(bytearray(CHUNK_SIZE)), memoryview(bytearray(CHUNK_SIZE))]
        # Leaving the pool waits for a read still in flight, so the descriptor is closed after it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="proof-read") as pool:
            turn = 0
            pending = pool.submit(_fill, fd, views[0])
            while n := pending.result():
                pending = pool.submit(_fill, fd, views[turn ^ 1])
                b3.update(views[turn][:n])
                size += n
                turn ^= 1
    return b3.hexdigest(), size


def digests_of_file(path: str | os.PathLike[str], *, from_disk: bool = False) -> Digests:
    """Both digests of a file, read once (``from_disk``: its cached pages dropped first).

    Read with ``readinto``, not a memory map: this is what ``verify`` uses, and
    a bad sector must come back as an error for that one object, not as a
    SIGBUS that ends the whole check.
    """
    with _reading(path, from_disk) as f:
        return copy_and_hash(f, None)
