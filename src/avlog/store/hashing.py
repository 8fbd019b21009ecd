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
from dataclasses import dataclass
from typing import BinaryIO

import blake3

CHUNK_SIZE = 8 << 20

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
    what is hashed is exactly what is written.
    """
    b3 = blake3.blake3()
    sha = hashlib.sha256()
    size = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        pending: Future[None] | None = None
        for view in iter_chunks(reader):
            if pending is not None:
                pending.result()  # the buffer before this one may now be refilled
            pending = pool.submit(sha.update, view)
            b3.update(view)
            if fd is not None:
                _write_all(fd, view)
            size += len(view)
            if progress is not None:
                progress(len(view))
        if pending is not None:
            pending.result()
    return Digests(blake3=b3.hexdigest(), sha256=sha.hexdigest(), size=size)


def blake3_of_file(path: str | os.PathLike[str], *, from_disk: bool = False) -> tuple[str, int]:
    """BLAKE3 hex digest and size of the file at ``path``.

    With ``from_disk`` the file's cached pages are dropped first (after the
    caller's fsync they are clean), so the bytes hashed are read back from the
    storage device rather than from memory.
    """
    b3 = blake3.blake3(max_threads=blake3.blake3.AUTO)
    size = 0
    with open(path, "rb", buffering=0) as f:
        if from_disk and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for view in iter_chunks(f):  # type: ignore[arg-type]
            b3.update(view)
            size += len(view)
    return b3.hexdigest(), size


def digests_of_file(path: str | os.PathLike[str], *, from_disk: bool = False) -> Digests:
    """Both digests of a file, read once (with ``from_disk``, past the page cache as above)."""
    with open(path, "rb", buffering=0) as f:
        if from_disk and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return copy_and_hash(f, None)  # type: ignore[arg-type]
