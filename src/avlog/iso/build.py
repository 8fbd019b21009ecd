"""Writing a disc image with pycdlib: ISO 9660 level 3 + Rock Ridge + Joliet + UDF 2.60.

Every file appears in all four views under the same real name (Rock Ridge, Joliet and UDF carry it; the
ISO 9660 tree has a level-3 name made from it), with the clip's recording time as its date in each view.
A file of 4 GiB or more is recorded as several ISO 9660 extents (level 3 multi-extent) and several UDF
allocation descriptors; pycdlib lays that out.

pycdlib's own volume and UDF descriptor times come from ``time.localtime()`` and it writes the UDF time
zone in 15-minute units where ECMA-167 wants minutes, which puts UDF times hours off outside UTC. The
build therefore lets pycdlib see UTC (:func:`_utc_clock`) and sets every file and directory time itself.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib
import pycdlib.udf

from avlog.errors import DiskFull, StoreError
from avlog.i18n import _
from avlog.iso.media import SECTOR

Progress = Callable[[int], None]


@dataclass(frozen=True)
class DiscFile:
    """One file of the image: a clip read from ``source``, or small ``content`` rendered in memory."""

    path: str  # the real path from the disc's root, "/"-separated
    size: int
    mtime: datetime  # aware
    source: Path | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class Volume:
    volume_id: str  # d-characters, at most 32: AVLOG_2026_0001
    volume_set_id: str  # d-characters: AVLOG_<store id>, which store made it
    publisher: str
    preparer: str
    application: str
    created: datetime


# -- names ------------------------------------------------------------------------------------------

_NOT_D = re.compile(r"[^A-Z0-9_]")
_JOLIET_BAD = set('*/:;?\\"<>|')


def safe_name(name: str) -> str:
    """A real name every view can carry: no characters Joliet forbids, at most 64 UTF-8 bytes
    (pycdlib's Joliet limit), the extension kept; a shortened name gets a short hash so it stays unique."""
    clean = "".join("_" if c in _JOLIET_BAD or ord(c) < 32 else c for c in unicodedata.normalize("NFC", name))
    clean = clean.strip() or "_"
    if len(clean.encode("utf-8")) <= 64:
        return clean
    base, dot, ext = clean.rpartition(".")
    if not dot or len(ext) > 10:
        base, dot, ext = clean, "", ""
    tag = "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
    room = 64 - len((tag + dot + ext).encode("utf-8"))
    return base.encode("utf-8")[:room].decode("utf-8", "ignore") + tag + dot + ext


def _d_chars(text: str) -> str:
    return _NOT_D.sub("_", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper())


class _IsoNames:
    """Level-3 ISO 9660 identifiers, unique within each directory (ECMA-119: a file name and extension
    together at most 30 characters, a directory name at most 31)."""

    def __init__(self) -> None:
        self.used: dict[str, set[str]] = {}

    def _unique(self, parent: str, candidate: str, make: Callable[[int], str]) -> str:
        used = self.used.setdefault(parent, set())
        n = 0
        while candidate in used:
            n += 1
            candidate = make(n)
        used.add(candidate)
        return candidate

    def file(self, parent: str, real: str) -> str:
        base, dot, ext = real.rpartition(".")
        if not dot:
            base, ext = real, ""
        b, e = _d_chars(base) or "_", _d_chars(ext)[:8]
        b = b[: 30 - len(e)]
        return self._unique(parent, f"{b}.{e};1", lambda n: f"{b[: 30 - len(e) - len(str(n)) - 1]}_{n}.{e};1")

    def directory(self, parent: str, real: str) -> str:
        d = (_d_chars(real) or "_")[:31]
        return self._unique(parent, d, lambda n: f"{d[: 31 - len(str(n)) - 1]}_{n}")


# -- times ------------------------------------------------------------------------------------------


def _dr_date(moment: datetime) -> Any:
    offset = int((moment.utcoffset() or (moment - moment)).total_seconds() // 60)
    return pycdlib.dates.DirectoryRecordDate.from_fields(
        moment.year - 1900, moment.month, moment.day, moment.hour, moment.minute, moment.second, offset // 15
    )


def _udf_time(moment: datetime) -> Any:
    offset = int((moment.utcoffset() or (moment - moment)).total_seconds() // 60)
    stamp = pycdlib.udf.UDFTimestamp()
    stamp.new(0)
    stamp.timetype = 1
    stamp.tz = offset  # ECMA-167 1/7.3.1: minutes
    stamp.year, stamp.month, stamp.day = moment.year, moment.month, moment.day
    stamp.hour, stamp.minute, stamp.second = moment.hour, moment.minute, moment.second
    us = moment.microsecond
    stamp.centiseconds, stamp.hundreds_microseconds, stamp.microseconds = us // 10000, (us // 100) % 100, us % 100
    return stamp


def _set_record_times(record: Any, moment: datetime) -> None:
    """An ISO 9660 or Joliet record, every extent of a multi-extent file, and its Rock Ridge TF entry."""
    while record is not None:
        record.date = _dr_date(moment)
        rr = record.rock_ridge
        if rr is not None:
            for entries in (rr.dr_entries, rr.ce_entries):
                tf = getattr(entries, "tf_record", None) if entries is not None else None
                if tf is None:
                    continue
                for name, bit in (
                    ("creation_time", 0x01),
                    ("access_time", 0x02),
                    ("modification_time", 0x04),
                    ("attribute_change_time", 0x08),
                ):
                    if tf.time_flags & bit and not tf.time_flags & 0x80:
                        setattr(tf, name, _dr_date(moment))
        record = getattr(record, "data_continuation", None)


def _set_times(iso: Any, moment: datetime, *, iso_path: str, joliet_path: str, udf_path: str) -> None:
    for record in (iso.get_record(iso_path=iso_path), iso.get_record(joliet_path=joliet_path)):
        _set_record_times(record, moment)
        if record.is_dir() and record.children:  # a directory's "." entry carries its time too
            _set_record_times(record.children[0], moment)
    entry = iso.get_record(udf_path=udf_path)
    for name in ("access_time", "mod_time", "attr_time"):
        setattr(entry, name, _udf_time(moment))


class _UtcTime:
    """pycdlib's view of the ``time`` module during a build: local time is UTC (see the module's docstring)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def localtime(secs: float | None = None) -> time.struct_time:
        return time.gmtime(secs)


@contextlib.contextmanager
def _utc_clock() -> Iterator[None]:
    modules = (pycdlib.dates, pycdlib.headervd, pycdlib.pycdlib, pycdlib.udf)
    saved = [(m, m.time) for m in modules]  # type: ignore[attr-defined]
    try:
        for m in modules:
            m.time = _UtcTime()  # type: ignore[attr-defined]
        yield
    finally:
        for m, original in saved:
            m.time = original  # type: ignore[attr-defined]


# -- layout -----------------------------------------------------------------------------------------


class Image:
    """An image laid out in memory (pycdlib), ready to be measured and written."""

    def __init__(self, volume: Volume, files: Sequence[DiscFile]):
        self.volume = volume
        self.files = list(files)
        self._iso = pycdlib.PyCdlib()
        self._iso_paths: dict[str, str] = {}
        with _utc_clock():
            self._lay_out()

    def _lay_out(self) -> None:
        v = self.volume
        iso = self._iso
        iso.new(
            interchange_level=3,
            joliet=3,
            rock_ridge="1.09",
            udf="2.60",
            vol_ident=v.volume_id,
            sys_ident="LINUX",
            pub_ident_str=_d_chars(v.publisher)[:128],
            preparer_ident_str=_d_chars(v.preparer)[:128],
            app_ident_str=_d_chars(v.application)[:128],
            vol_set_ident=v.volume_set_id,
        )
        names = _IsoNames()
        dirs: dict[str, tuple[str, datetime]] = {"": ("", v.created)}  # real path -> (ISO path, time)
        for f in sorted(self.files, key=lambda f: f.path):
            parts = PurePosixPath(f.path).parts
            parent = ""
            for depth, part in enumerate(parts[:-1]):
                real = "/".join(parts[: depth + 1])
                if real not in dirs:
                    iso_dir = dirs[parent][0] + "/" + names.directory(parent, part)
                    iso.add_directory(iso_dir, rr_name=part, joliet_path="/" + real, udf_path="/" + real)
                    dirs[real] = (iso_dir, f.mtime)
                else:
                    dirs[real] = (dirs[real][0], max(dirs[real][1], f.mtime))
                parent = real
            iso_path = dirs[parent][0] + "/" + names.file(parent, parts[-1])
            joliet, udf = "/" + f.path, "/" + f.path
            if f.content is not None:
                iso.add_fp(
                    io.BytesIO(f.content), len(f.content), iso_path, rr_name=parts[-1], joliet_path=joliet, udf_path=udf
                )
            else:
                assert f.source is not None
                iso.add_file(str(f.source), iso_path, rr_name=parts[-1], joliet_path=joliet, udf_path=udf)
            self._iso_paths[f.path] = iso_path
        self._dirs = dirs

    def stamp_times(self) -> None:
        """Give every file its recording time and every directory its newest file's, in all four views."""
        for f in self.files:
            _set_times(
                self._iso, f.mtime, iso_path=self._iso_paths[f.path], joliet_path="/" + f.path, udf_path="/" + f.path
            )
        for real, (iso_dir, moment) in self._dirs.items():
            if real:
                _set_times(self._iso, moment, iso_path=iso_dir, joliet_path="/" + real, udf_path="/" + real)

    @property
    def sectors(self) -> int:
        """The exact size of the image to be written, in sectors (UDF structures and anchors included)."""
        self._iso.get_record(iso_path="/")  # makes pycdlib assign the extents (once)
        return int(self._iso.pvd.space_size)

    def write(self, fd: int, dest: Path, progress: Progress | None = None) -> None:
        """Write the image into the new, empty file open at ``fd`` (``dest`` names it in messages), flushed
        to disk and dropped from the page cache, so that a read-back reads the disk. ``fd`` stays open."""
        total = self.sectors * SECTOR
        try:
            raw = os.fdopen(fd, "wb", buffering=0, closefd=False)
            with raw:
                if total:
                    _allocate(raw.fileno(), total)
                out = _SparseFile(raw, progress)
                with _utc_clock():
                    self.stamp_times()
                    self._iso.write_fp(out, blocksize=8 << 20)  # type: ignore[arg-type]
                raw.truncate(total)
                os.fsync(raw.fileno())
                with contextlib.suppress(OSError):
                    os.posix_fadvise(raw.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    _("no room for the image {path} ({size} bytes); free space or use --out").format(
                        path=dest, size=total
                    )
                ) from exc
            raise StoreError(_("cannot write {path}: {reason}").format(path=dest, reason=exc.strerror)) from exc
        finally:
            self._iso.close()

    def close(self) -> None:
        self._iso.close()


def _allocate(fd: int, size: int) -> None:
    """Claim the image's room before writing, so a full disk shows at once, not after gigabytes."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Filesystems without fallocate (EOPNOTSUPP) are written as they come.


_ZEROS = bytes(8 << 20)


class _SparseFile(io.RawIOBase):
    """What pycdlib writes to: it seeks and writes, never reads, and writes each region of the new file
    once. A chunk of zeros is skipped: the new file reads zeros there already (its room was allocated,
    or it stays a hole). Progress is reported in bytes."""

    def __init__(self, raw: io.FileIO, progress: Progress | None):
        self.raw = raw
        self.pos = 0
        self.progress = progress
        self.mode = "wb"

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        view = memoryview(data)
        # bytes == bytes is a memcmp that stops at the first difference: a real clip costs nothing here.
        if n >= 1 << 16 and data[:1] == b"\0" and data == (_ZEROS if n == len(_ZEROS) else bytes(n)):
            self.pos += n
            if self.progress is not None:
                self.progress(n)
            return n
        self.raw.seek(self.pos)
        done = 0
        while done < n:
            done += self.raw.write(view[done:]) or 0
        self.pos += n
        if self.progress is not None and n >= 1 << 16:
            self.progress(n)
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            self.pos = self.raw.seek(0, 2) + offset
        return self.pos

    def tell(self) -> int:
        return self.pos


def iso_time(moment: datetime | None) -> datetime:
    return (moment or datetime.now(UTC)).replace(microsecond=0)
