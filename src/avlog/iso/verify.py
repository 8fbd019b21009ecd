"""Reading an image or a disc back: which files it holds, where, and what their bytes hash to.

The image is opened with pycdlib from the medium itself. Its files are listed through the UDF tree and
the ISO 9660 tree (the real names from Rock Ridge); both must agree on every file's extents. The
extents come from the directory records (ISO 9660, every extent of a multi-extent file) and the UDF
allocation descriptors, never through pycdlib's Rock Ridge path lookup, which sees only the last extent
of a file of 4 GiB or more.

Then the medium is read once, in order, from its first to its last sector: each chunk goes to the image's
own SHA-256 (in a second thread) and BLAKE3, and the part of it that belongs to a file to that file's
BLAKE3. One sequential pass is as fast as a drive reads, which matters for a 100 GB disc.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import pycdlib
import pycdlib.pycdlibexception

from avlog.errors import IntegrityError, SourceError
from avlog.i18n import _
from avlog.iso.media import SECTOR

CHUNK = 8 << 20
#: ``start(volume_id, phase, total_bytes)`` returns the function that advances that phase by n bytes.
Progress = Callable[[str, str, int], Callable[[int], None]]


@dataclass
class Reading:
    """What one read of a medium found."""

    source: str
    is_device: bool
    volume_id: str
    image_bytes: int  # the image's size from its volume descriptor
    volume_set_id: str = ""  # avlog writes AVLOG_<store id> here
    sha256: str = ""
    blake3: str = ""
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # real path -> (size, BLAKE3)
    problems: list[str] = field(default_factory=list)  # structural problems (views that disagree, a short read)
    contents: dict[str, bytes] = field(default_factory=dict)  # small tag files, read whole


@dataclass(frozen=True)
class _Extent:
    start: int
    length: int
    path: str


def is_optical(path: Path) -> bool:
    """A CD/DVD/BD drive: SCSI peripheral type 5, as the kernel reports it in sysfs."""
    try:
        if not stat.S_ISBLK(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    name = path.resolve().name
    try:
        return (Path("/sys/class/block") / name / "device" / "type").read_text().strip() == "5"
    except OSError:
        return name.startswith("sr")


def _open(path: Path) -> tuple[int, bool, int]:
    if path.is_dir():
        raise SourceError(_("{path} is a folder, not an image or a drive").format(path=path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise SourceError(_("{path} does not exist").format(path=path)) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOMEDIUM, errno.ENXIO):  # an empty drive, a loop device with nothing attached
            raise SourceError(_("no disc in {path}").format(path=path)) from exc
        raise SourceError(_("cannot open {path}: {reason}").format(path=path, reason=exc.strerror)) from exc
    mode = os.fstat(fd).st_mode
    is_device = stat.S_ISBLK(mode)
    size = os.lseek(fd, 0, os.SEEK_END) if is_device or stat.S_ISREG(mode) else -1
    return fd, is_device, size


Extents = dict[str, list[tuple[int, int]]]


def _walk(iso: Any) -> tuple[Extents, Extents, Extents, list[str]]:
    """Every file's extents as (byte offset, length), by real path, through the UDF, ISO 9660 and Joliet trees."""
    udf: Extents = {}
    iso9660: Extents = {}
    joliet: Extents = {}
    problems: list[str] = []
    if iso.has_udf():
        for root, _dirs, files in iso.walk(udf_path="/"):
            for name in files:
                path = f"{root.rstrip('/')}/{name}".lstrip("/")
                udf[path] = list(iso.get_file_byte_extents(udf_path="/" + path))
    else:
        problems.append(_("the image has no UDF file system"))
    for root, _dirs, files in iso.walk(iso_path="/"):
        real_dir = _real_dir(iso, root) if files else ""
        for name in files:
            record = iso.get_record(iso_path=f"{root.rstrip('/')}/{name}")
            rr = record.rock_ridge
            real_name = rr.name().decode("utf-8") if rr is not None and rr.name() else name.split(";")[0]
            path = f"{real_dir}/{real_name}".lstrip("/")
            extents = []
            while record is not None:
                extents.append((record.extent_location() * SECTOR, record.data_length))
                record = getattr(record, "data_continuation", None)
            iso9660[path] = extents
    if iso.has_joliet():
        for root, _dirs, files in iso.walk(joliet_path="/"):
            for name in files:
                record = iso.get_record(joliet_path=f"{root.rstrip('/')}/{name}")
                extents = []
                while record is not None:
                    extents.append((record.extent_location() * SECTOR, record.data_length))
                    record = getattr(record, "data_continuation", None)
                joliet[f"{root.rstrip('/')}/{name.split(';')[0]}".lstrip("/")] = extents
    else:
        problems.append(_("the image has no Joliet tree"))
    return udf, iso9660, joliet, problems


