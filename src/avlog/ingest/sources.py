"""Where recordings come from: a folder, or a raw FAT32/exFAT card image or block device.

A card is never mounted and never written: images and devices are opened
read-only and parsed with dissect.fat. Every source yields :class:`SourceEntry`
items with a POSIX-style path relative to the card's root.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dissect.fat import FATFS, ExFAT
from dissect.fat.fat import dostimestamp
from dissect.util.stream import RangeStream, RunlistStream

from avlog.errors import SourceError
from avlog.i18n import _

SECTOR = 512
# MBR partition types that may hold FAT12/16/32 or exFAT.
_FAT_PARTITION_TYPES = {0x01, 0x04, 0x06, 0x07, 0x0B, 0x0C, 0x0E}


@dataclass(frozen=True)
class SourceEntry:
    path: str  # relative to the card root, "/"-separated
    size: int
    mtime: datetime | None  # aware
    handle: Any = None  # the source's own reference to the file
    special: bool = False  # a link, device or socket: listed so it is counted, never read
    error: str | None = None  # set when the entry could not even be listed (an unreadable folder)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class Source(Protocol):
    kind: str  # folder | fat | exfat
    location: str
    parallel_reads: bool  # whether two files may be read at once

    def entries(self) -> Iterator[SourceEntry]: ...

    def open(self, entry: SourceEntry) -> BinaryIO: ...

    def recheck(self, entry: SourceEntry) -> str | None:
        """After a copy: a reason when the file changed while it was read, else None."""
        ...

    def close(self) -> None: ...


class FolderSource:
    """A folder: a mounted card, a copy of one, or any directory of recordings. Links are not followed."""

    kind = "folder"
    parallel_reads = True

    def __init__(self, root: Path):
        if not root.is_dir():
            raise SourceError(_("{path} is not a folder").format(path=root))
        self.root = root
        self.location = str(root)

    def entries(self) -> Iterator[SourceEntry]:
        unreadable: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unreadable.append):
            if unreadable and Path(unreadable[0].filename or "") == self.root:
                exc = unreadable[0]
                raise SourceError(
                    _("cannot read {path}: {reason}").format(path=self.root, reason=exc.strerror)
                ) from exc
            yield from self._unreadable(unreadable)
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(filenames):
                full = base / name
                try:
                    st = full.lstat()
                except FileNotFoundError:
                    continue
                rel = full.relative_to(self.root).as_posix()
                if not stat.S_ISREG(st.st_mode):
                    yield SourceEntry(rel, 0, None, special=True)  # links are never followed
                    continue
                yield SourceEntry(
                    rel, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), (st.st_size, st.st_mtime_ns)
                )
        if unreadable and Path(unreadable[0].filename or "") == self.root:
            raise SourceError(_("cannot read {path}: {reason}").format(path=self.root, reason=unreadable[0].strerror))
        yield from self._unreadable(unreadable)

    def _unreadable(self, errors: list[OSError]) -> Iterator[SourceEntry]:
        """A folder of the card that cannot be listed fails on its own; the rest of the card goes on."""
        while errors:
            exc = errors.pop(0)
            rel = Path(exc.filename or "?").relative_to(self.root).as_posix() + "/"
            reason = _("cannot list this folder: {reason}").format(reason=exc.strerror)
            yield SourceEntry(rel, 0, None, error=reason)

    def open(self, entry: SourceEntry) -> BinaryIO:
        return open(self.root / entry.path, "rb", buffering=0)  # type: ignore[return-value]

    def recheck(self, entry: SourceEntry) -> str | None:
        try:
            st = (self.root / entry.path).stat()
        except FileNotFoundError:
            return _("the file disappeared while it was read")
        except OSError as exc:  # a card pulled out answers EIO: the card's fault, not the store's
            return _("the card could not be read after the copy: {reason}").format(reason=exc.strerror or exc)
        if (st.st_size, st.st_mtime_ns) != entry.handle:
            return _("the file changed while it was read")
        return None

    def close(self) -> None:
        pass


def _find_volume(fh: BinaryIO) -> tuple[int, int | None]:
    """Offset (and size) of the FAT/exFAT volume: the image itself, or its first FAT partition (MBR)."""
    fh.seek(0)
    sector = fh.read(SECTOR)
    if len(sector) < SECTOR:
        raise SourceError(_("the image is too small to hold a FAT or exFAT filesystem"))
    if _is_volume_boot_record(sector):
        return 0, None
    if sector[510:512] == b"\x55\xaa":
        for i in range(4):
            entry = sector[446 + 16 * i : 446 + 16 * (i + 1)]
            ptype = entry[4]
            lba, count = struct.unpack("<II", entry[8:16])
            if ptype in _FAT_PARTITION_TYPES and lba:
                fh.seek(lba * SECTOR)
                if _is_volume_boot_record(fh.read(SECTOR)):
                    return lba * SECTOR, count * SECTOR
    raise SourceError(_("no FAT32 or exFAT filesystem found (is this a card image?)"))


def _is_volume_boot_record(sector: bytes) -> bool:
    if sector[3:11] == b"EXFAT   ":
        return True
    return sector[510:512] == b"\x55\xaa" and (sector[82:87] == b"FAT32" or sector[54:57] == b"FAT")


def _exfat_time(timestamp: int, centiseconds: int, tz_byte: int, local: tzinfo) -> datetime | None:
    if not timestamp:
        return None
    naive = dostimestamp(timestamp, centiseconds)
    if tz_byte & 0x80:  # the offset field is valid: 7-bit signed count of 15 minutes
        quarter_hours = tz_byte & 0x7F
        if quarter_hours & 0x40:
            quarter_hours -= 0x80
        return naive.replace(tzinfo=timezone(timedelta(minutes=15 * quarter_hours)))
    return naive.replace(tzinfo=local)


class CardImageSource:
    """A raw FAT32/exFAT card image or block device, read-only, never mounted."""

    parallel_reads = False  # one shared handle; a card reads fastest sequentially anyway

    def __init__(self, path: Path, local_tz: tzinfo):
        self.location = str(path)
        self.local_tz = local_tz
        try:
            self.fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - kept open for the ingest
        except PermissionError as exc:
            raise SourceError(_("cannot read {path}: permission denied").format(path=path)) from exc
        except OSError as exc:
            raise SourceError(_("cannot open {path}: {reason}").format(path=path, reason=exc.strerror)) from exc
        try:
            offset, size = _find_volume(self.fh)
            self.offset = offset  # where the filesystem starts in the image (after a partition table)
            available = self.fh.seek(0, os.SEEK_END) - offset  # works for block devices too
            # A partition table may promise more than an incomplete copy of the card holds.
            size = available if size is None else min(size, available)
            volume: BinaryIO = RangeStream(self.fh, offset, size)
            volume.seek(0)
            head = volume.read(SECTOR)
            volume.seek(0)
            if head[3:11] == b"EXFAT   ":
                self.kind = "exfat"
                self.exfat = ExFAT(volume)
                declared = self.exfat.vbr.volume_sector_count * self.exfat.sector_size
            else:
                self.kind = "fat"
                self.fat = FATFS(volume)
                declared = self.fat.total_sectors * self.fat.sector_size
            if declared > size:
                # An incomplete copy of a card: files and whole folders past its end would vanish silently.
                raise SourceError(
                    _(
                        "{path} is shorter than the filesystem it holds ({size} of {declared} bytes): "
                        "an incomplete copy of the card?"
                    ).format(path=path, size=size, declared=declared)
                )
        except SourceError:
            self.fh.close()
            raise
        except Exception as exc:  # a damaged or foreign filesystem: any parser error means "not readable"
            self.fh.close()
            raise SourceError(
                _("cannot read the filesystem in {path}: {reason}").format(path=path, reason=exc)
            ) from exc

    def entries(self) -> Iterator[SourceEntry]:
        try:
            if self.kind == "exfat":
                yield from self._exfat_entries(self.exfat.files["/"][1], "")
            else:
                yield from self._fat_entries(self.fat.root, "")
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                _("cannot read the directory tree of {path}: {reason}").format(path=self.location, reason=exc)
            ) from exc

    def _fat_entries(self, directory: Any, prefix: str) -> Iterator[SourceEntry]:
        children = [c for c in directory.iterdir() if c.name not in (".", "..") and not c.is_volume_id()]
        for child in sorted(children, key=lambda c: c.name):
            path = f"{prefix}{child.name}"
            if child.is_directory():
                yield from self._fat_entries(child, path + "/")
            else:
                yield SourceEntry(path, child.size, child.mtime.replace(tzinfo=self.local_tz), child)

    def _exfat_entries(self, directory: dict[str, Any], prefix: str) -> Iterator[SourceEntry]:
        for name in sorted(directory):
            file_, children = directory[name]
            if children is not None or file_.metadata.attributes.directory:
                yield from self._exfat_entries(children or {}, f"{prefix}{name.rstrip('/')}/")
                continue
            meta = file_.metadata
            mtime = _exfat_time(meta.modified_time, meta.modified_offset, meta.modified_timezone, self.local_tz)
            yield SourceEntry(f"{prefix}{name}", int(file_.stream.data_length), mtime, file_)

    def open(self, entry: SourceEntry) -> BinaryIO:
        if entry.size == 0:
            return io.BytesIO(b"")
        if self.kind == "fat":
            return entry.handle.open()  # type: ignore[no-any-return]
        stream = entry.handle.stream
        contiguous = bool(stream.flags.not_fragmented)
        runlist = self.exfat.runlist(stream.location, contiguous, size=entry.size if contiguous else None)
        return RunlistStream(self.exfat.filesystem, runlist, entry.size, self.exfat.sector_size)  # type: ignore[return-value]

    def recheck(self, entry: SourceEntry) -> str | None:
        return None  # the image is read-only to us and nothing else writes a card we read raw

    def close(self) -> None:
        self.fh.close()


def open_source(path: Path, local_tz: tzinfo) -> Source:
    """A folder → :class:`FolderSource`; a file or block device → :class:`CardImageSource`."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise SourceError(_("{path} does not exist").format(path=path)) from exc
    except PermissionError as exc:
        raise SourceError(_("cannot read {path}: permission denied").format(path=path)) from exc
    if stat.S_ISDIR(st.st_mode):
        return FolderSource(path)
    if stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return CardImageSource(path, local_tz)
    raise SourceError(_("{path} is neither a folder, a card image nor a block device").format(path=path))