def _real_dir(iso: Any, iso_dir: str) -> str:
    """The Rock Ridge path of an ISO 9660 directory."""
    parts = [p for p in iso_dir.split("/") if p]
    real = []
    for depth in range(len(parts)):
        record = iso.get_record(iso_path="/" + "/".join(parts[: depth + 1]))
        rr = record.rock_ridge
        real.append(rr.name().decode("utf-8") if rr is not None and rr.name() else parts[depth])
    return "/".join(real)


def _merge(extents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent runs joined, empty ones dropped: the same bytes described the same way in both trees."""
    merged: list[tuple[int, int]] = []
    for start, length in extents:
        if not length:
            continue
        if merged and merged[-1][0] + merged[-1][1] == start:
            merged[-1] = (merged[-1][0], merged[-1][1] + length)
        else:
            merged.append((start, length))
    return merged


def read_medium(path: Path, *, small_files: tuple[str, ...] = (), progress: Progress | None = None) -> Reading:
    """Open ``path`` (an image file or a disc drive), list its files and hash everything in one pass.

    ``small_files`` (real paths) are returned whole in :attr:`Reading.contents` as well.
    """
    fd, is_device, size = _open(path)
    try:
        with _pycdlib_on(fd, path) as iso:
            try:
                volume_id = iso.pvd.volume_identifier.decode("ascii", "replace").strip()
                volume_set_id = iso.pvd.volume_set_identifier.decode("ascii", "replace").strip()
                image_bytes = int(iso.pvd.space_size) * SECTOR
                udf, iso9660, joliet, problems = _walk(iso)
            except (pycdlib.pycdlibexception.PyCdlibException, OSError, ValueError, IndexError) as exc:
                raise IntegrityError(
                    _("cannot read the directories of {path}: {reason}").format(path=path, reason=exc)
                ) from exc
        reading = Reading(str(path), is_device, volume_id, image_bytes, volume_set_id, problems=problems)
        for other, view in ((iso9660, "ISO 9660"), (joliet, "Joliet")):
            if not other:
                continue
            for name in sorted(set(udf) ^ set(other)):
                reading.problems.append(
                    _("{name} is in only one of the UDF and {view} trees").format(name=name, view=view)
                )
            for name in sorted(set(udf) & set(other)):
                if _merge(udf[name]) != _merge(other[name]):
                    reading.problems.append(
                        _("the UDF and {view} trees disagree about {name}").format(name=name, view=view)
                    )
        if 0 <= size < image_bytes:
            reading.problems.append(
                _("{path} is {size} bytes, shorter than the image it holds ({image} bytes)").format(
                    path=path, size=size, image=image_bytes
                )
            )
        files = udf or iso9660
        advance = progress(volume_id, "verify", image_bytes) if progress is not None else None
        _hash_pass(fd, reading, files, set(small_files), advance)
        return reading
    finally:
        os.close(fd)


#: A tag file read on its own (catalog.json of a full BD holds a few MB).
MAX_TAG_BYTES = 64 << 20


@contextlib.contextmanager
def _pycdlib_on(fd: int, path: Path) -> Iterator[Any]:
    """pycdlib opened on the medium ``fd`` (read from the medium itself), closed afterwards; an unreadable
    medium or one that is no ISO 9660 image is an :class:`IntegrityError`."""
    with os.fdopen(os.dup(fd), "rb", buffering=0) as fp:
        iso = pycdlib.PyCdlib()
        try:
            iso.open_fp(fp)
        except OSError as exc:
            raise IntegrityError(
                _("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)
            ) from exc
        except (pycdlib.pycdlibexception.PyCdlibException, ValueError, IndexError, struct.error) as exc:
            raise IntegrityError(
                _("{path} is not a readable ISO 9660 image: {reason}").format(path=path, reason=exc)
            ) from exc
        try:
            yield iso
        finally:
            with contextlib.suppress(Exception):
                iso.close()


def read_tags(path: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Only some small files of an image or disc (by their real path), found through its UDF tree, without
    reading the rest of the medium; a file that is absent or too large is left out."""
    fd, _is_device, _size = _open(path)
    found: dict[str, bytes] = {}
    try:
        with _pycdlib_on(fd, path) as iso:
            for name in names:
                try:
                    extents = list(iso.get_file_byte_extents(udf_path="/" + name))
                except pycdlib.pycdlibexception.PyCdlibException:
                    continue
                if sum(length for _start, length in extents) > MAX_TAG_BYTES:
                    continue
                try:
                    found[name] = b"".join(os.pread(fd, length, start) for start, length in extents)
                except OSError as exc:
                    raise IntegrityError(
                        _("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)
                    ) from exc
    finally:
        os.close(fd)
    return found


def _hash_pass(
    fd: int,
    reading: Reading,
    files: dict[str, list[tuple[int, int]]],
    small: set[str],
    progress: Callable[[int], None] | None,
) -> None:
    extents = sorted(
        (_Extent(start, length, name) for name, runs in files.items() for start, length in _merge(runs)),
        key=lambda e: e.start,
    )
    hashers = {name: blake3.blake3() for name in files}
    sizes = {name: sum(length for _s, length in runs) for name, runs in files.items()}
    kept: dict[str, bytearray] = {name: bytearray() for name in small if name in files}
    image_b3 = blake3.blake3()
    image_sha = hashlib.sha256()
    # A few buffers go round: read into one, hash it here (BLAKE3), hand it to the SHA-256 thread, which
    # gives it back. No fresh 8 MiB allocation per chunk.
    free: queue.Queue[bytearray] = queue.Queue()
    for _n in range(4):
        free.put(bytearray(CHUNK))
    sha_queue: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()

    def sha_worker() -> None:
        while (item := sha_queue.get()) is not None:
            buffer, length = item
            image_sha.update(memoryview(buffer)[:length])
            free.put(buffer)

    worker = threading.Thread(target=sha_worker, name="avlog-image-sha256", daemon=True)
    worker.start()
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, reading.image_bytes, os.POSIX_FADV_SEQUENTIAL)
    offset = 0
    first = 0
    try:
        while offset < reading.image_bytes:
            want = min(CHUNK, reading.image_bytes - offset)
            buffer = free.get()
            view = memoryview(buffer)[:want]
            got = 0
            while got < want:
                try:
                    n = os.preadv(fd, [view[got:]], offset + got)
                except OSError as exc:
                    reading.problems.append(
                        _("read error at byte {at}: {reason}").format(at=offset + got, reason=exc.strerror)
                    )
                    n = 0
                if n == 0:
                    break
                got += n
            if got < want:
                reading.problems.append(
                    _("the medium ends at byte {at}, before the end of its image").format(at=offset + got)
                )
                view = view[:got]
            image_b3.update(view)
            end = offset + len(view)
            # Extents that overlap [offset, end): from the first one not yet finished (extents sorted by start;
            # two names may share one extent on a disc made elsewhere, so never skip by start alone).
            while first < len(extents) and extents[first].start + extents[first].length <= offset:
                first += 1
            i = first
            while i < len(extents) and extents[i].start < end:
                e = extents[i]
                lo, hi = max(e.start, offset), min(e.start + e.length, end)
                if lo < hi:
                    part = view[lo - offset : hi - offset]
                    hashers[e.path].update(part)
                    if e.path in kept:
                        kept[e.path] += part
                i += 1
            view.release()
            sha_queue.put((buffer, end - offset))
            if progress is not None:
                progress(end - offset)
            offset = end
            if got < want:
                break
    finally:
        sha_queue.put(None)
        worker.join()
    reading.sha256 = image_sha.hexdigest()
    reading.blake3 = image_b3.hexdigest()
    reading.files = {name: (sizes[name], hashers[name].hexdigest()) for name in files}
    reading.contents = {name: bytes(data) for name, data in kept.items()}
